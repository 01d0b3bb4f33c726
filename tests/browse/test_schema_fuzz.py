# SPDX-License-Identifier: GPL-3.0-or-later
"""schemathesis over every route browse.cgi describes in its own /api/v1/openapi.json.

Each generated request (valid and invalid parameters alike) goes to the JSON
route and to its HTML twin (the same path without ``/api/v1``): neither may
answer 500 or show a traceback, and a JSON answer must parse. Example counts
are bounded for CI (``AUTOPKGTEST_WEB_FAULTS_SCHEMATHESIS_EXAMPLES``; the soak
run takes ten times more) and the generation is derandomised, so a CI failure
reproduces.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.faults.sizes import size

EXAMPLES = size("schemathesis_examples", 100, 1000)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)


def _check(response, what: str) -> None:
    body = response.content if hasattr(response, "content") else response.get_data()
    text = body.decode("utf-8", "replace")
    assert response.status_code < 500, (what, response.status_code, text[:500])
    assert "Traceback" not in text, what


def _fuzz_operation(operation, client) -> int:
    calls = []

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call()
        calls.append(1)
        what = f"{case.method} {case.formatted_path} {case.query}"
        _check(response, what)
        if response.status_code == 200 and "json" in response.headers.get("Content-Type", [""])[0]:
            json.loads(response.content)
        html_path = case.formatted_path.removeprefix("/api/v1") or "/"
        if html_path != "/" and not html_path.endswith("/history.svg"):
            _check(client.get(html_path, query_string=case.query or {}), f"HTML twin {html_path} {case.query}")

    run()
    return len(calls)


def test_no_route_answers_500(app, client):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    counts = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        counts[operation.label] = _fuzz_operation(operation, client)
    # Every documented route was exercised (the document lists them all).
    assert len(counts) >= 25 and all(counts.values()), counts
    print(
        f"schemathesis: {len(counts)} operations, {sum(counts.values())} generated requests (each also to its HTML twin)"
    )
