# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-side queries over the public DB (browse pages, stats).

Every query here is an index lookup bounded by a LIMIT, so page time does
not grow with the size of the DB (tests check the plans with EXPLAIN QUERY
PLAN). The only exceptions are the cached, per-publish summaries
(:func:`release_arches`, :func:`package_index`) and the stats inputs,
which the hourly stats job reads.

Connections come from :func:`webcontrol.db.connect_ro`; nothing here writes.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from webcontrol import db, results

log = logging.getLogger(__name__)

_RESULT_COLUMNS = (
    "test.package, test.release, test.arch, result.run_id, result.version, result.triggers,"
    " result.duration, result.exitcode, result.requester, result.env, result.uuid"
)


class Result(NamedTuple):
    """One stored run of a (package, release, arch) test.

    A named tuple rather than a frozen dataclass: a big page reads 10,000
    rows, and a frozen dataclass's constructor sets each field through
    ``object.__setattr__`` (a sixth of reading a row).
    """

    package: str
    release: str
    arch: str
    run_id: str
    version: str | None
    triggers: str | None
    duration: int | None
    exitcode: int | None
    requester: str | None
    env: str | None
    uuid: str | None

    @property
    def result_name(self) -> str:
        return results.result_name(self.exitcode)

    @property
    def all_proposed(self) -> bool:
        return results.parse_env_string(self.env).get("all-proposed") == "1"

    @property
    def trigger_list(self) -> list[str]:
        return results.split_triggers(self.triggers)


def _result(row: sqlite3.Row | tuple) -> Result:
    return _make_result(row)


_make_result = Result._make
#: A Result made in C from a row of _RESULT_COLUMNS (Result._make checks its length in Python: the SQL gives 11).
_new_result = functools.partial(tuple.__new__, Result)


def read_results(conn: sqlite3.Connection, sql: str, args: Sequence = ()) -> list[Result]:
    """The rows of ``sql`` (selecting _RESULT_COLUMNS) as Results.

    Read as plain tuples, not the connection's sqlite3.Row: a big page reads
    10,000 rows, and a Row object and a Python call to make each Result were
    a third of the time to read them.
    """
    cursor = conn.cursor()
    cursor.row_factory = None
    try:
        return list(map(_new_result, cursor.execute(sql, args)))
    finally:
        cursor.close()


@dataclass(frozen=True)
class Test:
    id: int
    package: str
    release: str
    arch: str


# Classification hook (docs/formats.rst, Insight routes) -------------------------------------------------


def classify_results(conn: sqlite3.Connection, rows: list[Result]) -> list[str | None]:
    """The classification (docs/formats.rst, Insight routes) of each row, in order; None while not computed.

    The insight module decides: it compares each row with the
    earlier results of the same (package, release, arch), reading at most
    len(rows) + insight.WINDOW earlier rows per test (see
    :func:`webcontrol.insight.classify_rows`); rows not in the DB get None.
    """
    from webcontrol import insight

    return insight.classify_rows(conn, rows)


# Tests -------------------------------------------------------------------------------


def tests_of_package(conn: sqlite3.Connection, package: str) -> list[Test]:
    """Every (release, arch) test of a package (unique index test_package_uix)."""
    rows = conn.execute("SELECT id, package, release, arch FROM test WHERE package = ?", (package,))
    return [Test(*tuple(row)) for row in rows]


def find_test(conn: sqlite3.Connection, package: str, release: str, arch: str) -> Test | None:
    row = conn.execute(
        "SELECT id, package, release, arch FROM test WHERE package = ? AND release = ? AND arch = ?",
        (package, release, arch),
    ).fetchone()
    return Test(*tuple(row)) if row else None


def latest_result(conn: sqlite3.Connection, test: Test) -> Result | None:
    """The newest result of one test (primary key index on (test_id, run_id))."""
    row = conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id"
        " WHERE result.test_id = ? ORDER BY result.run_id DESC LIMIT 1",
        (test.id,),
    ).fetchone()
    return _result(row) if row else None


def package_matrix(conn: sqlite3.Connection, package: str) -> dict[tuple[str, str], Result]:
    """``(release, arch) -> newest result`` for every test of a package."""
    matrix = {}
    for test in tests_of_package(conn, package):
        found = latest_result(conn, test)
        if found:
            matrix[(test.release, test.arch)] = found
    return matrix


# Histories ----------------------------------------------------------------------------


