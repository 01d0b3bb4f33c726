# SPDX-License-Identifier: GPL-3.0-or-later
"""The Launchpad client (docs/formats.rst, Launchpad calls) against the fake Launchpad over HTTP."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from webcontrol.launchpad import Launchpad, LaunchpadUnavailable, Membership, TeamCache


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
    calls = [urllib.parse.unquote(c) for c in launchpad.state.calls]
    assert calls[0] == f'/1.0/~joe?ws.op=getPPAByName&distribution="{root}ubuntu"&name="tools"'
    assert calls[1] == (
        f'/1.0/ubuntu/+archive/primary?ws.op=getPublishedSources&source_name="hello"'
        f'&distro_series="{root}ubuntu/noble"&status=Published&exact_match=true&version="1.0"'
    )
    assert calls[2] == (
        f'/1.0/ubuntu/+archive/primary?ws.op=checkUpload&distroseries="{root}ubuntu/noble"'
        f'&person="{root}~joe"&component=universe&pocket=Proposed&sourcepackagename="hello"'
    )


def test_all_pages_are_read(lp, launchpad):
    launchpad.state.page_size = 3
    launchpad.state.teams["joe"] = [f"team{i}" for i in range(10)]
    launchpad.state.participants["big"] = [f"user{i}" for i in range(7)]
    assert lp.super_teams("joe") == [f"team{i}" for i in range(10)]
    assert lp.participants("big")[-1] == "user6"
    assert launchpad.call_count("super_teams") == 4


@pytest.mark.parametrize("failure", ["500", "html", "timeout"])
def test_failures_raise_unavailable(lp, launchpad, failure):
    launchpad.state.fail = failure
    with pytest.raises(LaunchpadUnavailable):
        lp.publication("hello", "noble")


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
