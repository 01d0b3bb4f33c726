# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``test_flakiness`` table of the public DB, kept up to date by publish-db.

The rw DB never has this table: publish-db keeps it in its working copy
of the public DB (:mod:`webcontrol.services.publish_db`), and every minute
:func:`update`

1. continues from the working copy's own rows and watermark; after a fresh
   snapshot of the rw DB it creates the table and copies the previous
   public DB's rows and watermark into it first (like publish_db.carry_over
   does for current_version);
2. finds the tests that got results since the last publish: result rows
   are never deleted, so new rows are exactly those whose rowid is above
   the watermark (the highest result rowid seen last time; the snapshot is a
   page copy, so rowids are the rw DB's). A late result with an old run_id
   (download-all-results filling a gap) is found the same way;
3. recomputes only those tests, each from its newest WINDOW+1 results (one
   primary-key lookup), and stores the new watermark.

Without a usable previous table, or when the watermark is above the
highest rowid (the rw DB was rebuilt), every test is recomputed.

Columns: ``test_id`` (= test.id), ``release``, ``arch``, ``package``,
``score`` (flips / pairs, see :mod:`webcontrol.insight`), ``flips``,
``pairs``, ``runs`` (decisive results in the window), ``last_run_id``
(newest run of the test) and ``classification`` (of that newest run).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from webcontrol import db, insight

log = logging.getLogger(__name__)

TABLE = insight.FLAKINESS_TABLE
STATE_TABLE = "test_flakiness_state"
WATERMARK = "result_rowid"
COLUMNS = ("test_id", "release", "arch", "package", "score", "flips", "pairs", "runs", "last_run_id", "classification")
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (test_id INTEGER PRIMARY KEY, release CHAR[20], arch CHAR[20],"
    " package CHAR[120], score REAL, flips INTEGER, pairs INTEGER, runs INTEGER, last_run_id CHAR[30],"
    " classification CHAR[20])",
    # Partial index: the ranking only ever reads flaky tests, best first, per release/arch.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_rank_ix ON {TABLE}"
    f"(release, arch, score DESC, flips DESC, runs DESC, package) WHERE flips >= {insight.MIN_FLIPS}",
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (name TEXT PRIMARY KEY, value INTEGER)",
)


@dataclass(frozen=True)
class UpdateSummary:
    full: bool
    recomputed: int
    seconds: float


def create_tables(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def _carry_over(conn: sqlite3.Connection, previous: Path) -> int | None:
    """Copy the previous rows into ``conn``; their watermark, or None when nothing usable was there."""
    if not previous.exists():
        return None
    conn.execute("ATTACH DATABASE ? AS flakiness_old", (previous.resolve().as_uri() + "?mode=ro",))
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM flakiness_old.sqlite_master WHERE type = 'table'")}
        if TABLE not in tables or STATE_TABLE not in tables:
            return None
        old_columns = {row[1] for row in conn.execute(f"PRAGMA flakiness_old.table_info({TABLE})")}
        if not set(COLUMNS) <= old_columns:
            log.info("previous %s has other columns; recomputing every test", TABLE)
            return None
        watermark = db.stored_watermark(conn, STATE_TABLE, WATERMARK, "flakiness_old")
        if watermark is None:
            return None
        names = ", ".join(COLUMNS)
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO {TABLE}({names}) SELECT {names} FROM flakiness_old.{TABLE}")
        conn.execute("COMMIT")
        return watermark
    except sqlite3.DatabaseError as err:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        log.warning("previous public DB %s: flakiness unreadable (%s); recomputing every test", previous, err)
        conn.execute(f"DELETE FROM {TABLE}")
        return None
    finally:
        conn.execute("DETACH DATABASE flakiness_old")


def _recompute(conn: sqlite3.Connection, test_ids: Iterable[int]) -> int:
    count = 0
    for test_id in test_ids:
        runs = insight.runs_before(conn, test_id, None, insight.WINDOW + 1)
        if not runs:
            conn.execute(f"DELETE FROM {TABLE} WHERE test_id = ?", (test_id,))
            continue
        found = conn.execute("SELECT release, arch, package FROM test WHERE id = ?", (test_id,)).fetchone()
        if found is None:
            continue
        value = insight.flakiness(runs)
        conn.execute(
            f"INSERT OR REPLACE INTO {TABLE}({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                test_id,
                *found,
                value.score,
                value.flips,
                value.pairs,
                value.runs,
                runs[0].run_id,
                insight.classify(runs[0], runs[1:]),
            ),
        )
        count += 1
    return count


def update(conn: sqlite3.Connection, previous: Path | None) -> UpdateSummary:
    """Bring ``test_flakiness`` in ``conn`` (publish-db's working copy, autocommit) up to date.

    With ``previous`` (a fresh snapshot), the rows and watermark are first
    copied from that public DB; with None, ``conn`` already holds them and
    is updated in place, writing nothing when no result is new. Raises sqlite3.Error.
    """
    started = time.monotonic()
    create_tables(conn)
    watermark = (
        db.stored_watermark(conn, STATE_TABLE, WATERMARK) if previous is None else _carry_over(conn, Path(previous))
    )
    highest = conn.execute("SELECT MAX(rowid) FROM result").fetchone()[0] or 0
    full = watermark is None or watermark > highest
    if previous is None and watermark == highest:
        return UpdateSummary(full=False, recomputed=0, seconds=time.monotonic() - started)
    conn.execute("BEGIN")
    try:
        if full:
            conn.execute(f"DELETE FROM {TABLE}")
            changed = [row[0] for row in conn.execute("SELECT id FROM test ORDER BY id")]
        else:
            changed = [
                row[0]
                for row in conn.execute("SELECT DISTINCT test_id FROM result NOT INDEXED WHERE rowid > ?", (watermark,))
            ]
        count = _recompute(conn, changed)
        conn.execute(f"INSERT OR REPLACE INTO {STATE_TABLE}(name, value) VALUES (?, ?)", (WATERMARK, highest))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    summary = UpdateSummary(full=full, recomputed=count, seconds=time.monotonic() - started)
    log.info(
        "test flakiness: %s, %d tests recomputed in %.2f s",
        "full recompute" if full else "incremental",
        count,
        summary.seconds,
    )
    return summary


# Reads (browse) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlakyTest:
    package: str
    release: str
    arch: str
    score: float
    flips: int
    pairs: int
    runs: int
    last_run_id: str
    classification: str | None


def has_table(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None
    )


def flaky_groups(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(release, arch) pairs that have at least one flaky test (covering scan of the partial index)."""
    return [
        (row[0], row[1])
        for row in conn.execute(
            f"SELECT DISTINCT release, arch FROM {TABLE} WHERE flips >= {insight.MIN_FLIPS} ORDER BY release, arch"
        )
    ]


def ranking(conn: sqlite3.Connection, release: str, arch: str, limit: int) -> list[FlakyTest]:
    """The flakiest tests of one release/arch: score, then flips, then runs, then name (ties)."""
    rows = conn.execute(
        f"SELECT package, release, arch, score, flips, pairs, runs, last_run_id, classification FROM {TABLE}"
        f" WHERE release = ? AND arch = ? AND flips >= {insight.MIN_FLIPS}"
        " ORDER BY score DESC, flips DESC, runs DESC, package LIMIT ?",
        (release, arch, limit),
    )
    return [FlakyTest(*tuple(row)) for row in rows]


def flakiness_of(conn: sqlite3.Connection, package: str) -> dict[tuple[str, str], FlakyTest]:
    """``(release, arch) -> row`` for every test of a package."""
    rows = conn.execute(
        f"SELECT f.package, f.release, f.arch, f.score, f.flips, f.pairs, f.runs, f.last_run_id, f.classification"
        f" FROM test JOIN {TABLE} AS f ON f.test_id = test.id WHERE test.package = ?",
        (package,),
    )
    return {(row[1], row[2]): FlakyTest(*tuple(row)) for row in rows}
