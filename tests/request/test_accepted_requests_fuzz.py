# SPDX-License-Identifier: GPL-3.0-or-later
"""hypothesis over request.cgi's parameters from an allowed user: what it accepts, the consumers accept.

Valid requests with one or more parameters replaced by values at the edges
(many triggers, huge and non-ASCII values, whitespace, encoded surrogates,
PPAs with and without credentials, readers, arguments distro requests do not take), sent by
GET and by POST, through the real broker. request.cgi may refuse them (4xx,
or 503 when Launchpad says no); it may never answer 500, and every message it
queues must be one the workers' parser, cache-amqp and the live pages take
as a well-formed request of the package asked for.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import drain, login
from tests.faults.sizes import size
from webcontrol.livestate import MALFORMED_REQUEST, PRIVATE_JOB, parse_request_text
from webcontrol.messages import TestRequest
from webcontrol.services.cache_amqp import render_request

ARCHES = ("amd64", "arm64")
EDGES = st.sampled_from(
    [
        "",
        " ",
        "hello/1.0 ",
        " hello/1.0",
        "hello/1.0\n",
        "hello/1.0\tgzip/2",
        "hello/1.0 hello/1.0",
        "x" * 5000,
        "é",
        "💥",
        "\x00",
        "%ED%A0%80",
        "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
        "joe/tools",
        "joe:secret@joe/tools",
        "a/b/c",
        "1",
        "0",
        "true",
        "ALL_PROPOSED=1",
        "A=b c",
        "https://git.example/x",
        "https://git.example/x branch",
        "<x>",
        "../..",
        "hello/1.0" + " gzip/2" * 200,
    ]
)
#: Values each parameter takes in real requests, so that generated requests get past validation.
PLAUSIBLE = {
    "trigger": [
        "hello/1.0",
        "gzip/2",
        "hello/1.0 gzip/2",
        "migration-reference/0",
        "hello/1.0~ppa1",
        "hello/1.0,gzip/2",
    ],
    "ppa": ["joe/tools", "joe/tools ", "joe/other"],
    "all-proposed": ["1"],
    "readable-by": ["joe", "joe ana", "ana,joe"],
    "testname": ["smoke"],  # not a distro request argument: always refused
    "arch": list(ARCHES) + ["s390x", "AMD64"],
    "package": ["hello", "gzip", "Hello"],
}
KEYS = sorted(PLAUSIBLE)
edits = st.lists(
    st.sampled_from(KEYS).flatmap(
        lambda key: st.tuples(st.just(key), st.sampled_from(PLAUSIBLE[key]) | EDGES | st.text(max_size=40))
    ),
    min_size=1,
    max_size=4,
)


def _queued(amqp_uri, release) -> list[bytes]:
    return [body for arch in ARCHES for body in drain(amqp_uri, f"debci-{release}-{arch}")]


@pytest.fixture
def ready(site, launchpad, amqp_uri):
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.publish("gzip", "2", site.release)
    launchpad.state.publish("hello", "1.0~ppa1", site.release, archive="joe/tools")
    launchpad.state.ppas.add(("joe", "tools"))
    launchpad.state.uploaders.add(("joe", "hello"))
    yield site
    _queued(amqp_uri, site.release)


@settings(
    max_examples=size("hypothesis_examples", 150, 1500) // 3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=edits,
    keep=st.sets(st.sampled_from(["arch", "package", "trigger"])),
    method=st.sampled_from(["GET", "POST"]),
)
def test_accepted_requests_are_well_formed_messages(client, ready, amqp_uri, edits, keep, method):
    site = ready
    login(client)
    base = {"release": site.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0"}
    params = [(key, value) for key, value in base.items() if key == "release" or key in keep or key not in dict(edits)]
    params += edits
    if method == "GET":
        response = client.get("/request.cgi", query_string=params)
    else:
        response = client.post("/request.cgi", data=MultiDict(params))
    body = response.get_data(as_text=True)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 403, 404, 413, 503), (params, response.status_code, body[:500])
    assert "Traceback" not in body
    queued = _queued(amqp_uri, site.release)
    if response.status_code != 200:
        assert queued == [], (params, response.status_code)
        return
    assert queued, params
    packages = {value for key, value in params if key == "package"} or {"hello"}
    for message in queued:
        request = TestRequest.parse(message)
        assert request.package in packages and not request.bare
        assert json.loads(json.dumps(request.params)) == request.params
        rendered = render_request(message)
        assert rendered != MALFORMED_REQUEST
        if rendered != PRIVATE_JOB:
            assert parse_request_text(rendered) == (request.package, request.params)
