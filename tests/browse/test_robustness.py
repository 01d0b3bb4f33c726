# SPDX-License-Identifier: GPL-3.0-or-later
"""Odd and hostile inputs give the right 4xx page with its reason, never a 500, a traceback or unescaped markup."""

from __future__ import annotations

import pytest
from markupsafe import escape

NOT_FOUND = "The requested URL was not found on the server."

#: (path, status, what the page says: the reason, HTML-escaped where the page is HTML)
ODD = [
    ("/packages/%3Cscript%3E", 404, "'<script>' is not a valid package name"),
    ("/packages/h/hello/%3Cb%3E/amd64", 404, "release '<b>' is not valid"),
    (
        "/packages/hello/noble/amd64?before=%3Cx%3E",
        400,
        "before must be a run id such as 20240221_110051_a1b2c@, not '<x>'",
    ),
    ("/packages/hello/noble/amd64?limit=1e3", 400, "limit must be an integer, not '1e3'"),
    ("/packages/hello/noble/amd64?offset=99999999999999999999999", 400, "offset must be"),
    ("/packages/hello/noble/amd64/notarun/log", 404, "no such page"),
    (
        "/packages/hello/noble/amd64/20240101_000000@/log",
        404,
        "log of run 20240101_000000@ of hello on noble/amd64 not found",
    ),
    ("/packages/hello/noble/amd64/20240101_000000@/other", 404, "no such page"),
    ("/packages/h/hello/noble/amd64/20240101_000000@/log/x", 404, NOT_FOUND),
    ("/packages/a/b/c/d/e/f/g", 404, NOT_FOUND),
    ("/run/%00", 404, "not found"),
    ("/run/8C1F6A3E-1D2B-4C6E-9A77-0F3D2E5B9C10", 404, "uuid 8C1F6A3E-1D2B-4C6E-9A77-0F3D2E5B9C10 not found"),
    ("/recent?limit=-5", 400, "limit must be 1..10000, not -5"),
    ("/recent?offset=abc", 400, "offset must be an integer, not 'abc'"),
    ("/user/%3Cscript%3E/", 404, "'<script>' is not a valid Launchpad user name"),
    ("/user/joe/?limit=0", 400, "limit must be 1..10000, not 0"),
    ("/user/joe/ppa/%3Cx%3E", 404, "'<x>' is not a valid PPA name"),
    ("/releases/%3Cx%3E/amd64", 404, "invalid release '<x>'"),
    ("/results/autopkgtest-noble?format=xml", 400, "format must be plain or json"),
    # Swift's own answer (and wording) for a bad listing limit, which clients of /results/ know.
    ("/results/autopkgtest-noble?limit=abc", 412, "Value of limit must be a positive integer"),
    ("/results/%2e%2e", 400, "invalid container name '..'"),
    ("/static/../../etc/passwd", 404, NOT_FOUND),
    ("/static/..%2f..%2fetc/passwd", 404, NOT_FOUND),
    ("/api/v1/packages/%3Cscript%3E", 404, "'<script>' is not a valid package name"),
    ("/api/v1/nothing", 404, NOT_FOUND),
]


@pytest.mark.parametrize(("path", "status", "reason"), ODD, ids=[path for path, _status, _reason in ODD])
def test_odd_requests_are_clean_client_errors(client, path, status, reason):
    response = client.get(path)
    body = response.get_data(as_text=True)
    assert response.status_code == status, (path, body[:300])
    assert "Traceback" not in body and "root:x:0:0" not in body
    if response.mimetype == "text/html":
        assert f"Error {status}" in body
        assert str(escape(reason)) in body, body[:2000]
        assert "<script>" not in body and "<x>" not in body and "<b>" not in body
    elif response.mimetype == "application/json":
        assert response.get_json() == {"error": response.get_json()["error"], "status": status}
        assert reason in response.get_json()["error"]
    else:
        assert response.mimetype == "text/plain" and reason in body


def test_user_filter_must_be_a_launchpad_name(client):
    """A requester filter that cannot be a Launchpad name is a 400 naming it escaped; an unknown one matches nothing."""
    answer = client.get("/api/v1/recent?user=%3Cscript%3E")
    assert answer.status_code == 400 and "invalid user" in answer.get_json()["error"]
    page = client.get("/recent?user=%3Cscript%3E")
    assert page.status_code == 400 and "<script>" not in page.get_data(as_text=True)
    assert client.get("/api/v1/recent?user=nobody-at-all").get_json()["results"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/user/joe%0A/",
        "/user/joe%0A/feed.atom",
        "/user/bryce/ppa/Chrony_Merge",
        "/user/bryce/ppa/x",
        "/user/bryce/ppa/chrony-merge%0A",
    ],
)
def test_user_and_ppa_names_follow_the_launchpad_rules(client, path):
    """The names request.cgi accepts are the only ones the user and PPA pages answer for (whole value)."""
    assert client.get(path).status_code == 404
