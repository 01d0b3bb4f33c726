# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile HTTP input: property-based requests over every route family of the three web apps.

For each family, hypothesis builds paths, query strings, form bodies and
headers from hostile text (markup, quotes, traversal, NUL, huge and non-ASCII
values) mixed with real names so requests also reach the deeper code. Every
response must be below 500 (503 only where the contract says so: /health,
Launchpad or RabbitMQ unavailable), a JSON response must parse, and no HTML
response may contain an injected tag unescaped. Path traversal towards a
secret file next to the results folder is refused on every file route.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import fake_launchpad, login, openid_provider  # noqa: F401 - fixtures
from tests.faults import hostile_site
from tests.faults.conftest import size
from webcontrol.web.browse import create_app as create_browse
from webcontrol.web.private import create_app as create_private
from webcontrol.web.request import create_app as create_request

EXAMPLES = size("hypothesis_examples", 150, 1500)
TAG = "<zzq"
MARKUP = ['<zzq onload="x">', "\"'><zzq>", "<zzq/>", "</td><zzq>", "javascript:<zzq>"]
NASTY = [
    "", " ", "..", "../..", "../../secret.txt", "..%2f..%2fsecret.txt", "%2e%2e", "/", "//evil.example", "\\..\\..",
    "\x00", "%00", "a" * 3000, "😀", "ü", "{{7*7}}", "{0}", "%s%n", "@", ";", "\r\nX-Injected: 1", "'", '"',
    "null", "-1", "0", "99999999999999999999", "1e9", "NaN", "true", "[]", "{}",
]  # fmt: skip
REAL = [
    "hello", "libpng1.6", "glib2.0", "six", "chrony", "noble", "jammy", "amd64", "arm64", "s390x", "h", "libp", "c",
    "20240201_100000_a0000@", "20240326_184806_3f2a1@", "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10", "bryce", "joe",
    "log", "feed.atom", "badge.svg", "history.svg", "changes", "ppa", "ubuntu", "huge", "upstream",
]  # fmt: skip
text = st.one_of(st.sampled_from(MARKUP), st.sampled_from(NASTY), st.sampled_from(REAL), st.text(max_size=30))
segment = st.one_of(st.sampled_from(REAL), text)
HITS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module")
def site(tmp_path_factory, fake_launchpad, openid_provider):  # noqa: F811
    built = hostile_site.build(tmp_path_factory.mktemp("hostile"), fake_launchpad.url, openid_provider.url)
    fake_launchpad.state.teams["joe"] = ["autopkgtest-requestors"]
    fake_launchpad.state.publish("hello", "2.10-5", "noble")
    return built


@pytest.fixture(scope="module")
def clients(site):
    apps = {
        "browse": create_browse(site.config),
        "request": create_request(site.config),
        "private": create_private(site.config),
    }
    for app in apps.values():
        app.testing = False  # errors must go through the apps' own handlers, as in production
    return {name: app.test_client() for name, app in apps.items()}


def _client(clients, path: str):
    if path.rstrip("/") in ("/request.cgi", "/github/webhook", "/login", "/logout"):
        return clients["request"]
    if path.startswith("/private-results"):
        return clients["private"]
    return clients["browse"]


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="@")


def check(family: str, response, allowed_503: bool = False) -> None:
    """The invariants every response must hold; counted per family for the figures."""
    HITS[family]["requests"] += 1
    status = response.status_code
    body = response.get_data()
    if status >= 500:
        HITS[family][f"status_{status}"] += 1
    assert status < 500 or (status == 503 and allowed_503), (status, body[:500])
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type:
        if TAG.encode() in body:
            HITS[family]["unescaped_echo"] += 1
        assert TAG.encode() not in body, body[body.find(TAG.encode()) - 200 : body.find(TAG.encode()) + 100]
    if "json" in content_type and status != 304 and body:
        json.loads(body)
    location = response.headers.get("Location", "")
    assert "\n" not in location and "\r" not in location
    assert hostile_site.SECRET not in body
    if family != "private":  # only private-results may ever serve a private run, and only to its readers
        assert hostile_site.PRIVATE_LOG not in body