def history(
    conn: sqlite3.Connection,
    test: Test,
    limit: int,
    before: str | None = None,
    offset: int = 0,
) -> list[Result]:
    """One page of a test's results, newest first (keyset paging on run_id < before)."""
    if offset:
        # The offset-th run found on the primary key alone (no row reads); the page starts below it.
        sql = "SELECT run_id FROM result WHERE test_id = ?" + (" AND run_id < ?" if before else "")
        row = conn.execute(
            sql + " ORDER BY run_id DESC LIMIT 1 OFFSET ?", [test.id, *([before] if before else []), offset - 1]
        ).fetchone()
        if row is None:
            return []
        before, offset = row[0], 0
    sql = f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id WHERE result.test_id = ?"
    args: list = [test.id]
    if before:
        sql += " AND result.run_id < ?"
        args.append(before)
    sql += " ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
    args += [limit, offset]
    return read_results(conn, sql, args)


def result_by_uuid(conn: sqlite3.Connection, uuid: str) -> Result | None:
    row = conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id WHERE result.uuid = ?",
        (uuid,),
    ).fetchone()
    return _result(row) if row else None


def result_by_run_id(conn: sqlite3.Connection, package: str, release: str, arch: str, run_id: str) -> Result | None:
    row = conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id"
        " WHERE test.package = ? AND test.release = ? AND test.arch = ? AND result.run_id = ?",
        (package, release, arch, run_id),
    ).fetchone()
    return _result(row) if row else None


def duration_average(conn: sqlite3.Connection, test: Test, last: int = 20) -> float | None:
    """Average duration of the last ``last`` runs of a test (admin hints)."""
    row = conn.execute(
        "SELECT AVG(duration) FROM (SELECT duration FROM result WHERE test_id = ? AND duration IS NOT NULL"
        " ORDER BY run_id DESC LIMIT ?)",
        (test.id, last),
    ).fetchone()
    return row[0] if row and row[0] is not None else None


# Summaries (cached by callers per published DB) ---------------------------------------------


