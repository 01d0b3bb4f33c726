# SPDX-License-Identifier: GPL-3.0-or-later
"""Classification, flakiness and state changes on crafted histories with known answers."""

from __future__ import annotations

import sqlite3

import pytest

from webcontrol import db, flakiness, insight
from webcontrol.db import ResultRecord
from webcontrol.history import Result
from webcontrol.insight import Run

P, F, N, T, D, E = 0, 4, 8, 16, 99, 20


def history(*specs):
    """Runs oldest first from ``(exitcode, version[, triggers])`` tuples."""
    runs = []
    for index, spec in enumerate(specs):
        code, version, *rest = spec
        runs.append(Run(f"20240101_{index:06d}_aaaaa@", version, rest[0] if rest else f"pkg/{version}", code))
    return runs


def classes(*specs):
    runs = history(*specs)
    return insight.classify_history(list(reversed(runs)), complete=True)[::-1]


def test_first_runs():
    assert classes((P, "1")) == ["pass"]
    assert classes((F, "1")) == ["always_failed"]
    assert classes((N, "1")) == ["neutral"]
    assert classes((T, "1")) == ["tmpfail"]
    assert classes((D, "1")) == ["denylisted"]
    # Error (20) and unknown codes are failures.
    assert classes((E, "1"), (42, "1")) == ["always_failed", "always_failed"]


def test_regression_then_fixed_on_new_versions():
    assert classes((P, "1"), (F, "2"), (F, "2"), (P, "3")) == ["pass", "regression", "regression", "fixed"]


def test_regression_by_trigger_on_the_same_version():
    got = classes((P, "1", "pkg/1"), (F, "1", "pkg/1 glib2.0/2.80"))
    assert got == ["pass", "regression"]


def test_retry_of_the_same_request_that_passes_is_flaky():
    # Several triggers compare as a set: order and spacing do not matter.
    got = classes((P, "1", "a/1"), (F, "1", "a/1 glib2.0/2"), (P, "1", "glib2.0/2  a/1"))
    assert got == ["pass", "regression", "flaky"]


def test_fixed_by_another_trigger_on_the_same_version():
    assert classes((F, "1", "pkg/1"), (P, "1", "pkg/1 dep/2")) == ["always_failed", "fixed"]


def test_alternation_on_one_version_is_flaky():
    got = classes((P, "1"), (F, "1"), (P, "1"), (F, "1"), (F, "1"))
    assert got == ["pass", "regression", "flaky", "flaky", "flaky"]


def test_alternation_on_other_versions_does_not_count():
    got = classes((P, "1"), (F, "1"), (P, "2"), (F, "3"))
    assert got == ["pass", "regression", "fixed", "regression"]


def test_non_decisive_results_are_skipped():
    got = classes((P, "1"), (T, "1"), (N, "1"), (D, "1"), (F, "2"), (T, "2"), (P, "2"))
    assert got == ["pass", "tmpfail", "neutral", "denylisted", "regression", "tmpfail", "flaky"]
    # Only non-decisive results before: the first failure has nothing to compare with.
    assert classes((N, "1"), (T, "1"), (F, "1")) == ["neutral", "tmpfail", "always_failed"]


def test_a_pass_outside_the_window_is_forgotten():
    specs = [(P, "1")] + [(F, "2")] * (insight.WINDOW + 1)
    got = classes(*specs)
    assert got[1 : insight.WINDOW + 1] == ["regression"] * insight.WINDOW
    assert got[insight.WINDOW + 1] == "always_failed"


def test_unknown_version_equals_only_unknown():
    assert classes((P, "unknown"), (F, "unknown"), (P, "unknown")) == ["pass", "regression", "flaky"]
    assert classes((P, None), (F, "unknown"), (P, None)) == ["pass", "regression", "fixed"]


def test_truncated_history_leaves_the_context_rows_unclassified():
    runs = list(reversed(history(*[(P, "1")] * 25)))
    got = insight.classify_history(runs, complete=False)
    assert got[:5] == ["pass"] * 5 and got[5:] == [None] * 20


