# SPDX-License-Identifier: GPL-3.0-or-later
"""Arbitrary query strings never make request.cgi fail with a 500 (docs/formats.rst, Replies)."""

from __future__ import annotations

import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.fixtures import login

KEYS = ["release", "arch", "package", "trigger", "ppa", "all-proposed", "readable-by", "env", "testname", "x"]
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["hello", "hello/1.0", "migration-reference/0", "amd64", "1", "joe/ppa", "a b c", "/", "%", ""]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=8))
def test_no_query_string_gives_500(client, site, launchpad, items):
    login(client)
    launchpad.state.publish("hello", "1.0", site.release)
    items = [(k, site.release if k == "release" and v == "hello" else v) for k, v in items]
    response = client.get("/request.cgi?" + urllib.parse.urlencode(items))
    assert response.status_code in (200, 400, 403, 404), (items, response.get_data(as_text=True)[:500])
