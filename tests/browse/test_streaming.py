# SPDX-License-Identifier: GPL-3.0-or-later
"""Big pages are sent while they are rendered, and read exactly as when rendered whole."""

from __future__ import annotations

import re

import pytest

from tests.browse import site as sitemod
from webcontrol import db, newest
from webcontrol.web.browse import context, links

BIG_PAGES = [
    "/packages/hello/noble/amd64?limit=200",
    "/api/v1/packages/hello/noble/amd64?limit=200",
    "/recent?limit=200",
    "/api/v1/recent?limit=200",
    "/api/v1/recent?limit=200&result=pass",
    "/api/experimental/recent.json?limit=200",
    f"/user/{sitemod.HEAVY_USER}/?limit=200",
    f"/api/v1/user/{sitemod.HEAVY_USER}/?limit=200",
]


def test_testlist_is_streamed(client):
    for url in ("/testlist", "/api/v1/testlist"):
        response = client.get(url)
        assert response.status_code == 200 and "Content-Length" not in response.headers
        assert response.get_data()
    groups = client.get("/api/v1/testlist").get_json()["groups"]
    assert "hello" in [p["package"] for g in groups for p in g["packages"]]
    page = client.get("/testlist").get_data(as_text=True)
    assert all(f'href="#index-{g["prefix"]}"' in page for g in groups)


@pytest.mark.parametrize("url", BIG_PAGES)
def test_big_pages_stream_the_same_content(client, monkeypatch, url):
    whole = client.get(url)
    assert whole.status_code == 200 and "Content-Length" in whole.headers
    monkeypatch.setattr(links, "STREAM_ROWS", 7)  # pages of more than 7 rows are streamed, 7 views at a time
    streamed = client.get(url)
    assert streamed.status_code == 200 and "Content-Length" not in streamed.headers  # sent as rendered
    assert streamed.headers["Content-Type"] == whole.headers["Content-Type"]
    if "json" in whole.headers["Content-Type"]:
        assert streamed.get_json() == whole.get_json()
        assert streamed.get_data() == whole.get_data()  # byte for byte: sorted keys, compact
        assert len(whole.get_json()["results"] if isinstance(whole.get_json(), dict) else whole.get_json()) > 7
    else:
        assert streamed.get_data(as_text=True) == whole.get_data(as_text=True)
        assert whole.get_data(as_text=True).count("<tr>") > 7


@pytest.mark.parametrize(
    "url",
    [
        "/packages/hello/noble/amd64?limit=200",
        "/api/v1/packages/hello/noble/amd64?limit=200",
        "/packages/hello/noble/amd64?limit=20&before=20240212_000000@",
    ],
)
def test_long_history_sends_its_head_before_reading_its_rows(client, monkeypatch, url):
    """The first bytes of a long history leave before its rows are read; the rest are read a chunk at a time."""
    whole = client.get(url).get_data()
    statements: list[str] = []
    connect_ro = db.connect_ro

    def traced(*args, **kwargs):
        conn = connect_ro(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(db, "connect_ro", traced)
    monkeypatch.setattr(context._kept, "db", None, raising=False)  # a new (traced) connection for this request
    monkeypatch.setattr(links, "STREAM_ROWS", 7)
    monkeypatch.setattr(newest, "LAZY_ROWS", 5)
    monkeypatch.setattr(newest, "LAZY_CHUNK", 3)
    response = client.get(url, buffered=False)
    pieces = iter(response.response)
    first = next(pieces)
    # Statements that read the page's rows (all columns, newest first) and how many rows each asked for.
    reads = [int(m[1]) for s in statements if "result.uuid" in s and (m := re.search(r"run_id DESC LIMIT (\d+)", s))]
    assert reads and max(reads) <= 3, statements
    rest = b"".join(piece if isinstance(piece, bytes) else piece.encode() for piece in pieces)
    response.close()
    assert (first if isinstance(first, bytes) else first.encode()) + rest == whole
    assert whole.count(b"log.gz") > 7  # more rows than a chunk or a streamed piece of views