def test_flakiness_score():
    runs = list(reversed(history((P, "1"), (F, "1"), (P, "1"), (T, "1"), (F, "1"), (P, "2"), (P, "2"))))
    value = insight.flakiness(runs)
    # Version 1: P F P F = 3 flips in 3 pairs; version 2: P P = 0 in 1.
    assert (value.flips, value.pairs, value.runs, value.score) == (3, 4, 6, 0.75)
    assert value.is_flaky
    assert insight.flakiness([]).score == 0.0
    single = insight.flakiness(reversed(history((P, "1"), (F, "1"))))
    assert (single.flips, single.is_flaky) == (1, False)
    # Only the newest WINDOW results count.
    old_flips = history(*([(P, "1"), (F, "1")] * 10 + [(P, "2")] * insight.WINDOW))
    assert insight.flakiness(reversed(old_flips)).flips == 0


def test_state_changes():
    runs = list(reversed(history((P, "1"), (P, "1"), (T, "1"), (F, "2"), (F, "2"), (T, "2"), (P, "3"), (D, "3"))))
    changes = insight.state_changes(runs, complete=True)
    # Newest first: denylisted, pass (after fail; the tmpfail in between changes nothing), fail, first pass.
    assert [(runs[c.index].run_id[-13:-7], c.previous, c.current) for c in changes] == [
        ("000007", "pass", "denylisted"),
        ("000006", "fail", "pass"),
        ("000003", "pass", "fail"),
        ("000000", None, "pass"),
    ]
    assert [c.current for c in insight.state_changes(runs[:3], complete=False)] == ["denylisted"]


def test_package_diff():
    old = insight.parse_testbed_packages("libc6\t2.39-0ubuntu8\nzlib1g\t1:1.3\npython3 3.12.3-1\ngone\t1.0\nodd\tabc\n")
    new = insight.parse_testbed_packages("libc6\t2.39-0ubuntu9\nzlib1g\t1:1.2\npython3\t3.12.3-1\nnew\t0.1\nodd\t#\n")
    diff = insight.package_diff(old, new)
    assert diff == {
        "added": [{"name": "new", "version": "0.1"}],
        "removed": [{"name": "gone", "version": "1.0"}],
        "upgraded": [{"name": "libc6", "old": "2.39-0ubuntu8", "new": "2.39-0ubuntu9"}],
        "downgraded": [{"name": "zlib1g", "old": "1:1.3", "new": "1:1.2"}],
        "changed": [{"name": "odd", "old": "abc", "new": "#"}],
    }
    # Debian ordering, not string ordering: ~ sorts before anything.
    assert insight.package_diff({"a": "1.0"}, {"a": "1.0~rc1"})["downgraded"]


# On a DB --------------------------------------------------------------------------------------


@pytest.fixture
def conn(tmp_path):
    path = tmp_path / "public.db"
    setup = sqlite3.connect(path)
    db.create_public_schema(setup)
    setup.commit()
    setup.isolation_level = None
    specs = [(P, "1"), (F, "1"), (P, "1"), (T, "1"), (F, "2"), (F, "2"), (P, "3")] * 10
    records = [
        ResultRecord("noble", "amd64", "hello", run.run_id, run.version, run.triggers, 10, run.exitcode)
        for run in history(*specs)
    ]
    records += [
        ResultRecord("noble", "arm64", "hello", run.run_id, run.version, run.triggers, 10, run.exitcode)
        for run in history((F, "1"), (P, "1"))
    ]
    db.record_results(setup, records)
    setup.close()
    connection = db.connect_ro(path)
    yield connection
    connection.close()