def _settings():
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


query = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "limit",
                "offset",
                "before",
                "arch",
                "release",
                "user",
                "result",
                "format",
                "prefix",
                "delimiter",
                "marker",
                "end_marker",
                "show-running",
                "show-queued",
                "show-results",
                "only-results",
                "next",
                "x",
            ]
        )
        | text,  # fmt: skip
        text,
    ),
    max_size=5,
)


def _get(clients, family, path, params=(), allowed_503=False, **kwargs):
    client = _client(clients, path)
    response = client.get(path, query_string=list(params), **kwargs)
    check(family, response, allowed_503)
    return response


@_settings()
@given(segments=st.lists(segment, min_size=1, max_size=6), params=query, api=st.booleans())
def test_packages_routes(clients, segments, params, api):
    path = ("/api/v1" if api else "") + "/packages/" + "/".join(_quote(s) for s in segments)
    _get(clients, "packages", path, params)


@_settings()
@given(
    kind=st.sampled_from(["user", "user/", "ppa", "ppa/x", "feed.atom"]),
    user=segment,
    ppa=segment,
    params=query,
    api=st.booleans(),
)
def test_user_routes(clients, kind, user, ppa, params, api):
    tail = {"user": "", "user/": "/", "ppa": "/ppa", "ppa/x": f"/ppa/{_quote(ppa)}", "feed.atom": "/feed.atom"}[kind]
    path = ("/api/v1" if api and kind != "feed.atom" else "") + f"/user/{_quote(user)}{tail}"
    _get(clients, "user", path, params)


@_settings()
@given(
    route=st.sampled_from(
        [
            "/",
            "/recent",
            "/api/v1/recent",
            "/api/experimental/recent.json",
            "/running",
            "/admin",
            "/flaky",
            "/api/v1/flaky",
            "/metrics",
            "/health",
            "/testlist",
            "/api/v1/testlist",
            "/statistics",
            "/api/v1/statistics",
            "/github-jobs",
            "/request",
            "/queues.json",
            "/queue_size.json",
            "/queued.json",
            "/api/v1/running",
            "/api/v1/running/status",
            "/api/v1/openapi.json",
            "/api/v1/",
            "/api/v1/admin",
            "/packages",
            "/running.shtml",
            "/favicon.ico",
            "/robots.txt",
        ]
    ),  # fmt: skip
    params=query,
)
def test_fixed_routes_with_hostile_queries(clients, route, params):
    _get(clients, "fixed", route, params, allowed_503=route == "/health")


@_settings()
@given(
    template=st.sampled_from(
        [
            "/run/{a}",
            "/api/v1/run/{a}",
            "/releases/{a}",
            "/releases/{a}/{b}",
            "/api/v1/releases/{a}/{b}",
            "/running/queue/{a}/{b}/{c}",
            "/api/v1/running/job/{a}",
            "/api/v1/running/queue/{a}/{b}/{c}",
            "/packages/{a}/badge.svg",
            "/packages/{a}/{b}/{c}/badge.svg",
            "/packages/{a}/{b}/{c}/feed.atom",
            "/packages/{a}/{b}/{c}/history.svg",
            "/packages/{a}/{b}/{c}/{d}/changes",
            "/api/v1/packages/{a}/{b}/{c}/{d}/changes",
        ]
    ),  # fmt: skip
    a=segment,
    b=segment,
    c=segment,
    d=segment,
    params=query,
)
def test_parametrised_routes(clients, template, a, b, c, d, params):
    path = template.format(a=_quote(a), b=_quote(b), c=_quote(c), d=_quote(d))
    _get(clients, "parametrised", path, params)


