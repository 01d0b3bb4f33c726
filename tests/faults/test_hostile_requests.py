# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile HTTP input, request side: request.cgi, GitHub webhooks, login ``next``, and path traversal.

Requests with hostile parameters, bodies, signatures and ``next`` values,
and explicit traversal paths towards a secret file next to the result
store on every file route; every response goes through
:func:`tests.faults.hostile.check`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import login
from tests.faults import hostile, hostile_site
from tests.faults.hostile import (
    check,
    client_for,
    hostile_settings,
    text,
)

REQUEST_KEYS = [
    "release",
    "arch",
    "package",
    "trigger",
    "ppa",
    "env",
    "all-proposed",
    "readable-by",
    "build-git",
    "testname",
    "delete",
    "swiftuser",
    "requester",
    "test-git",
    "x",
]
request_params = st.lists(
    st.tuples(
        st.sampled_from(REQUEST_KEYS) | text, st.sampled_from(["noble", "amd64", "hello", "hello/2.10-5", "1"]) | text
    ),
    max_size=8,
)


@hostile_settings()
@given(params=request_params, method=st.sampled_from(["GET", "POST"]), who=st.sampled_from([None, "joe", "eve"]))
def test_request_cgi(hostile_clients, params, method, who):
    client = hostile_clients["request"]
    client._cookies.clear()
    if who:
        login(client, who, teams=["autopkgtest-requestors"] if who == "joe" else [])
    if method == "GET":
        response = client.get("/request.cgi", query_string=params)
    else:
        response = client.post("/request.cgi", data=MultiDict(params))
    # 503: Launchpad or RabbitMQ unavailable (the site's broker is a closed port on purpose).
    check("request", response, allowed_503=True)


@hostile_settings()
@given(
    params=request_params,
    event=st.sampled_from(["pull_request", "ping", "push"]) | text,
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["action", "number", "pull_request", "x"]), st.just("x") | st.integers() | text
        ),
        st.builds(
            lambda action, number, url: {
                "action": action,
                "number": number,
                "pull_request": {"statuses_url": url, "base": {"repo": {"clone_url": url}}},
            },
            st.sampled_from(["opened", "synchronize", "closed"]) | text,
            st.integers() | text,
            st.sampled_from(["https://api.github.com/repos/a/b/statuses/1"]) | text,
        ),
    ),
    signed=st.sampled_from(["valid", "none", "wrong", "sha1-only"]),
)
def test_github_webhook(hostile_clients, params, event, body, signed):
    client = hostile_clients["request"]
    client._cookies.clear()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-GitHub-Event": event.replace("\r", "").replace("\n", ""), "Content-Type": "application/json"}
    digest256 = hmac.new(hostile_site.WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    digest1 = hmac.new(hostile_site.WEBHOOK_SECRET.encode(), raw, hashlib.sha1).hexdigest()
    if signed == "valid":
        headers["X-Hub-Signature-256"] = f"sha256={digest256}"
    elif signed == "wrong":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    elif signed == "sha1-only":
        headers["X-Hub-Signature"] = f"sha1={digest1}"
    query = [("release", "noble"), ("arch", "amd64"), ("package", "systemd-upstream"), ("ppa", "a/b"), *params]
    try:
        response = client.post("/github/webhook", query_string=query, data=raw, headers=headers)
    except ValueError:  # a header value the test client itself refuses to send
        return
    check("webhook", response, allowed_503=True)


@hostile_settings()
@given(
    path=st.sampled_from(["/login", "/logout", "/private-results/login", "/private-results/logout"]),
    method=st.sampled_from(["GET", "POST"]),
    nxt=st.sampled_from(
        [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "https:evil.example",
            "http://autopkgtest.example.com@evil.example/",
            "/packages/hello",
            "javascript:alert(1)",
            " https://evil.example",
            "\thttps://evil.example",
            "https://autopkgtest.example.com/x",
        ]
    )
    | text,
    logged_in=st.booleans(),
)
def test_login_next_never_leaves_the_site(hostile_clients, path, method, nxt, logged_in):
    client = client_for(hostile_clients, path)
    client._cookies.clear()
    if logged_in:
        login(client, "joe")
    if method == "GET":
        response = client.get(path, query_string={"next": nxt})
    else:
        response = client.post(path, data={"next": nxt})
    check("login", response, allowed_503=True)
    location = response.headers.get("Location")
    if location and response.status_code in (301, 302, 303, 307, 308) and logged_in:
        target = urllib.parse.urlsplit(urllib.parse.urljoin("https://autopkgtest.example.com/", location.strip()))
        assert target.hostname in ("autopkgtest.example.com", "127.0.0.1", "localhost"), location


TRAVERSALS = [
    "/results/..%2Fsecret.txt",
    "/results/%2e%2e/secret.txt",
    "/results/autopkgtest-noble/..%2F..%2Fsecret.txt",
    "/results/autopkgtest-noble/%2e%2e/%2e%2e/secret.txt",
    "/results/..%2Fresults-secret/log.gz",
    "/results/autopkgtest-noble/noble/../../../secret.txt",
    "/results/autopkgtest-noble/%2Fetc%2Fpasswd",
    "/results/autopkgtest-noble/..%5C..%5Csecret.txt",
    "/results/autopkgtest-noble/%252e%252e/%252e%252e/secret.txt",
    "/results/autopkgtest-noble/noble%00/../../secret.txt",
    "/results/.",
    "/results/..",
    "/results/%2e%2e",
    "/static/..%2F..%2Fsecret.txt",
    "/static/%2e%2e/%2e%2e/secret.txt",
    "/static/../../secret.txt",
    "/private-results/private-autopkgtest-noble/..%2F..%2Fsecret.txt",
    "/private-results/private-autopkgtest-noble/noble/amd64/h/hello/..%2F..%2F..%2F..%2F..%2Fsecret.txt/log.gz",
    "/private-results/private-..%2Fresults-secret/noble/amd64/h/hello/x/log.gz",
    "/private-results/private-autopkgtest-noble/noble/amd64/h/hello/../../../../../../secret.txt",
    "/private-results/private-autopkgtest-noble/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/packages/h/hello/noble/amd64/..%2F..%2F..%2F..%2Fsecret.txt@/log",
    "/packages/hello/noble/amd64/%2e%2e@/log",
    "/packages/hello/noble/amd64/..@/log",
    "/packages/..%2F..%2Fresults-secret/noble/amd64/20240101_000000_aaaaa@/log",
    "/api/v1/packages/hello/noble/amd64/..%2F..%2Fsecret.txt@/log",
]


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("who", [None, "joe"])
def test_path_traversal_refused(hostile_clients, path, who):
    client = client_for(hostile_clients, path)
    client._cookies.clear()
    if who:
        login(client, who)
    response = client.get(path)
    check("traversal", response, allowed_503=True)
    assert response.status_code >= 300, (path, response.status_code)
    hostile.HITS["traversal"]["refused"] += 1