def rows_of(conn, arch, limit=None, before=None):
    sql = (
        "SELECT test.package, test.release, test.arch, run_id, version, triggers, duration, exitcode, requester,"
        " env, uuid FROM result JOIN test ON test.id = result.test_id WHERE test.arch = ?"
    )
    args = [arch]
    if before:
        sql += " AND run_id < ?"
        args.append(before)
    sql += " ORDER BY run_id DESC"
    if limit:
        sql += f" LIMIT {limit}"
    return [Result(*tuple(row)) for row in conn.execute(sql, args)]


def test_classify_rows_matches_the_full_history(conn):
    everything = rows_of(conn, "amd64")
    expected = insight.classify_history(everything, complete=True)
    # Pages of a history, the last one reaching the first run.
    page = rows_of(conn, "amd64", limit=15, before=everything[30].run_id)
    assert insight.classify_rows(conn, page) == expected[31:46]
    tail = rows_of(conn, "amd64", limit=15, before=everything[59].run_id)
    assert insight.classify_rows(conn, tail) == expected[60:]
    # Rows with gaps and from several tests (as on /recent filtered by result).
    mixed = [everything[3], rows_of(conn, "arm64")[0], everything[40], everything[69]]
    assert insight.classify_rows(conn, mixed) == [expected[3], "flaky", expected[40], expected[69]]
    # Dicts work too, and a row that is not stored gets None.
    as_dict = {
        "package": "hello",
        "release": "noble",
        "arch": "amd64",
        "run_id": everything[5].run_id,
        "version": everything[5].version,
        "triggers": everything[5].triggers,
        "exitcode": everything[5].exitcode,
    }
    unknown = dict(as_dict, package="nope")
    assert insight.classify_rows(conn, [as_dict, unknown]) == [expected[5], None]


def test_rows_of_many_tests_one_each_are_classified_as_their_histories(conn, tmp_path):
    """User pages and /recent show one row per test: each is classified from its own earlier results."""
    everything = rows_of(conn, "amd64")
    expected = insight.classify_history(everything, complete=True)
    arm = rows_of(conn, "arm64")
    for index, row in enumerate(everything):
        assert insight.classify_rows(conn, [row, arm[1]]) == [expected[index], "always_failed"], index
    # With the classifications publish-db stores, the newest result of a test takes the stored one.
    path = tmp_path / "public.db"
    writer = sqlite3.connect(path)
    flakiness.create_tables(writer)
    writer.execute(
        f"INSERT INTO {flakiness.TABLE}(test_id, last_run_id, classification) VALUES (?, ?, 'neutral'), (?, ?, NULL)",
        (
            insight.test_id(conn, "hello", "noble", "amd64"),
            everything[0].run_id,
            insight.test_id(conn, "hello", "noble", "arm64"),
            arm[0].run_id,
        ),
    )
    writer.commit()
    writer.close()
    published = db.connect_ro(path)  # a new publish: web requests open the DB anew
    assert insight.classify_rows(published, [everything[0], arm[0]]) == ["neutral", "flaky"]
    assert insight.classify_rows(published, [everything[9]]) == [expected[9]]
    published.close()


def test_classification_for_and_last_pass(conn):
    everything = rows_of(conn, "amd64")
    expected = insight.classify_history(everything, complete=True)
    test = insight.test_id(conn, "hello", "noble", "amd64")
    assert [insight.classification_for(conn, test, r.run_id) for r in everything[:8]] == expected[:8]
    assert insight.classification_for(conn, test, "20990101_000000@") is None
    failing = everything[1]  # (F, "2") with a pass four runs earlier
    assert failing.exitcode == F
    assert insight.last_passing_run(conn, test, failing.run_id).run_id == everything[4].run_id


def test_history_page_reads_a_bounded_number_of_rows(conn):
    """The query plan is a primary-key search, not a scan of the history."""
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT run_id, version, triggers, exitcode FROM result"
            " WHERE test_id = 1 AND run_id <= 'x' ORDER BY run_id DESC LIMIT 5"
        )
    )
    assert "SEARCH result USING" in plan and "TEMP B-TREE" not in plan