@_settings()
@given(
    container=st.sampled_from(
        [
            "autopkgtest-noble",
            "autopkgtest-empty",
            "autopkgtest-noble-bryce-chrony-merge",
            hostile_site.PRIVATE_CONTAINER,
        ]
    )  # fmt: skip
    | segment,
    name=st.lists(segment, max_size=7),
    params=query,
    static=st.booleans(),
)
def test_results_and_static_files(clients, container, name, params, static):
    if static:
        path = "/static/" + "/".join(_quote(s) for s in [container, *name])
    else:
        path = "/results/" + _quote(container) + ("/" + "/".join(_quote(s) for s in name) if name else "")
    _get(clients, "results_static", path, params)


@_settings()
@given(
    container=st.sampled_from([hostile_site.PRIVATE_CONTAINER, "autopkgtest-noble"]) | segment,
    name=st.lists(segment, max_size=7),
    logged_in=st.sampled_from([None, "joe", "mallory"]),
)
def test_private_results(clients, container, name, logged_in):
    client = clients["private"]
    client._cookies.clear()
    if logged_in:
        login(client, logged_in)
    path = "/private-results/" + _quote(container) + ("/" + "/".join(_quote(s) for s in name) if name else "")
    response = client.get(path)
    check("private", response, allowed_503=True)
    if logged_in != "joe":
        assert hostile_site.PRIVATE_LOG not in response.get_data()


REQUEST_KEYS = ["release", "arch", "package", "trigger", "ppa", "env", "all-proposed", "readable-by", "build-git",
                "testname", "delete", "swiftuser", "requester", "test-git", "x"]  # fmt: skip
request_params = st.lists(
    st.tuples(
        st.sampled_from(REQUEST_KEYS) | text, st.sampled_from(["noble", "amd64", "hello", "hello/2.10-5", "1"]) | text
    ),
    max_size=8,
)


@_settings()
@given(params=request_params, method=st.sampled_from(["GET", "POST"]), who=st.sampled_from([None, "joe", "eve"]))
def test_request_cgi(clients, params, method, who):
    client = clients["request"]
    client._cookies.clear()
    if who:
        login(client, who, teams=["autopkgtest-requestors"] if who == "joe" else [])
    if method == "GET":
        response = client.get("/request.cgi", query_string=params)
    else:
        response = client.post("/request.cgi", data=MultiDict(params))
    # 503: Launchpad or RabbitMQ unavailable (the site's broker is a closed port on purpose).
    check("request", response, allowed_503=True)


@_settings()
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
        ),  # fmt: skip
    ),
    signed=st.sampled_from(["valid", "none", "wrong", "sha1-only"]),
)
def test_github_webhook(clients, params, event, body, signed):
    client = clients["request"]
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


@_settings()
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
    | text,  # fmt: skip
    logged_in=st.booleans(),
)
def test_login_next_never_leaves_the_site(clients, path, method, nxt, logged_in):
    client = _client(clients, path)
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
    "/results/..%2Fsecret.txt", "/results/%2e%2e/secret.txt", "/results/autopkgtest-noble/..%2F..%2Fsecret.txt",
    "/results/autopkgtest-noble/%2e%2e/%2e%2e/secret.txt", "/results/..%2Fresults-secret/log.gz",
    "/results/autopkgtest-noble/noble/../../../secret.txt", "/results/autopkgtest-noble/%2Fetc%2Fpasswd",
    "/results/autopkgtest-noble/..%5C..%5Csecret.txt", "/results/autopkgtest-noble/%252e%252e/%252e%252e/secret.txt",
    "/results/autopkgtest-noble/noble%00/../../secret.txt", "/results/.", "/results/..", "/results/%2e%2e",
    "/static/..%2F..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/static/../../secret.txt",
    "/private-results/private-autopkgtest-noble/..%2F..%2Fsecret.txt",
    "/private-results/private-autopkgtest-noble/noble/amd64/h/hello/..%2F..%2F..%2F..%2F..%2Fsecret.txt/log.gz",
    "/private-results/private-..%2Fresults-secret/noble/amd64/h/hello/x/log.gz",
    "/private-results/private-autopkgtest-noble/noble/amd64/h/hello/../../../../../../secret.txt",
    "/private-results/private-autopkgtest-noble/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/packages/h/hello/noble/amd64/..%2F..%2F..%2F..%2Fsecret.txt@/log",
    "/packages/hello/noble/amd64/%2e%2e@/log", "/packages/hello/noble/amd64/..@/log",
    "/packages/..%2F..%2Fresults-secret/noble/amd64/20240101_000000_aaaaa@/log",
    "/api/v1/packages/hello/noble/amd64/..%2F..%2Fsecret.txt@/log",
]  # fmt: skip


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("who", [None, "joe"])
def test_path_traversal_refused(clients, path, who):
    client = _client(clients, path)
    client._cookies.clear()
    if who:
        login(client, who)
    response = client.get(path)
    check("traversal", response, allowed_503=True)
    assert response.status_code >= 300, (path, response.status_code)
    HITS["traversal"]["refused"] += 1


