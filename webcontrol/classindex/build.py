# SPDX-License-Identifier: GPL-3.0-or-later
"""The classification index: every result's classification, in a sidecar DB for ``/recent?classification=``.

A result's classification (:mod:`webcontrol.insight`) is computed from the
result and the :data:`insight.WINDOW` results of its test just before it;
it is not a column of the public DB. Filtering ``/recent`` by it meant
classifying newest-first pages until enough matched: seconds for a rare
classification or a deep page. This index stores each result's
classification with the columns ``/recent`` filters on, so such a page is
one index walk; a copy of every result under :data:`ANY` does the same for
pages filtered by release, arch, user or result only, whose bounded scan
would otherwise read thousands of scattered result rows. It lives in its own file next to the public DB (``[web]
classification_index``), like the trigger index, so the published
``autopkgtest.db`` that britney and others download does not grow.

publish-db updates it after each publish (:func:`publish_stage`). Result
rows are never deleted and the public DB is a page copy of the rw DB, so
new rows are exactly those whose rowid is above the watermark kept in the
index (the highest rowid seen, with that row's (test_id, run_id) to notice
a rebuilt, renumbered rw DB). A result's classification depends only on the
WINDOW results of its test before it, so a new row can change only itself
and the WINDOW results of its test after it: both are (re)classified. That
covers late rows (download-all-results inserts older run ids). With many
rows pending (first run, rebuilt DB) the index is rebuilt in one ordered
pass, in slices of at most :data:`REBUILD_BUDGET_S` per publish, into a new
file that is renamed into place.

Tables:

- ``run_class(class, run_id, rid, release, arch, requester, exitcode)``:
  one row per result. ``class`` is the position of the classification in
  :data:`insight.CLASSIFICATIONS`; ``rid`` is the result's rowid in the
  public DB; ``requester`` is NULL for an empty one. Each result is there a
  second time with class :data:`ANY`, for /recent pages filtered by
  release, arch, user or result but not classification. Primary key (class,
  run_id, rid): one classification's results newest first are one walk that
  also holds the release/arch/result filters. ``run_class_user_ix`` (class,
  requester, run_id, rid, release, arch, exitcode), partial on a requester,
  serves the user filter the same way (covering).
- ``state(name, value)``: the watermark (``rowid``, ``row``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from webcontrol import insight, sidecar
from webcontrol.config import Config
from webcontrol.sidecar import RefreshSummary

log = logging.getLogger(__name__)

FILE_NAME = "classification-index.db"
#: More pending rows than this: rebuild in one ordered pass instead of row by row.
REBUILD_THRESHOLD = 200_000
#: Seconds a rebuild may spend reading per call before it pauses (publish-db runs every minute).
REBUILD_BUDGET_S = 60.0
#: Classification name -> the integer stored in ``run_class.class``.
CODES = {name: code for code, name in enumerate(insight.CLASSIFICATIONS)}
#: ``run_class.class`` -> classification name.
NAMES = dict(enumerate(insight.CLASSIFICATIONS))
#: ``run_class.class`` of the copy of every result that serves /recent pages filtered without a classification.
ANY = len(CODES)
_BATCH = 50_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run_class (class INTEGER NOT NULL, run_id TEXT NOT NULL, rid INTEGER NOT NULL,"
    " release TEXT, arch TEXT, requester TEXT, exitcode INTEGER, PRIMARY KEY (class, run_id, rid)) WITHOUT ROWID",
    # Covering: a user's page filters release, arch and exit code in the index walk. Partial: most results
    # have no requester.
    "CREATE INDEX IF NOT EXISTS run_class_user_ix ON run_class(class, requester, run_id, rid, release, arch, exitcode)"
    " WHERE requester IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT)",
)
#: The rebuild's resumable scratch file: results classified so far, in the order they were read.
_STAGE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS staged (class INTEGER, run_id TEXT, rid INTEGER, release TEXT, arch TEXT,"
    " requester TEXT, exitcode INTEGER)",
    "CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT)",
)
_COLUMNS = "rowid, test_id, run_id, version, triggers, exitcode, requester"


def index_path(public_db: str | Path, configured: str | None = None) -> Path:
    """``[web] classification_index``, else ``classification-index.db`` next to the public DB."""
    return sidecar.index_path(public_db, configured, FILE_NAME)


def refresh(source_path: str | Path, path: str | Path, budget_s: float = REBUILD_BUDGET_S) -> RefreshSummary:
    """Bring the index at ``path`` up to date with the results DB at ``source_path`` (see :class:`sidecar.Sidecar`)."""
    return _SIDECAR.refresh(source_path, path, budget_s)


def publish_stage(config: Config) -> RefreshSummary | None:
    """publish-db's stage after each swap: classify the newly published results.

    A failure is logged and leaves the previous index in place (/recent
    falls back to classifying pages meanwhile); it never fails the publish.
    """
    return _SIDECAR.publish_stage(config, REBUILD_BUDGET_S)


def _stage_path(path: Path) -> Path:
    return path.with_name(path.name + ".stage")


def rebuild(source: sqlite3.Connection, path: Path, top: int, deadline: float) -> tuple[int, bool]:
    """Classify every result up to rowid ``top``, test by test, then write the index and rename it over ``path``.

    Results are read in (test_id, run_id) order, so each is classified from
    the previous WINDOW of its test held in memory, and appended to the
    scratch file ``<path>.stage``. After the test being read when
    ``deadline`` (monotonic) has passed, the pass stops and remembers the
    last test done; a later call continues there. When every test is done,
    the staged rows are sorted into ``<path>.new`` (a sorted insert, fast
    even at tens of millions of rows), which is renamed over ``path``.
    Returns (results read, finished).
    """
    stage_path = _stage_path(path)
    stage = sqlite3.connect(str(stage_path), isolation_level=None)
    try:
        stage.execute("PRAGMA journal_mode = OFF")
        stage.execute("PRAGMA synchronous = OFF")
        for statement in _STAGE_SCHEMA:
            stage.execute(statement)
        state = sidecar.read_state(stage)
        if int(state.get("building_top", top)) > top:  # the source went backwards: start afresh
            stage.close()
            stage_path.unlink()
            return rebuild(source, path, top, deadline)
        build_top = int(state.get("building_top", top))
        after = int(state.get("building_test_id", -1))
        count, done_test, finished = _classify_tests(source, stage, after, build_top, deadline)
        stage.execute("BEGIN")
        stage.executemany(
            "INSERT OR REPLACE INTO state(name, value) VALUES (?, ?)",
            [("building_top", str(build_top)), ("building_test_id", str(done_test))],
        )
        stage.execute("COMMIT")
    finally:
        stage.close()
    if not finished:
        log.info("classification index %s: rebuild paused after test %s (%d results this time)", path, done_test, count)
        return count, False
    _write_index(source, path, stage_path, build_top)
    stage_path.unlink()
    log.info("classification index %s rebuilt up to result rowid %d", path, build_top)
    return count, True


def _classify_tests(
    source: sqlite3.Connection, stage: sqlite3.Connection, after: int, top: int, deadline: float
) -> tuple[int, int, bool]:
    """Stage the classification of the results of the tests after ``after``: (rows, last test done, all done)."""
    tests = {row[0]: (row[1], row[2]) for row in source.execute("SELECT id, release, arch FROM test")}
    rows = source.execute(
        f"SELECT {_COLUMNS} FROM result WHERE test_id > ? AND rowid <= ? ORDER BY test_id, run_id", (after, top)
    )
    batch: list[tuple] = []
    window: list[insight.Run] = []  # the current test's results, newest first (at most WINDOW)
    current, done_test, count = None, after, 0
    finished = True
    stage.execute("BEGIN")
    for rowid, test_id, run_id, version, triggers, exitcode, requester in rows:
        if test_id != current:
            if current is not None:
                done_test = current
                if time.monotonic() > deadline:
                    finished = False
                    break
            current = test_id
            window = []
        run = insight.Run(run_id, version, triggers, exitcode)
        code = CODES[insight.classify(run, window)]
        window.insert(0, run)
        del window[insight.WINDOW :]
        release, arch = tests.get(test_id, (None, None))
        batch.append((code, run_id, rowid, release, arch, requester or None, exitcode))
        count += 1
        if len(batch) >= _BATCH:
            stage.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            batch.clear()
    else:
        if current is not None:
            done_test = current
    # A pause happens on the first row of the next test, before it is staged: every staged test is complete.
    stage.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
    stage.execute("COMMIT")
    return count, done_test, finished


def _write_index(source: sqlite3.Connection, path: Path, stage_path: Path, top: int) -> None:
    new_path = path.with_name(path.name + ".new")
    new_path.unlink(missing_ok=True)
    conn = sqlite3.connect(str(new_path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")
        conn.execute(_SCHEMA[0])
        conn.execute("ATTACH DATABASE ? AS stage", (stage_path.resolve().as_uri() + "?mode=ro",))
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO run_class(class, run_id, rid, release, arch, requester, exitcode)"
            " SELECT class, run_id, rid, release, arch, requester, exitcode FROM stage.staged"
            " ORDER BY class, run_id, rid"
        )
        conn.execute(
            "INSERT INTO run_class(class, run_id, rid, release, arch, requester, exitcode)"
            f" SELECT {ANY}, run_id, rid, release, arch, requester, exitcode FROM stage.staged ORDER BY run_id, rid"
        )
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE stage")
        for statement in _SCHEMA[1:]:
            conn.execute(statement)
        conn.execute("BEGIN")
        sidecar.store_watermark(conn, source, top)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
    os.chmod(new_path, 0o644)
    os.replace(new_path, path)


def affected_runs(source: sqlite3.Connection, new_rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``(test_id, run_id)`` of the new rows and of the WINDOW results of their test after each (oldest first)."""
    todo: dict[tuple[int, str], None] = {}
    for test_id, run_id in new_rows:
        todo[(test_id, run_id)] = None
        for (later,) in source.execute(
            "SELECT run_id FROM result WHERE test_id = ? AND run_id > ? ORDER BY run_id LIMIT ?",
            (test_id, run_id, insight.WINDOW),
        ):
            todo[(test_id, later)] = None
    return list(todo)


