# SPDX-License-Identifier: GPL-3.0-or-later
"""Odd and hostile inputs give 4xx pages, never a 500 or a traceback, and never unescaped markup."""

from __future__ import annotations

import pytest

ODD = [
    "/packages/%3Cscript%3E",
    "/packages/h/hello/%3Cb%3E/amd64",
    "/packages/hello/noble/amd64?before=%3Cx%3E",
    "/packages/hello/noble/amd64?limit=1e3",
    "/packages/hello/noble/amd64?offset=99999999999999999999999",
    "/packages/hello/noble/amd64/notarun/log",
    "/packages/hello/noble/amd64/20240101_000000@/log",
    "/packages/hello/noble/amd64/20240101_000000@/other",
    "/packages/h/hello/noble/amd64/20240101_000000@/log/x",
    "/packages/a/b/c/d/e/f/g",
    "/run/%00",
    "/run/8C1F6A3E-1D2B-4C6E-9A77-0F3D2E5B9C10",
    "/recent?limit=-5",
    "/recent?offset=abc",
    "/recent?user=%3Cscript%3E",
    "/user/%3Cscript%3E/",
    "/user/joe/?limit=0",
    "/user/joe/ppa/%3Cx%3E",
    "/releases/%3Cx%3E/amd64",
    "/results/autopkgtest-noble?format=xml",
    "/results/autopkgtest-noble?limit=abc",
    "/results/%2e%2e",
    "/static/../../etc/passwd",
    "/api/v1/packages/%3Cscript%3E",
    "/api/v1/nothing",
]


@pytest.mark.parametrize("path", ODD)
def test_odd_requests_are_clean_client_errors(client, path):
    response = client.get(path)
    body = response.get_data(as_text=True)
    assert response.status_code < 500, (path, response.status_code, body[:300])
    assert "Traceback" not in body
    if response.mimetype == "text/html":
        assert "<script>" not in body and "<x>" not in body


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
