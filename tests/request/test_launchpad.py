# SPDX-License-Identifier: GPL-3.0-or-later
"""The Launchpad client (docs/formats.rst, Launchpad calls) against the fake Launchpad over HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.parse

import pytest

from tests.fakes.launchpad import FakeLaunchpad
from webcontrol.launchpad import Launchpad, LaunchpadUnavailable, Membership, TeamCache
from webcontrol.launchpad_limits import LaunchpadAnswers, RequestLaunchpad


@pytest.fixture
def lp(launchpad):
    return Launchpad(launchpad.url, timeout=1.0)


def test_request_urls_match_the_contract(lp, launchpad):
    launchpad.state.ppas.add(("joe", "tools"))
    launchpad.state.publish("hello", "1.0", "noble", component="universe")
    assert lp.ppa_exists("joe", "tools")
    found = lp.publication("hello", "noble", "1.0")
    assert found.published and found.component == "universe"
    assert not lp.can_upload("joe", "noble", "hello", "universe")
    root = launchpad.root
    calls = [_split(c) for c in launchpad.state.calls]
    # Entries are read by their self_link (the primary archive once per process, so maybe not here).
    assert {path for path, args in calls if not args} <= {"/1.0/ubuntu/+archive/primary"}
    assert [call for call in calls if call[1]] == [
        ("/1.0/~joe", {"ws.op": "getPPAByName", "distribution": f'"{root}ubuntu"', "name": '"tools"'}),
        (
            "/1.0/ubuntu/+archive/primary",
            {
                "ws.op": "getPublishedSources",
                "source_name": '"hello"',
                "distro_series": f'"{root}ubuntu/noble"',
                "status": "Published",
                "exact_match": "true",
                "version": '"1.0"',
            },
        ),
        (
            "/1.0/ubuntu/+archive/primary",
            {
                "ws.op": "checkUpload",
                "distroseries": f'"{root}ubuntu/noble"',
                "person": f'"{root}~joe"',
                "component": '"universe"',
                "pocket": "Proposed",
                "sourcepackagename": '"hello"',
            },
        ),
    ]


def _split(call: str) -> tuple[str, dict[str, str]]:
    """A recorded request as (path, decoded query arguments): launchpadlib orders them its own way."""
    path, _, query = call.partition("?")
    return path, dict(urllib.parse.parse_qsl(query))


@pytest.fixture
def fresh():
    """A Launchpad of its own: a new service root, so the client is built (WADL and all) in the test."""
    fake = FakeLaunchpad().start()
    yield fake
    fake.stop()


def test_all_pages_are_read(lp, launchpad):
    launchpad.state.page_size = 3
    launchpad.state.teams["joe"] = [f"team{i}" for i in range(10)]
    launchpad.state.participants["big"] = [f"user{i}" for i in range(7)]
    assert lp.super_teams("joe") == [f"team{i}" for i in range(10)]
    assert lp.participants("big") == [f"user{i}" for i in range(7)]
    assert launchpad.call_count("super_teams") == 4
    pages = [_split(c) for c in launchpad.state.calls if "/participants" in c]
    assert [args.get("ws.start", "0") for _, args in pages] == ["0", "3", "6"]


def test_unknown_person_has_no_teams(lp, launchpad):
    assert lp.super_teams("nobody") == [] and lp.participants("nobody") == []


def test_client_is_built_from_the_wadl_once(fresh, tmp_path):
    fresh.state.teams["joe"] = ["a"]
    fresh.state.participants["t"] = ["joe"]
    lp = Launchpad(fresh.url, timeout=5.0, cache_dir=tmp_path / "launchpadlib")
    assert lp.warm()
    assert lp.super_teams("joe") == ["a"] and lp.participants("t") == ["joe"]
    assert Launchpad(fresh.url, timeout=5.0).super_teams("joe") == ["a"]
    # The service root as WADL and as JSON, once for the process; then only the calls.
    assert fresh.state.discovery == ["/1.0/?", "/1.0/?"]
    # Only the service root is kept on disk (for the next process), never the answers.
    cached = [path.name for path in (tmp_path / "launchpadlib").rglob("*") if path.is_file()]
    assert sorted(name.split(",-")[-1].rsplit(",", 1)[0] for name in cached) == [
        "application,json",
        "application,vnd.sun.wadl+xml",
    ]
    assert all(",1.0,-" in name for name in cached), cached


def test_unusable_cache_folder_does_not_stop_calls(fresh, tmp_path):
    (tmp_path / "file").write_text("")
    fresh.state.teams["joe"] = ["a"]
    assert Launchpad(fresh.url, timeout=5.0, cache_dir=tmp_path / "file" / "launchpadlib").super_teams("joe") == ["a"]


@pytest.mark.parametrize("failure", ["500", "503", "html", "timeout"])
def test_failures_raise_unavailable(lp, launchpad, failure):
    launchpad.state.fail = failure
    with pytest.raises(LaunchpadUnavailable):
        lp.publication("hello", "noble")


def _questions(state, lp: Launchpad) -> dict:
    """One question per operation, each answered "yes" by ``state``."""
    state.ppas.add(("joe", "tools"))
    state.teams["joe"] = ["allowed"]
    state.participants["allowed"] = ["joe"]
    state.uploaders.add(("joe", "hello"))
    state.publish("hello", "1.0", "noble")
    return {
        "ppa": lambda: lp.ppa_exists("joe", "tools"),
        "publication": lambda: lp.publication("hello", "noble", "1.0"),
        "upload": lambda: lp.can_upload("joe", "noble", "hello", "main"),
        "teams": lambda: lp.super_teams("joe"),
        "participants": lambda: lp.participants("allowed"),
    }


def _fails_at_once(state, ask) -> None:
    """``ask()`` raises LaunchpadUnavailable after one request, without retrying."""
    before = len(state.calls) + len(state.discovery)
    with pytest.raises(LaunchpadUnavailable):
        ask()
    # No retries of the client's own (not even of a 503): the request's budget decides
    # how long Launchpad may take, and a failure ends the question at once.
    assert len(state.calls) + len(state.discovery) == before + 1, (state.calls, state.discovery)


@pytest.mark.parametrize("failure", ["500", "503", "html", "timeout"])
def test_failure_while_the_client_starts(fresh, failure):
    lp = Launchpad(fresh.url, timeout=1.0)
    ask = _questions(fresh.state, lp)["teams"]
    fresh.state.fail = failure
    _fails_at_once(fresh.state, ask)
    assert not lp.warm()
    fresh.state.fail = None
    assert ask() == ["allowed"]  # the client is built once Launchpad is back


@pytest.mark.parametrize("failure", ["500", "503", "html", "timeout"])
@pytest.mark.parametrize("operation", ["ppa", "publication", "upload", "teams", "participants"])
def test_every_operation_fails_unavailable_never_allowed(launchpad, failure, operation):
    lp = Launchpad(launchpad.url, timeout=1.0, positive_ttl_s=0)
    ask = _questions(launchpad.state, lp)[operation]
    assert ask()  # the client is up, the archive entry read
    launchpad.state.fail = failure
    _fails_at_once(launchpad.state, ask)
    launchpad.state.fail = None
    assert ask()


def test_failure_on_a_later_page_is_unavailable(lp, launchpad):
    launchpad.state.teams["joe"] = ["a", "b", "c", "d", "allowed"]
    launchpad.state.fail = "html"
    launchpad.state.fail_only = "ws.start=4"
    with pytest.raises(LaunchpadUnavailable):
        lp.super_teams("joe")
    launchpad.state.fail = "500"
    with pytest.raises(LaunchpadUnavailable):
        lp.super_teams("joe")


def test_concurrent_calls_from_many_threads(launchpad):
    """One client for the process, many threads at once: every answer is the right one."""
    state = launchpad.state
    state.page_size = 2
    for i in range(12):
        state.teams[f"user{i}"] = [f"team{i}-{k}" for k in range(i % 5 + 1)]
        state.publish(f"src{i}", f"{i}.0", "noble", component=("main", "universe")[i % 2])
        if i % 3 == 0:
            state.uploaders.add((f"user{i}", f"src{i}"))
    lp = Launchpad(launchpad.url, timeout=5.0, positive_ttl_s=0)

    def ask(i: int):
        return (
            lp.super_teams(f"user{i}"),
            lp.publication(f"src{i}", "noble", f"{i}.0").component,
            lp.publication(f"src{i}", "noble", "9.9").published,
            lp.can_upload(f"user{i}", "noble", f"src{i}", "main"),
        )

    def expected(i: int):
        return ([f"team{i}-{k}" for k in range(i % 5 + 1)], ("main", "universe")[i % 2], False, i % 3 == 0)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, [i % 12 for i in range(96)]))
    assert answers == [expected(i % 12) for i in range(96)]
    # And through the request pool of launchpad_limits, as request.cgi asks.
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        teams = list(
            pool.map(
                lambda i: RequestLaunchpad(lp, LaunchpadAnswers(0, 0), 10, 20.0).super_teams(f"user{i}"),
                range(12),
            )
        )
    assert teams == [expected(i)[0] for i in range(12)]


def test_unreachable_raises_unavailable():
    with pytest.raises(LaunchpadUnavailable):
        Launchpad("http://127.0.0.1:9/", timeout=1.0).super_teams("joe")


def test_only_positive_answers_are_reused(lp, launchpad):
    assert not lp.publication("hello", "noble", "1.0")
    launchpad.state.publish("hello", "1.0", "noble")
    assert lp.publication("hello", "noble", "1.0")
    assert lp.publication("hello", "noble", "1.0")
    assert launchpad.call_count("getPublishedSources") == 2


def test_team_cache_file(lp, launchpad, tmp_path):
    path = tmp_path / "team-cache.json"
    launchpad.state.teams["ann"] = ["a", "allowed"]
    launchpad.state.teams["bob"] = ["a"]
    membership = Membership(lp, ["allowed"], TeamCache(path, 3600))
    assert membership.is_member("ann") and membership.is_member("ann")
    assert not membership.is_member("bob") and not membership.is_member("bob")
    assert launchpad.call_count("~ann/super_teams") == 1
    assert launchpad.call_count("~bob/super_teams") == 2  # negative answers are not cached
    cache = json.loads(path.read_text())
    assert set(cache) == {"ann"} and abs(cache["ann"] - time.time()) < 60
    # Expired entries are asked again.
    assert not TeamCache(path, 3600).fresh("ann", now=time.time() + 7200)
