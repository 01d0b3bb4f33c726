# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile HTTP input, browse and private-results: property-based requests over every page family.

hypothesis builds paths, query strings and headers from hostile text
(markup, quotes, traversal, NUL, CR/LF, huge and non-ASCII values) mixed with
real names so requests also reach the deeper code; every response goes
through :func:`tests.faults.hostile.check`.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.fixtures import login
from tests.faults import hostile_site
from tests.faults.hostile import (
    check,
    client_for,
    get_checked,
    header_value,
    hostile_settings,
    query,
    quote_segment,
    segment,
)


@hostile_settings()
@given(segments=st.lists(segment, min_size=1, max_size=6), params=query, api=st.booleans())
def test_packages_routes(hostile_clients, segments, params, api):
    path = ("/api/v1" if api else "") + "/packages/" + "/".join(quote_segment(s) for s in segments)
    get_checked(hostile_clients, "packages", path, params)


@hostile_settings()
@given(
    kind=st.sampled_from(["user", "user/", "ppa", "ppa/x", "feed.atom"]),
    user=segment,
    ppa=segment,
    params=query,
    api=st.booleans(),
)
def test_user_routes(hostile_clients, kind, user, ppa, params, api):
    tail = {"user": "", "user/": "/", "ppa": "/ppa", "ppa/x": f"/ppa/{quote_segment(ppa)}", "feed.atom": "/feed.atom"}[
        kind
    ]
    path = ("/api/v1" if api and kind != "feed.atom" else "") + f"/user/{quote_segment(user)}{tail}"
    get_checked(hostile_clients, "user", path, params)


@hostile_settings()
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
    ),
    params=query,
)
def test_fixed_routes_with_hostile_queries(hostile_clients, route, params):
    get_checked(hostile_clients, "fixed", route, params, allowed_503=route == "/health")


@hostile_settings()
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
    ),
    a=segment,
    b=segment,
    c=segment,
    d=segment,
    params=query,
)
def test_parametrised_routes(hostile_clients, template, a, b, c, d, params):
    path = template.format(a=quote_segment(a), b=quote_segment(b), c=quote_segment(c), d=quote_segment(d))
    get_checked(hostile_clients, "parametrised", path, params)


@hostile_settings()
@given(
    container=st.sampled_from(
        [
            "autopkgtest-noble",
            "autopkgtest-empty",
            "autopkgtest-noble-bryce-chrony-merge",
            hostile_site.PRIVATE_CONTAINER,
        ]
    )
    | segment,
    name=st.lists(segment, max_size=7),
    params=query,
    static=st.booleans(),
)
def test_results_and_static_files(hostile_clients, container, name, params, static):
    if static:
        path = "/static/" + "/".join(quote_segment(s) for s in [container, *name])
    else:
        path = "/results/" + quote_segment(container) + ("/" + "/".join(quote_segment(s) for s in name) if name else "")
    get_checked(hostile_clients, "results_static", path, params)


@hostile_settings()
@given(
    container=st.sampled_from([hostile_site.PRIVATE_CONTAINER, "autopkgtest-noble"]) | segment,
    name=st.lists(segment, max_size=7),
    logged_in=st.sampled_from([None, "joe", "mallory"]),
)
def test_private_results(hostile_clients, container, name, logged_in):
    client = hostile_clients["private"]
    client._cookies.clear()
    if logged_in:
        login(client, logged_in)
    path = (
        "/private-results/"
        + quote_segment(container)
        + ("/" + "/".join(quote_segment(s) for s in name) if name else "")
    )
    response = client.get(path)
    check("private", response, allowed_503=True)
    if logged_in != "joe":
        assert hostile_site.PRIVATE_LOG not in response.get_data()


@hostile_settings()
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
    ),
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
    | header_value,
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
        ),
        header_value,
        max_size=4,
    ),
    with_site_url=st.booleans(),
)
def test_hostile_headers(hostile_clients, hostile_clients_nosite, route, host, proto, cookie, extra, with_site_url):
    chosen = hostile_clients if with_site_url else hostile_clients_nosite
    client = client_for(chosen, route)
    client._cookies.clear()
    headers = {"X-Forwarded-Proto": proto, "Cookie": cookie, **extra}
    try:
        response = client.get(route, headers=headers, base_url=f"http://{host or 'localhost'}")
    except ValueError:  # a Host the test client itself cannot parse: a real server answers 400 first
        return
    check("headers", response, allowed_503=route == "/health")
