# SPDX-License-Identifier: GPL-3.0-or-later
"""Big pages are sent while they are rendered, and read exactly as when rendered whole."""

from __future__ import annotations

import re

import flask
import pytest

from tests.browse import site as sitemod
from tests.browse.test_rows import sample_result
from webcontrol import db, newest
from webcontrol.history import Result
from webcontrol.web.browse import api, context, links

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


def _row(**fields) -> Result:
    return sample_result(**{"triggers": "hello/2.10-3 glibc/2.40-1", "exitcode": 4, "env": "all-proposed=1", **fields})


#: Rows whose views hold every kind of value a big page's JSON carries, some that orjson writes
#: differently from Flask's provider (a float, non-ASCII text, DEL, an int beyond 64 bits).
JSON_ROWS = [
    _row(),
    _row(version=None, triggers=None, duration=None, exitcode=None, requester=None, env=None, uuid=None),
    _row(env='testname="a\\b"\x00\x01\x1f\n\t/</b>', version="1.0~rc1+dfsg-1"),
    _row(duration=1e-05),
    _row(version="1.0-1ü", triggers="pkg/1.0-1ü", env="x=😐"),
    _row(env="a\x7fb"),
    _row(exitcode=2**70),
    _row(run_id="not a run id/x", exitcode=0),
]


@pytest.mark.parametrize("chunk", [1, 3, 500])
def test_big_pages_json_is_the_text_of_flasks_provider(app, chunk):
    """A big page's JSON twin is written by orjson where it can be: the same bytes as flask.jsonify, whatever the rows."""
    page = links.LazyViews(None, JSON_ROWS * 2, chunk=chunk, classification="regression")
    with app.test_request_context("/"):
        streamed = api.stream_json({"results": page, "limit": 5}).get_data()
        views = [links.result_view(row, "regression") for row in JSON_ROWS * 2]
        whole = flask.jsonify({"results": views, "limit": 5}).get_data()
    assert streamed == whole
    assert b"1e-05" in whole and b"\\u00fc" in whole and b"\\u007f" in whole and str(2**70).encode() in whole


def test_plain_json_is_orjsons_text_only_when_it_is_the_providers(app):
    with app.test_request_context("/"):
        json_provider = flask.current_app.json
        plain = [{"b": 'x"\\/\x00\n', "a": [None, True, False, -1, 2**63 - 1], "A": {}, "_": []}]
        assert api.plain_json(plain, json_provider) == json_provider.dumps(plain, separators=(",", ":"))
        for value in ("ü", "\x7f", "\ud800", 2**64):
            assert api.plain_json([{"a": value}], json_provider) is None
    page = links.LazyViews(None, [_row(), _row(duration=1.5), _row()], chunk=1, classification="pass")
    with app.test_request_context("/"):
        assert [plain for _views, plain in page.json_blocks()] == [True, False, True]


@pytest.mark.parametrize("jobs", [0, 1, 3, 2_000])
def test_encoded_members_are_sent_as_the_text_of_jsonify(app, jobs):
    """Live JSON routes send members encoded once per version: the bytes are flask.jsonify's, in bounded writes."""
    values = [
        {"id": f"job{n}", "logtail": "x" * (n * 37 % 900), "duration": n, "hints": ["ü"] if n % 7 == 0 else []}
        for n in range(jobs)
    ]
    if jobs > 1:
        values[1]["logtail"] = "long " * api.STREAM_PIECE  # one item longer than a piece
    big = {"queue": ["q" * 1000] * 300}  # a plain member longer than a piece
    with app.test_request_context("/"):
        dumps = flask.current_app.json.dumps
        texts = [dumps(value, separators=(",", ":")).encode() for value in values]
        pairs = sorted(dumps(value["id"]).encode() + b":" + text for value, text in zip(values, texts, strict=True))
        response = api.members_response(
            {"jobs": api.encoded_member("jobs", texts), "by_id": api.encoded_member("by_id", pairs, True)},
            api.encode_members(big),
            count=jobs,
            updated={"running": 3},
        )
        writes = list(response.response)
        whole = flask.jsonify(
            jobs=values, by_id={value["id"]: value for value in values}, count=jobs, updated={"running": 3}, **big
        ).get_data()
    assert b"".join(writes) == whole
    assert int(response.headers["Content-Length"]) == len(whole)
    assert max(len(write) for write in writes) <= 3 * api.STREAM_PIECE
    if jobs == 2_000:
        assert len(writes) > len(whole) // (3 * api.STREAM_PIECE), "small pieces go out together, not one each"
        assert len(writes) < len(whole) // api.STREAM_PIECE * 2
