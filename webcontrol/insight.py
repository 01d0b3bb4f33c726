# SPDX-License-Identifier: GPL-3.0-or-later
"""Insight into a test's history: classification, flakiness, state changes, testbed diffs (docs/formats.rst, Insight routes).

A *test* is one (package, release, arch). Its results are ordered by
``run_id`` (string order = time order, docs/formats.rst, Containers and object names; run ids are unique per
test, the primary key, so the order has no ties). "Earlier" always means a
smaller run_id, never a lower version.

Kinds of a result are the verdicts of :func:`webcontrol.results.verdict`:
``pass`` (exit 0 or 2); ``neutral`` (8), ``tmpfail`` (16) and
``denylisted`` (99), which are *non-decisive*: they say nothing about
whether the test works, so they are never compared with and are skipped
when looking at earlier results; ``fail`` for everything else (4, 6, 12,
14, 20, unknown codes, a missing code).

Classification of one result R, computed from R and the :data:`WINDOW`
results of the same test immediately before it (of any kind; the
*decisive* ones among them are D, newest first). Versions are compared as
exact strings (``unknown`` equals only ``unknown``); trigger lists as sets
of whitespace-separated ``src/ver`` items, so ``"a/1 b/2"`` equals
``"b/2 a/1"`` and several triggers are one request. ``flips(R)`` counts,
over the results of D with R's version plus R itself (oldest first), the
neighbours whose kinds differ. The rules, first match wins:

1. R is neutral / tmpfail / denylisted → ``neutral`` / ``tmpfail`` /
   ``denylisted``.
2. R passes and D is empty (first decisive run) or D[0] passed → ``pass``.
3. R passes after a failure (D[0] failed):
   ``flaky`` if flips(R) >= 2 (the same version alternated), or if D[0] has
   R's version and R's trigger set (a retry of the same request passed);
   otherwise ``fixed``.
4. R fails and no result of D passed (this includes a first run, and a test
   that has not passed within the window) → ``always_failed``.
5. R fails, some result of D passed, flips(R) >= 2 → ``flaky``.
6. Otherwise (R fails and passed earlier in the window, on an earlier
   version or trigger, or once on the same version) → ``regression``. A
   failure streak after a pass stays ``regression`` until the pass leaves
   the window, then it is ``always_failed``.

Ties and edge cases: two results of one test never share a run_id, so
"previous" is always one result. Rules are tried in the order above, so a
result that fits two (a retried pass that also alternates) gets the first.
A test whose only earlier results are non-decisive behaves as a first run.
A missing exit code counts as a failure; a missing version is its own
version (``None``), distinct from ``unknown``.

Flakiness score of a test: over its last :data:`WINDOW` results, the
decisive ones are grouped by version; ``pairs`` = neighbouring results of
the same version, ``flips`` = those pairs whose kinds differ; score =
flips / pairs (0 without pairs). A test is listed as flaky when it has at
least :data:`MIN_FLIPS` flips (one flip can be a single regression or fix;
alternation needs two).

State changes (feeds): the *state* of a result is its kind, except that
``tmpfail`` has no state (a testbed failure changes nothing about the
package). A result is a state change when its state differs from that of
the nearest earlier result that has one, or when it is the first result
with a state.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from debian.debian_support import Version

from webcontrol import results

log = logging.getLogger(__name__)

#: How many earlier results a classification and a flakiness score look at.
WINDOW = 20
#: Flips needed before a test counts as flaky in the ranking.
MIN_FLIPS = 2
#: /recent filtered by classification looks at most this many newest results.
SCAN_MAX = 20_000
#: Every classification value, in display order.
CLASSIFICATIONS = ("pass", "regression", "always_failed", "fixed", "flaky", "neutral", "tmpfail", "denylisted")
#: Badge severity: the worst current state of a package is the one with the highest rank.
SEVERITY = {
    "denylisted": 0,
    "pass": 1,
    "fixed": 1,
    "neutral": 2,
    "tmpfail": 3,
    "flaky": 4,
    "always_failed": 5,
    "regression": 6,
}
#: The public-DB table publish-db fills (webcontrol.flakiness); it also stores each test's newest classification.
FLAKINESS_TABLE = "test_flakiness"
_HISTORY_COLUMNS = "run_id, version, triggers, exitcode"


@dataclass(frozen=True)
class Run:
    """The fields of a result that insight looks at."""

    run_id: str
    version: str | None
    triggers: str | None
    exitcode: int | None


def as_run(row: Any) -> Run:
    """A :class:`Run` from a history.Result, a result view dict, a sqlite3.Row or a Run."""
    if isinstance(row, Run):
        return row
    if isinstance(row, Mapping) or isinstance(row, sqlite3.Row):
        return Run(row["run_id"], row["version"], row["triggers"], row["exitcode"])
    return Run(row.run_id, row.version, row.triggers, row.exitcode)


def is_decisive(run: Run) -> bool:
    return results.is_decisive(run.exitcode)


def trigger_set(triggers: str | None) -> frozenset[str]:
    return frozenset(results.split_triggers(triggers))


def _flips(kinds: Sequence[str]) -> int:
    return sum(1 for before, after in zip(kinds, kinds[1:], strict=False) if before != after)


#: results.verdict of the known exit codes (a page classifies 10,000 rows against 20 earlier ones each).
_VERDICTS = {code: results.verdict(code) for code in (*results.RESULT_NAMES, None)}


def _verdict(exitcode: int | None) -> str:
    found = _VERDICTS.get(exitcode)
    return found if found is not None else results.verdict(exitcode)


def classify(row: Any, earlier: Sequence[Any]) -> str:
    """The classification of ``row`` given the results just before it, newest first.

    Only the first :data:`WINDOW` entries of ``earlier`` are used; pass
    fewer only when the test has no more (a shorter history is exact, a
    truncated one is not).
    """
    return _classify(as_run(row), [(each, _verdict(each.exitcode)) for each in map(as_run, earlier[:WINDOW])])


def _classify(run: Run, earlier: Sequence[tuple[Run, str]]) -> str:
    """:func:`classify` given (run, verdict) of the (at most WINDOW) results before ``run``, newest first."""
    own = _verdict(run.exitcode)
    if own in results.NON_DECISIVE:
        return own
    decisive = [(each, kind) for each, kind in earlier if kind not in results.NON_DECISIVE]
    same_version = [kind for each, kind in reversed(decisive) if each.version == run.version]
    flips = _flips([*same_version, own])
    if own == "pass":
        if not decisive or decisive[0][1] == "pass":
            return "pass"
        previous = decisive[0][0]
        retried = previous.version == run.version and trigger_set(previous.triggers) == trigger_set(run.triggers)
        return "flaky" if flips >= 2 or retried else "fixed"
    if not any(kind == "pass" for _each, kind in decisive):
        return "always_failed"
    return "flaky" if flips >= 2 else "regression"


def classify_history(rows_newest_first: Sequence[Any], complete: bool) -> list[str | None]:
    """Classify a contiguous slice of one test's history, newest first.

    With ``complete`` the slice reaches the test's first result; otherwise
    the last :data:`WINDOW` rows only serve as context and get ``None``.
    """
    runs = [as_run(row) for row in rows_newest_first]
    out: list[str | None] = []
    for index, run in enumerate(runs):
        earlier = runs[index + 1 : index + 1 + WINDOW]
        if len(earlier) < WINDOW and not complete:
            out.append(None)
        else:
            out.append(classify(run, earlier))
    return out


# Flakiness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flakiness:
    score: float
    flips: int
    pairs: int
    runs: int  # decisive results in the window

    @property
    def is_flaky(self) -> bool:
        return self.flips >= MIN_FLIPS


def flakiness(rows_newest_first: Iterable[Any]) -> Flakiness:
    """The flakiness of a test from its newest :data:`WINDOW` results (more are ignored)."""
    by_version: dict[str | None, list[str]] = {}
    runs = 0
    for index, row in enumerate(rows_newest_first):
        if index >= WINDOW:
            break
        run = as_run(row)
        if is_decisive(run):
            runs += 1
            by_version.setdefault(run.version, []).append(results.verdict(run.exitcode))
    flips = sum(_flips(kinds) for kinds in by_version.values())
    pairs = sum(len(kinds) - 1 for kinds in by_version.values())
    return Flakiness(score=round(flips / pairs, 4) if pairs else 0.0, flips=flips, pairs=pairs, runs=runs)


# State changes ------------------------------------------------------------------------------------


def state(exitcode: int | None) -> str | None:
    """The state a result puts its test in; None for tmpfail (no change)."""
    value = results.verdict(exitcode)
    return None if value == "tmpfail" else value


@dataclass(frozen=True)
class StateChange:
    index: int  # position in the rows given (newest first)
    previous: str | None  # None: the first known state
    current: str


def state_changes(rows_newest_first: Sequence[Any], complete: bool) -> list[StateChange]:
    """The rows that change their test's state, newest first.

    With ``complete`` the rows reach the first result, whose state is a
    change from nothing; otherwise the oldest row with a state only serves
    as the starting point.
    """
    runs = [as_run(row) for row in rows_newest_first]
    changes = []
    following: tuple[int, str] | None = None  # the newer row with a state, waiting for its predecessor
    for index, run in enumerate(runs):
        current = state(run.exitcode)
        if current is None:
            continue
        if following is not None and following[1] != current:
            changes.append(StateChange(following[0], current, following[1]))
        following = (index, current)
    if following is not None and complete:
        changes.append(StateChange(following[0], None, following[1]))
    return changes


# Testbed package diff ---------------------------------------------------------------------------------


def parse_testbed_packages(text: str | None) -> dict[str, str]:
    """``name -> version`` from ``testbed-packages`` (``dpkg-query --show`` lines: name, tab, version)."""
    packages = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            packages[parts[0]] = parts[1]
    return packages


def _compare(old: str, new: str) -> int | None:
    try:
        return (Version(new) > Version(old)) - (Version(new) < Version(old))
    except ValueError:
        return None


def package_diff(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """What changed from ``old`` (the last passing run) to ``new`` (the failing run).

    ``added``/``removed`` carry ``version``; ``upgraded``/``downgraded``
    carry ``old`` and ``new`` (Debian version order, python-debian);
    ``changed`` holds version strings that do not parse. Sorted by name.
    """
    diff: dict[str, list[dict[str, str]]] = {
        "added": [],
        "removed": [],
        "upgraded": [],
        "downgraded": [],
        "changed": [],
    }
    for name in sorted(set(old) | set(new)):
        if name not in old:
            diff["added"].append({"name": name, "version": new[name]})
        elif name not in new:
            diff["removed"].append({"name": name, "version": old[name]})
        elif old[name] != new[name]:
            order = _compare(old[name], new[name])
            key = {1: "upgraded", -1: "downgraded"}.get(order, "changed") if order is not None else "changed"
            diff[key].append({"name": name, "old": old[name], "new": new[name]})
    return diff


# Queries over the public DB (each an index lookup bounded by a LIMIT) ---------------------------------


def test_id(conn: sqlite3.Connection, package: str, release: str, arch: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM test WHERE package = ? AND release = ? AND arch = ?", (package, release, arch)
    ).fetchone()
    return row[0] if row else None


def runs_before(
    conn: sqlite3.Connection, test: int, run_id: str | None, limit: int, inclusive: bool = False
) -> list[Run]:
    """Up to ``limit`` results of a test older than ``run_id`` (all when None), newest first.

    Walks the primary key (test_id, run_id) backwards: cost ~ limit.
    """
    sql = f"SELECT {_HISTORY_COLUMNS} FROM result WHERE test_id = ?"
    args: list[Any] = [test]
    if run_id is not None:
        sql += " AND run_id <= ?" if inclusive else " AND run_id < ?"
        args.append(run_id)
    sql += " ORDER BY run_id DESC LIMIT ?"
    args.append(limit)
    return [Run(*row) for row in conn.execute(sql, args)]


def classification_for(conn: sqlite3.Connection, test: int, run_id: str) -> str | None:
    """The classification of one stored result (None if it is not stored). Reads WINDOW+1 rows."""
    rows = runs_before(conn, test, run_id, WINDOW + 1, inclusive=True)
    if not rows or rows[0].run_id != run_id:
        return None
    return classify(rows[0], rows[1:])


def _key(row: Any) -> tuple[str, str, str]:
    if isinstance(row, Mapping):
        return row["package"], row["release"], row["arch"]
    return row.package, row.release, row.arch


def _tests(
    conn: sqlite3.Connection, keys: list[tuple[str, str, str]]
) -> dict[tuple, tuple[int, str | None, str | None]]:
    """``key -> (test id, stored last_run_id, stored classification)`` for the keys that are tests.

    One statement per :data:`_KEYS_PER_STATEMENT` keys (test_package_uix seeks, and
    test_flakiness's primary key where publish-db made it; without the table the stored
    fields are None).
    """
    found: dict[tuple, tuple[int, str | None, str | None]] = {}
    for start in range(0, len(keys), _KEYS_PER_STATEMENT):
        chunk = keys[start : start + _KEYS_PER_STATEMENT]
        args = (json.dumps(chunk),)
        try:
            rows = conn.execute(_TESTS_SQL, args).fetchall()
        except sqlite3.OperationalError:
            # A public DB published before test_flakiness existed.
            rows = conn.execute(_TESTS_SQL_PLAIN, args).fetchall()
        for position, test, last_run_id, classification in rows:
            found[chunk[position]] = (test, last_run_id, classification)
    return found


_KEYS_PER_STATEMENT = 500
_TESTS_FROM = (
    " FROM json_each(?) AS k JOIN test ON test.package = json_extract(k.value, '$[0]')"
    " AND test.release = json_extract(k.value, '$[1]') AND test.arch = json_extract(k.value, '$[2]')"
)
_TESTS_SQL = (
    f"SELECT k.key, test.id, f.last_run_id, f.classification{_TESTS_FROM}"
    f" LEFT JOIN {FLAKINESS_TABLE} AS f ON f.test_id = test.id"
)
_TESTS_SQL_PLAIN = f"SELECT k.key, test.id, NULL, NULL{_TESTS_FROM}"


def _classify_one(conn: sqlite3.Connection, test: int, run: Run) -> str:
    """:func:`classify` of one result, reading its earlier results only as far as the answer needs.

    A passing result after a pass (most results) is decided by the first decisive earlier
    result, usually the one just before it; a non-decisive one by itself. The rows are read
    by one walk of the primary key that stops there.
    """
    own = results.verdict(run.exitcode)
    if own in results.NON_DECISIVE:
        return own
    cursor = conn.execute(
        f"SELECT {_HISTORY_COLUMNS} FROM result WHERE test_id = ? AND run_id < ? ORDER BY run_id DESC LIMIT ?",
        (test, run.run_id, WINDOW),
    )
    try:
        earlier: list[Run] = []
        if own == "pass":
            for row in cursor:
                previous = Run(*row)
                earlier.append(previous)
                if not is_decisive(previous):
                    continue
                if results.verdict(previous.exitcode) == "pass":
                    return "pass"
                if previous.version == run.version and trigger_set(previous.triggers) == trigger_set(run.triggers):
                    return "flaky"
                break
            else:
                return "pass"  # no decisive result in the window
        earlier += [Run(*row) for row in cursor]
        return classify(run, earlier)
    finally:
        cursor.close()


def classify_rows(conn: sqlite3.Connection, rows: Sequence[Any]) -> list[str | None]:
    """The classification of each row (history.Result objects or result-view dicts), in order.

    Rows are grouped by test; the tests are looked up together (:func:`_tests`). A
    test with a single row (user pages, /recent, package matrices) takes the
    classification publish-db stored in test_flakiness when the row is the test's newest
    result, else :func:`_classify_one` reads at most WINDOW earlier rows (usually one or
    two). For a test with several rows, one query reads the newest row's run_id and the
    next ``len(group) + WINDOW`` older results; a row whose window is not inside that
    block (pages with gaps, e.g. /recent filtered by result) gets one more query of
    WINDOW rows. A page of ``limit`` rows of one history therefore reads at most
    limit + WINDOW rows. Rows whose test is not in the DB get None.
    """
    out: list[str | None] = [None] * len(rows)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(_key(row), []).append(index)
    tests = _tests(conn, list(groups))
    for key, indexes in groups.items():
        if key not in tests:
            continue
        test, stored_run_id, stored = tests[key]
        if len(indexes) == 1:
            run = as_run(rows[indexes[0]])
            if stored and stored_run_id == run.run_id:
                out[indexes[0]] = stored
            else:
                out[indexes[0]] = _classify_one(conn, test, run)
            continue
        indexes.sort(key=lambda i: as_run(rows[i]).run_id, reverse=True)
        newest = as_run(rows[indexes[0]]).run_id
        want = len(indexes) + WINDOW
        block = runs_before(conn, test, newest, want, inclusive=True)
        position = {run.run_id: pos for pos, run in enumerate(block)}
        kinds = [(run, _verdict(run.exitcode)) for run in block]  # each verdict once, not once per later row
        exhausted = len(block) < want
        for index in indexes:
            run = as_run(rows[index])
            pos = position.get(run.run_id)
            if pos is not None and (exhausted or pos + 1 + WINDOW <= len(block)):
                out[index] = _classify(run, kinds[pos + 1 : pos + 1 + WINDOW])
            else:
                out[index] = classify(run, runs_before(conn, test, run.run_id, WINDOW))
    return out


def last_passing_run(conn: sqlite3.Connection, test: int, before: str, scan: int = 500) -> Run | None:
    """The newest passing result older than ``before``, looking back at most ``scan`` results."""
    passing = ",".join("?" * len(results.PASS_CODES))
    row = conn.execute(
        f"SELECT {_HISTORY_COLUMNS} FROM (SELECT {_HISTORY_COLUMNS} FROM result WHERE test_id = ? AND run_id < ?"
        f" ORDER BY run_id DESC LIMIT ?) WHERE exitcode IN ({passing}) ORDER BY run_id DESC LIMIT 1",
        (test, before, scan, *results.PASS_CODES),
    ).fetchone()
    return Run(*row) if row else None


def select_classified(
    conn: sqlite3.Connection,
    fetch: Callable[[int, int], Sequence[Any]],
    wanted: str,
    limit: int,
    offset: int = 0,
    scan_max: int = SCAN_MAX,
) -> tuple[list[Any], bool]:
    """Rows with classification ``wanted``, newest first, for ``/recent?classification=``.

    ``fetch(limit, offset)`` returns a page of rows newest first (e.g.
    history.recent with the page's other filters). Pages are fetched and
    classified until ``offset + limit`` matches are found or ``scan_max``
    rows were looked at, so a rare classification costs at most that scan.
    Returns ``(rows, complete)``; ``complete`` is False when the scan
    stopped at ``scan_max`` (the page may then show fewer rows). Raises
    ValueError for an unknown classification.
    """
    if wanted not in CLASSIFICATIONS:
        raise ValueError(f"classification must be one of {', '.join(CLASSIFICATIONS)}")
    matches: list[Any] = []
    scanned = 0
    batch = max(100, min(1000, 2 * (offset + limit)))
    while scanned < scan_max:
        page = list(fetch(batch, scanned))
        if not page:
            return matches[offset : offset + limit], True
        scanned += len(page)
        matches += [row for row, value in zip(page, classify_rows(conn, page), strict=True) if value == wanted]
        if len(matches) >= offset + limit:
            return matches[offset : offset + limit], True
        if len(page) < batch:
            return matches[offset : offset + limit], True
    return matches[offset : offset + limit], False
