# SPDX-License-Identifier: GPL-3.0-or-later
"""Read side of the trigger index: the summary line and one page of a trigger's tests.

``schema`` is the name the index is attached under on the caller's
connection to the public DB (the page reads both in one connection).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    runs: int
    tests: int
    packages: int
    counts: dict[str, list[int]]  # classification -> [tests, packages]


@dataclass(frozen=True)
class TestRow:
    test_id: int
    package: str
    release: str
    arch: str
    run_id: str
    exitcode: int | None
    classification: str
    runs: int
    rank: int

    @property
    def cursor(self) -> str:
        """The ``after`` value that continues after this row."""
        return f"{self.rank}/{self.package}/{self.arch}/{self.release}"


def summary(conn: sqlite3.Connection, schema: str, trigger: str) -> Summary | None:
    row = conn.execute(
        f"SELECT runs, tests, packages, counts FROM {schema}.trigger_summary WHERE trigger = ?", (trigger,)
    ).fetchone()
    if row is None:
        return None
    return Summary(row[0], row[1], row[2], json.loads(row[3]))


def tests_page(
    conn: sqlite3.Connection, schema: str, trigger: str, after: tuple[int, str, str, str] | None, limit: int
) -> list[TestRow]:
    """One page of a trigger's tests: regressions first, then by package, arch, release.

    Keyset paging: ``after`` is the (rank, package, arch, release) of the
    last row of the previous page (see :func:`cursor`), so any page costs one
    index seek, however deep.
    """
    where, args = "trigger = ?", [trigger]
    if after is not None:
        where += " AND (rank, package, arch, release) > (?, ?, ?, ?)"
        args += list(after)
    rows = conn.execute(
        f"SELECT test_id, package, release, arch, run_id, exitcode, classification, runs, rank"
        f" FROM {schema}.trigger_test WHERE {where} ORDER BY rank, package, arch, release LIMIT ?",
        (*args, limit),
    )
    return [TestRow(*tuple(row)) for row in rows]


#: The result columns :func:`page_results` reads, in webcontrol.history.Result's field order.
RESULT_COLUMNS = (
    "test.package, test.release, test.arch, result.run_id, result.version, result.triggers,"
    " result.duration, result.exitcode, result.requester, result.env, result.uuid"
)


def page_results(conn: sqlite3.Connection, rows: list[TestRow]) -> dict[tuple[int, str], tuple]:
    """The public DB's result rows of a page, ``(test_id, run_id) -> columns``, in one statement.

    A row the public DB does not have yet (the index can be one publish
    ahead of a connection opened just before the swap) is simply missing.
    """
    if not rows:
        return {}
    keys = " OR ".join("(result.test_id = ? AND result.run_id = ?)" for _ in rows)
    args = [value for row in rows for value in (row.test_id, row.run_id)]
    found = conn.execute(
        f"SELECT result.test_id, {RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id WHERE {keys}",
        args,
    )
    return {(row[0], row[4]): tuple(row[1:]) for row in found}


def runs_of(conn: sqlite3.Connection, schema: str, trigger: str, test_id: int) -> list[tuple[str, int | None, str]]:
    """``(run_id, exitcode, classification)`` of every run of one test with this trigger, newest first."""
    rows = conn.execute(
        f"SELECT run_id, exitcode, classification FROM {schema}.trigger_run WHERE trigger = ? AND test_id = ?"
        " ORDER BY run_id DESC",
        (trigger, test_id),
    )
    return [tuple(row) for row in rows]


def parse_cursor(value: str) -> tuple[int, str, str, str] | None:
    """``rank/package/arch/release`` back to the keyset tuple; None when malformed."""
    parts = value.split("/")
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1], parts[2], parts[3]
