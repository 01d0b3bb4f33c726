# SPDX-License-Identifier: GPL-3.0-or-later
"""Every AMQP message parser under hypothesis-generated bodies, and what each consumer does next.

Bodies are real messages with fields replaced by generated JSON (numbers at
the edges of every range, deep nesting, odd types, huge strings) or raw text
JSON cannot express through ``json.dumps`` (overflowing numbers, nesting past
the parser's depth). For each body a parser either raises MalformedMessage
(the consumer base rejects it) or returns a message that the consumer can
finish with: download-results stores it in a real SQLite DB,
amqp-status-collector writes running.json, cache-amqp renders queued.json,
and browse.cgi serves the pages made from those files without a 500.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.sizes import size
from tests.live.helpers import browse_client
from webcontrol import db, ingest
from webcontrol.atomicfile import write_json_atomic
from webcontrol.messages import MAX_BODY_BYTES, CompletionMessage, MalformedMessage, TestRequest
from webcontrol.services.amqp_status_collector import StatusCollector
from webcontrol.services.cache_amqp import render_request

EXAMPLES = size("hypothesis_examples", 150, 1500)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

EDGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30)]
EDGE_FLOATS = [0.0, -0.0, 1e-320, 1.7976931348623157e308, -1.7976931348623157e308, 0.5, 1e19, 9.3e18]
EDGE_STRINGS = ["", " ", "\n", "unknown", "\x00", "\ud7ff\ue000", "é", "💥", "a/b", "../..", "<x>", "x" * 5000]

scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from(EDGE_INTS)
    | st.integers()
    | st.sampled_from(EDGE_FLOATS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EDGE_STRINGS)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
#: Raw JSON texts json.dumps never produces: overflowing and huge numbers, nesting past the limit.
RAW_VALUES = [
    "1e400",
    "-1e400",
    "1E+999",
    "-0",
    "0.0e0",
    "1" * 5000,
    "-" + "9" * 400,
    "1" * 400 + ".0",
    "1e-400",
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '"' + "\\ud800" + '"',
    '"\\udfff\\ud800"',
]
raw_values = st.sampled_from(RAW_VALUES)


def _mutated(base: dict) -> st.SearchStrategy[bytes]:
    """A real message with some fields replaced by generated JSON or raw text, some removed, some added."""
    keys = sorted(base)

    @st.composite
    def build(draw) -> bytes:
        data = dict(base)
        raw: dict[str, str] = {}
        for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)):
            choice = draw(st.integers(0, 3))
            if choice == 0:
                del data[key]
            elif choice == 1:
                raw[key] = draw(raw_values)
                data[key] = f"@@{key}@@"
            else:
                data[key] = draw(json_values)
        for key, value in draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)).items():
            data.setdefault(key, value)
        text = json.dumps(data, ensure_ascii=draw(st.booleans()))
        for key, value in raw.items():
            text = text.replace(json.dumps(f"@@{key}@@"), value, 1)
        return text.encode("utf-8", "surrogatepass")

    return build()


COMPLETION = {
    "architecture": "amd64",
    "container": "autopkgtest-noble",
    "duration": "342\n",
    "exitcode": 0,
    "package": "hello",
    "testpkg_version": "hello 2.10-3",
    "release": "noble",
    "requester": "joe\n",
    "swift_dir": "noble/amd64/h/hello/20240221_110051_a1b2c@",
    "triggers": "hello/2.10-3",
    "env": "",
    "uuid": "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
}
STATUS = {
    "release": "noble",
    "architecture": "amd64",
    "package": "hello",
    "running": True,
    "params": {"triggers": ["hello/2.10-3"], "submit-time": "2024-01-01 00:00:00"},
    "duration": 30,
    "logtail": "running tests\n",
    "uuid": "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
}
REQUEST_PARAMS = {"triggers": ["hello/2.10-3"], "requester": "joe", "submit-time": "2024-01-01 00:00:00+0000"}

odd_bodies = st.one_of(
    st.binary(max_size=200),
    st.just(b"x" * (MAX_BODY_BYTES + 1)),
    st.sampled_from([v.encode("utf-8", "surrogatepass") for v in RAW_VALUES]),
    json_values.map(lambda v: json.dumps(v).encode()),
)


def _parse(parser, body: bytes):
    """The parsed message, or None when the parser rejected it as malformed (any other error fails)."""
    try:
        return parser(body)
    except MalformedMessage:
        return None


@pytest.fixture(scope="module")
def results_db():
    conn = db.connect_rw(":memory:")
    yield conn
    conn.close()


@FUZZ
@given(body=_mutated(COMPLETION) | odd_bodies)
def test_completion_messages_are_stored_or_rejected(results_db, body):
    message = _parse(CompletionMessage.parse, body)
    if message is None:
        return
    try:
        record = ingest.record_from_completion(message)
    except ingest.NotIngested:
        return
    # download-results' write: the message's values must fit the DB.
    db.record_results(results_db, [record])


@pytest.fixture(scope="module")
def live_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-live")
    public = sqlite3.connect(root / "public.db", isolation_level=None)
    db.create_public_schema(public)
    db.record_results(
        public, [db.ResultRecord("noble", "amd64", "hello", "20240101_000000_aaaaa@", "1", "hello/1", 5, 0)]
    )
    public.close()
    return root, browse_client(root)


LIVE_PAGES = ["/running", "/api/v1/running", "/api/v1/running/status", "/static/running.json", "/admin"]


def _no_server_error(client, paths):
    for path in paths:
        response = client.get(path)
        assert response.status_code < 500, (path, response.get_data(as_text=True)[:500])


@FUZZ
@given(bodies=st.lists(_mutated(STATUS) | odd_bodies, min_size=1, max_size=3))
def test_status_messages_reach_running_json_or_are_rejected(live_site, bodies):
    root, client = live_site
    collector = StatusCollector("amqp://unused/", str(root / "running.json"), queue="unused")
    for body in bodies:
        message = _parse(collector.parse, body)
        if message is not None:
            collector.state.apply(message, time.monotonic())
    collector.write()
    assert collector.writes == 1, "running.json was not written"
    json.loads((root / "running.json").read_text(encoding="utf-8"))
    _no_server_error(client, LIVE_PAGES)


@FUZZ
@given(
    package=st.sampled_from(["hello", "", " ", "a b", "<x>", "💥", "x" * 300]) | st.text(max_size=20),
    params=_mutated(REQUEST_PARAMS) | odd_bodies,
    separator=st.sampled_from([b"\n", b" ", b"\t", b"", b"\n\n"]),
)
def test_queued_requests_render_or_are_rejected(live_site, package, params, separator):
    root, client = live_site
    body = package.encode("utf-8", "surrogatepass") + separator + params
    request = _parse(TestRequest.parse, body)
    if request is not None:
        TestRequest.parse(request.serialise())
    # cache-amqp shows every body, parsable or not; browse pages and JSON twins read what it wrote.
    rendered = render_request(body)
    queued = {
        "releases": ["noble"],
        "arches": ["amd64"],
        "queues": {"ubuntu": {"noble": {"amd64": {"size": 1, "requests": [rendered]}}}},
    }
    write_json_atomic(root / "queued.json", queued)
    _no_server_error(
        client,
        [
            "/queues.json",
            "/queued.json",
            "/queue_size.json",
            "/running",
            "/running/queue/ubuntu/noble/amd64",
            "/api/v1/running/queue/ubuntu/noble/amd64",
            "/api/v1/running/status",
            "/packages/hello",
        ],
    )


def test_sqlite_takes_every_integer_a_message_may_carry():
    """The range check matches SQLite's: the edges are accepted, one past them is malformed."""
    conn = sqlite3.connect(":memory:")
    for value in (2**63 - 1, -(2**63)):
        conn.execute("SELECT ?", (value,))
        body = json.dumps(COMPLETION | {"exitcode": value}).encode()
        assert CompletionMessage.parse(body).exitcode == value
    for value in (2**63, -(2**63) - 1):
        with pytest.raises(MalformedMessage, match="out of range"):
            CompletionMessage.parse(json.dumps(COMPLETION | {"exitcode": value}).encode())


@pytest.mark.parametrize(
    "request_text",
    [
        'hello\n{"requester": "\\ud800", "triggers": ["hello/1"]}',
        'hello\n{"triggers": ["hello/\\udfff"]}',
        'hello\n{"triggers": ["hello/1"], "submit-time": "\\ud800"}',
        "hello\n" + "[" * 990 + "]" * 990,
    ],
    ids=["requester", "trigger", "submit-time", "deep"],
)
def test_queued_request_that_no_page_can_show_is_a_malformed_request(live_site, request_text):
    """JSON escapes of lone surrogates are valid JSON but no UTF-8 page can carry them."""
    root, client = live_site
    queued = {
        "releases": ["noble"],
        "arches": ["amd64"],
        "queues": {"ubuntu": {"noble": {"amd64": {"size": 1, "requests": [request_text]}}}},
    }
    write_json_atomic(root / "queued.json", queued)
    _no_server_error(
        client, ["/running", "/running/queue/ubuntu/noble/amd64", "/api/v1/running/queue/ubuntu/noble/amd64"]
    )
    page = client.get("/running/queue/ubuntu/noble/amd64").get_data(as_text=True)
    assert "malformed request" in page