def entries(source: sqlite3.Connection, runs: list[tuple[int, str]]) -> list[tuple]:
    """``run_class`` rows (class, run_id, rid, release, arch, requester, exitcode) of stored results.

    Each result is classified from the WINDOW results of its test before it
    (two primary-key walks); results not in ``source`` are left out.
    """
    out = []
    for test_id, run_id in runs:
        row = source.execute(
            "SELECT result.rowid, result.version, result.triggers, result.exitcode, result.requester, test.release,"
            " test.arch FROM result JOIN test ON test.id = result.test_id WHERE result.test_id = ? AND result.run_id = ?",
            (test_id, run_id),
        ).fetchone()
        if row is None:
            continue
        rowid, version, triggers, exitcode, requester, release, arch = tuple(row)
        earlier = insight.runs_before(source, test_id, run_id, insight.WINDOW)
        code = CODES[insight.classify(insight.Run(run_id, version, triggers, exitcode), earlier)]
        out.append((code, run_id, rowid, release, arch, requester or None, exitcode))
    return out


def _incremental(source: sqlite3.Connection, conn: sqlite3.Connection, low: int, top: int) -> int:
    """Index result rows with low < rowid <= top, and reclassify the results a late row precedes."""
    if low == top:
        return 0
    new_rows = source.execute(
        "SELECT test_id, run_id FROM result WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (low, top)
    ).fetchall()
    changed = entries(source, affected_runs(source, new_rows))
    every_class = ", ".join(str(code) for code in CODES.values())
    conn.execute("BEGIN IMMEDIATE")
    try:
        for entry in changed:
            # A reclassified result moves to its new class: drop it from whichever class held it (one seek each).
            conn.execute(f"DELETE FROM run_class WHERE class IN ({every_class}) AND run_id = ? AND rid = ?", entry[1:3])
        conn.executemany("INSERT INTO run_class VALUES (?, ?, ?, ?, ?, ?, ?)", changed)
        conn.executemany("INSERT OR REPLACE INTO run_class VALUES (?, ?, ?, ?, ?, ?, ?)", _any(changed))
        sidecar.store_watermark(conn, source, top)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.info("classification index: %d new results, %d classified", len(new_rows), len(changed))
    return len(new_rows)


def _any(entries: list[tuple]) -> list[tuple]:
    return [(ANY, *entry[1:]) for entry in entries]


_SIDECAR = sidecar.Sidecar(
    name="classification index",
    file_name=FILE_NAME,
    config_key="classification_index",
    schema=_SCHEMA,
    incremental=_incremental,
    rebuild=rebuild,
    unfinished=_stage_path,
    rebuild_threshold=REBUILD_THRESHOLD,
)