def release_arches(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """``release -> sorted arches`` over every test.

    With the (release, arch) index (migration 4) this is one seek per pair
    found; a DB without it is scanned (about 100 ms at 200,000 tests:
    cache the answer).
    """
    found: dict[str, list[str]] = {}
    if not _has_index(conn, db.RELEASE_ARCH_INDEX):
        for row in conn.execute("SELECT DISTINCT release, arch FROM test ORDER BY release, arch"):
            found.setdefault(row[0], []).append(row[1])
        return found
    seek = (
        f"SELECT release, arch FROM test INDEXED BY {db.RELEASE_ARCH_INDEX}"
        " WHERE (release, arch) > (?, ?) AND arch IS NOT NULL ORDER BY release, arch LIMIT 1"
    )
    # Writers never store a test without release or arch; such a row would stop the seeks, so it is passed over.
    row = conn.execute(
        f"SELECT release, arch FROM test INDEXED BY {db.RELEASE_ARCH_INDEX}"
        " WHERE release IS NOT NULL AND arch IS NOT NULL ORDER BY release, arch LIMIT 1"
    ).fetchone()
    while row is not None:
        found.setdefault(row[0], []).append(row[1])
        row = conn.execute(seek, (row[0], row[1])).fetchone()
    return found


def _has_index(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone() is not None


def release_first_runs(conn: sqlite3.Connection, releases: Iterable[str]) -> list[str]:
    """Releases ordered by their oldest run (fallback when neither config nor distro-info knows them).

    One primary-key seek per test of the release (its oldest run), so the
    cost follows the number of tests, not of results; callers cache it.
    """
    first = {}
    for release in releases:
        row = conn.execute(
            "SELECT MIN((SELECT run_id FROM result WHERE result.test_id = test.id ORDER BY run_id LIMIT 1))"
            " FROM test WHERE release = ?",
            (release,),
        ).fetchone()
        first[release] = row[0] if row and row[0] else "~"
    return sorted(first, key=lambda release: (first[release], release))


def package_names(conn: sqlite3.Connection) -> Iterator[str]:
    """Every package with tests, sorted (covering scan of test_package_uix)."""
    for (name,) in conn.execute("SELECT DISTINCT package FROM test ORDER BY package"):
        yield name


def current_versions(conn: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
    """``(package, release, version)`` rows of current_version (empty without the table)."""
    try:
        yield from conn.execute("SELECT package, release, version FROM current_version")
    except sqlite3.OperationalError as err:
        log.info("no current_version table in the public DB: %s", err)


# Release health ----------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRow:
    package: str
    version: str
    results: dict[str, Result]  # arch -> newest migration-reference/0 result of this version


#: Release health looks this far back in each test's history for a migration-reference run.
HEALTH_DEPTH = 100


def release_health(
    conn: sqlite3.Connection, release: str, arches: list[str], after: str | None = None, limit: int = 200
) -> list[HealthRow]:
    """Current packages of a release that have tests (a page of them, by name after ``after``).

    For each (package, arch) the newest migration-reference run of the
    current version among the test's last HEALTH_DEPTH results (primary key
    walk), so a page costs at most limit x arches x HEALTH_DEPTH row reads.
    """
    try:
        rows = conn.execute(
            "SELECT current_version.package, current_version.version, test.id, test.arch"
            " FROM current_version JOIN test ON test.package = current_version.package"
            " AND test.release = current_version.release"
            " WHERE current_version.release = ? AND current_version.package > ?"
            " AND current_version.package IN (SELECT package FROM current_version WHERE release = ? AND package > ?"
            "  AND EXISTS (SELECT 1 FROM test WHERE test.package = current_version.package AND test.release = ?)"
            "  ORDER BY package LIMIT ?)"
            " ORDER BY current_version.package, test.arch",
            (release, after or "", release, after or "", release, limit),
        ).fetchall()
    except sqlite3.OperationalError as err:
        log.info("release health for %s unavailable: %s", release, err)
        return []
    wanted = set(arches)
    packages: dict[str, HealthRow] = {}
    for package, version, test_id, arch in rows:
        entry = packages.setdefault(package, HealthRow(package, version, {}))
        if arch not in wanted:
            continue
        # The depth bound is the HEALTH_DEPTH-th newest run id (an index-only step), so the walk
        # stops at the first match instead of copying and sorting HEALTH_DEPTH whole rows.
        found = conn.execute(
            f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id"
            " WHERE result.test_id = ? AND result.run_id >= COALESCE((SELECT run_id FROM result"
            "  WHERE test_id = ? ORDER BY run_id DESC LIMIT 1 OFFSET ?), '')"
            " AND result.version = ? AND result.triggers = ? ORDER BY result.run_id DESC LIMIT 1",
            (test_id, test_id, HEALTH_DEPTH - 1, version, results.MIGRATION_REFERENCE),
        ).fetchone()
        if found:
            entry.results[arch] = _result(found)
    return list(packages.values())


# Statistics inputs (autopkgtest-stats, hourly) ------------------------------------------------


@dataclass(frozen=True)
class ReleaseArchStats:
    numpkgs: int
    numpkgspass: int
    passruns: int
    failruns: int


def statistics(conn: sqlite3.Connection) -> dict[str, dict[str, ReleaseArchStats]]:
    """The four counters of stats.json per release and arch (docs/formats.rst, stats.json).

    numpkgs: distinct packages with results; numpkgspass: packages whose
    newest passing run tested the current version; passruns: runs with exit
    0/2/8; failruns: every other run. A full scan: run by the hourly job only.
    """
    passing = ",".join(str(code) for code in sorted(results.PASSING_CODES))
    counts = conn.execute(
        "SELECT test.release, test.arch, COUNT(DISTINCT test.package),"
        f" SUM(result.exitcode IN ({passing})), SUM(result.exitcode NOT IN ({passing}) OR result.exitcode IS NULL)"
        " FROM test JOIN result ON result.test_id = test.id GROUP BY test.release, test.arch"
    ).fetchall()
    try:
        good = conn.execute(
            "SELECT test.release, test.arch, COUNT(*) FROM test"
            " JOIN current_version ON current_version.package = test.package"
            " AND current_version.release = test.release"
            " WHERE (SELECT result.version FROM result WHERE result.test_id = test.id"
            f" AND result.exitcode IN ({passing}) ORDER BY result.run_id DESC LIMIT 1) = current_version.version"
            " GROUP BY test.release, test.arch"
        ).fetchall()
    except sqlite3.OperationalError as err:
        log.warning("cannot count passing packages (no current_version?): %s", err)
        good = []
    passed = {(row[0], row[1]): row[2] for row in good}
    stats: dict[str, dict[str, ReleaseArchStats]] = {}
    for release, arch, numpkgs, passruns, failruns in counts:
        stats.setdefault(release, {})[arch] = ReleaseArchStats(
            numpkgs=numpkgs or 0,
            numpkgspass=passed.get((release, arch), 0),
            passruns=passruns or 0,
            failruns=failruns or 0,
        )
    return stats


# Newest-first pages over all tests or one requester live in webcontrol.newest (same names here).
from webcontrol.newest import (  # noqa: E402
    OFFSET_MAX,
    RECENT_SCAN_MAX,
    Page,
    RecentFilter,
    has_requester_run_index,
    recent,
    recent_page,
    user_page,
    user_result_count,
)

__all__ = [
    "OFFSET_MAX",
    "RECENT_SCAN_MAX",
    "Page",
    "RecentFilter",
    "has_requester_run_index",
    "recent",
    "recent_page",
    "user_page",
    "user_result_count",
]