@pytest.fixture(scope="module")
def clients_without_site_url(site):
    """The apps with ``[web] site_url`` unset: absolute links and the ``next`` check come from the request."""
    from webcontrol import config as configmod

    values = json.loads(json.dumps(site.values))
    values["web"].pop("site_url", None)
    config = configmod.from_dict(values)
    apps = {"browse": create_browse(config), "request": create_request(config), "private": create_private(config)}
    for app in apps.values():
        app.testing = False
    return {name: app.test_client() for name, app in apps.items()}


header_value = st.one_of(st.sampled_from(MARKUP), st.sampled_from(NASTY), st.text(max_size=60)).map(
    lambda value: value.replace("\r", "").replace("\n", "")
)


@_settings()
@given(
    route=st.sampled_from(
        [
            "/",
            "/packages/hello",
            "/packages/h/hello/noble/amd64",
            "/user/bryce/",
            "/running",
            "/request.cgi",
            "/login",
            "/logout",
            "/recent",
            "/api/v1/recent",
            "/static/autopkgtest.db",
            "/results/autopkgtest-noble",
            "/private-results/x",
            "/health",
            "/testlist",
        ]
    ),  # fmt: skip
    host=st.sampled_from(["evil.example", "autopkgtest.example.com", "a b", "<zzq>", "evil.example:99999", ""])
    | header_value,
    proto=st.sampled_from(["https", "http", "javascript", "<zzq>", ""]) | header_value,
    cookie=st.sampled_from(
        [
            "",
            "session=garbage",
            "session=.eJw.x.y",
            "X-Api-Key=joe:k",
            "X-Api-Key=:::",
            "X-Api-Key=<zzq>",
            "session=" + "A" * 5000,
        ]
    )
    | header_value,  # fmt: skip
    extra=st.dictionaries(
        st.sampled_from(
            [
                "If-Modified-Since",
                "Range",
                "Accept",
                "Accept-Language",
                "Referer",
                "Origin",
                "X-Forwarded-Host",
                "User-Agent",
                "Content-Type",
            ]
        ),  # fmt: skip
        header_value,
        max_size=4,
    ),
    with_site_url=st.booleans(),
)
def test_hostile_headers(clients, clients_without_site_url, route, host, proto, cookie, extra, with_site_url):
    chosen = clients if with_site_url else clients_without_site_url
    client = _client(chosen, route)
    client._cookies.clear()
    headers = {"X-Forwarded-Proto": proto, "Cookie": cookie, **extra}
    try:
        response = client.get(route, headers=headers, base_url=f"http://{host or 'localhost'}")
    except ValueError:  # a Host the test client itself cannot parse: a real server answers 400 first
        return
    check("headers", response, allowed_503=route == "/health")


def test_zz_report(figures):
    """Runs last in this module: the per-family counts become the module's figures."""
    total = collections.Counter()
    for counts in HITS.values():
        total.update(counts)
    figures.update(
        examples_per_family=EXAMPLES,
        families={name: dict(counts) for name, counts in sorted(HITS.items())},
        requests_tried=total["requests"],
        responses_500=sum(v for k, v in total.items() if k.startswith("status_5") and k != "status_503"),
        unescaped_echoes=total["unescaped_echo"],
        traversals_refused=total["refused"],
    )
    assert total["requests"] > 0
