# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the hostile-input tests: strategies, the site and its apps, the response checks.

Every response of every family goes through :func:`check`: status below 500
(503 only where the contract says so), JSON that parses, no injected tag
unescaped in HTML, no CR/LF in ``Location``, never the secret file next to
the store, and never a private run's log outside private-results. Counts per
family are kept in :data:`HITS`; the fault suite's conftest reports them.
"""

from __future__ import annotations

import collections
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.faults import hostile_site
from tests.faults.sizes import size
from webcontrol import config as configmod
from webcontrol.web.browse import create_app as create_browse
from webcontrol.web.private import create_app as create_private
from webcontrol.web.request import create_app as create_request

EXAMPLES = size("hypothesis_examples", 150, 1500)
TAG = "<zzq"
MARKUP = ['<zzq onload="x">', "\"'><zzq>", "<zzq/>", "</td><zzq>", "javascript:<zzq>"]
NASTY = [
    "",
    " ",
    "..",
    "../..",
    "../../secret.txt",
    "..%2f..%2fsecret.txt",
    "%2e%2e",
    "/",
    "//evil.example",
    "\\..\\..",
    "\x00",
    "%00",
    "a" * 3000,
    "😀",
    "ü",
    "{{7*7}}",
    "{0}",
    "%s%n",
    "@",
    ";",
    "\r\nX-Injected: 1",
    "'",
    '"',
    "null",
    "-1",
    "0",
    "99999999999999999999",
    "1e9",
    "NaN",
    "true",
    "[]",
    "{}",
]
REAL = [
    "hello",
    "libpng1.6",
    "glib2.0",
    "six",
    "chrony",
    "noble",
    "jammy",
    "amd64",
    "arm64",
    "s390x",
    "h",
    "libp",
    "c",
    "20240201_100000_a0000@",
    "20240326_184806_3f2a1@",
    "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
    "bryce",
    "joe",
    "log",
    "feed.atom",
    "badge.svg",
    "history.svg",
    "changes",
    "ppa",
    "ubuntu",
    "huge",
    "upstream",
]
text = st.one_of(st.sampled_from(MARKUP), st.sampled_from(NASTY), st.sampled_from(REAL), st.text(max_size=30))
segment = st.one_of(st.sampled_from(REAL), text)
HITS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="session")
def hostile_env(tmp_path_factory, fake_launchpad, openid_provider):
    built = hostile_site.build(tmp_path_factory.mktemp("hostile"), fake_launchpad.url, openid_provider.url)
    fake_launchpad.state.teams["joe"] = ["autopkgtest-requestors"]
    fake_launchpad.state.publish("hello", "2.10-5", "noble")
    return built


@pytest.fixture(scope="session")
def hostile_clients(hostile_env):
    apps = {
        "browse": create_browse(hostile_env.config),
        "request": create_request(hostile_env.config),
        "private": create_private(hostile_env.config),
    }
    for app in apps.values():
        app.testing = False  # errors must go through the apps' own handlers, as in production
    return {name: app.test_client() for name, app in apps.items()}


def client_for(clients, path: str):
    if path.rstrip("/") in ("/request.cgi", "/github/webhook", "/login", "/logout"):
        return clients["request"]
    if path.startswith("/private-results"):
        return clients["private"]
    return clients["browse"]


def quote_segment(value: str) -> str:
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


def hostile_settings():
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
        | text,
        text,
    ),
    max_size=5,
)


def get_checked(clients, family, path, params=(), allowed_503=False, **kwargs):
    client = client_for(clients, path)
    response = client.get(path, query_string=list(params), **kwargs)
    check(family, response, allowed_503)
    return response


@pytest.fixture(scope="session")
def hostile_clients_nosite(hostile_env):
    """The apps with ``[web] site_url`` unset: absolute links and the ``next`` check come from the request."""

    values = json.loads(json.dumps(hostile_env.values))
    values["web"].pop("site_url", None)
    config = configmod.from_dict(values)
    apps = {"browse": create_browse(config), "request": create_request(config), "private": create_private(config)}
    for app in apps.values():
        app.testing = False
    return {name: app.test_client() for name, app in apps.items()}


header_value = st.one_of(st.sampled_from(MARKUP), st.sampled_from(NASTY), st.text(max_size=60)).map(
    lambda value: value.replace("\r", "").replace("\n", "")
)


def summary() -> dict:
    """The figures of every family run so far."""
    total = collections.Counter()
    for counts in HITS.values():
        total.update(counts)
    return {
        "examples_per_family": EXAMPLES,
        "families": {name: dict(counts) for name, counts in sorted(HITS.items())},
        "requests_tried": total["requests"],
        "responses_500": sum(v for k, v in total.items() if k.startswith("status_5") and k != "status_503"),
        "unescaped_echoes": total["unescaped_echo"],
        "traversals_refused": total["refused"],
    }
