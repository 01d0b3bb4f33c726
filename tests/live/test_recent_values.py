# SPDX-License-Identifier: GPL-3.0-or-later
"""RecentValues, the bounded map of computed values that the pages' caches share."""

from __future__ import annotations

import pytest

from webcontrol.web.browse.live_cache import RecentValues


def test_a_kept_value_is_not_computed_again_and_the_least_recent_goes_first():
    values = RecentValues(size=2)
    computed = []

    def make(name):
        computed.append(name)
        return name.upper()

    assert values.get(("a",), lambda: make("a")) == "A"
    assert values.get(("b",), lambda: make("b")) == "B"
    assert values.get(("a",), lambda: make("a")) == "A"  # kept, and now the most recent
    values.get(("c",), lambda: make("c"))  # pushes out b, not a
    values.get(("a",), lambda: make("a"))
    values.get(("b",), lambda: make("b"))
    assert computed == ["a", "b", "c", "b"]


def test_a_value_keep_refuses_is_answered_but_computed_again_next_time():
    values = RecentValues()
    answers = iter([None, {"final": False}, {"final": True}])
    computed = []

    def make():
        computed.append(1)
        return next(answers)

    def final(value):
        return value is not None and value["final"]

    assert values.get(("run",), make, keep=final) is None
    assert values.get(("run",), make, keep=final) == {"final": False}
    assert values.get(("run",), make, keep=final) == {"final": True}
    assert values.get(("run",), make, keep=final) == {"final": True}
    assert len(computed) == 3


def test_a_failed_computation_keeps_nothing():
    values = RecentValues()

    def broken():
        raise OSError("store down")

    with pytest.raises(OSError):
        values.get(("x",), broken)
    assert values.get(("x",), lambda: "fine") == "fine"


def test_a_value_of_a_new_file_version_frees_the_values_it_supersedes():
    values = RecentValues(size=100)
    for offset in range(3):
        values.get(("v1", "queued", offset), lambda: "old")
    values.get(("v1", "running", 0), lambda: "running")
    values.get(("v2", "queued", 0), lambda: "new", supersedes=lambda old: old[1] == "queued" and old[0] != "v2")
    kept = []
    for key in [("v1", "queued", n) for n in range(3)] + [("v1", "running", 0), ("v2", "queued", 0)]:
        values.get(key, lambda key=key: kept.append(key))
    # Only the earlier queued values were dropped (each computed again just now); the running one stayed.
    assert kept == [("v1", "queued", 0), ("v1", "queued", 1), ("v1", "queued", 2)]
