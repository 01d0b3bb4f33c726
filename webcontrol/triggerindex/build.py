# SPDX-License-Identifier: GPL-3.0-or-later
"""The trigger index: which runs a ``source/version`` trigger caused, in a sidecar DB.

``result.triggers`` is a space-separated text column, so "every run of
glib2.0/2.80.0-6" is a full scan of the results table. The index lives in
its own SQLite file next to the public DB (``[web] trigger_index``) rather
than in the published ``autopkgtest.db``, which britney and others download
every few minutes: the public file does not grow at all.

publish-db keeps it up to date after each publish (:func:`refresh`). Result
rows are never deleted and the public DB is a page copy of the rw DB, so
new rows are exactly those whose rowid is above the watermark stored in the
index (the highest rowid seen, plus that row's (test_id, run_id) to notice
a renumbered, rebuilt rw DB). Each new row is classified with
:func:`webcontrol.insight.classify` against the earlier results of its
test; a late row (download-all-results filling a gap) also reclassifies the
:data:`insight.WINDOW` results after it. With many rows pending (first run,
rebuilt DB) the index is rebuilt in one ordered pass into a new file that
is renamed into place.

Tables:

- ``trigger_run(trigger, test_id, run_id, exitcode, classification)``:
  one row per (trigger, run);
- ``trigger_test(trigger, test_id, package, release, arch, run_id, exitcode,
  classification, rank, runs)``: per trigger and test, its newest run with
  that trigger and how many runs it had; ordered for the page by ``rank``
  (regressions first), package, arch, release;
- ``trigger_summary(trigger, runs, tests, packages, counts)``: the page's
  summary line, ``counts`` = JSON ``{classification: [tests, packages]}``;
- ``state(name, value)``: the watermark.

Web apps open the file read-only; a missing index shows a notice.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from webcontrol import insight, results, sidecar
from webcontrol.config import Config
from webcontrol.sidecar import RefreshSummary

log = logging.getLogger(__name__)

#: Page order of classifications: what needs attention first.
RANK = {
    name: index
    for index, name in enumerate(
        ("regression", "always_failed", "flaky", "tmpfail", "fixed", "neutral", "pass", "denylisted")
    )
}
_CLASS_BY_RANK = {rank: name for name, rank in RANK.items()}
#: More pending rows than this: rebuild in one ordered pass instead of row by row.
REBUILD_THRESHOLD = 200_000
#: Seconds a rebuild may take per call before it pauses (publish-db runs every minute).
REBUILD_BUDGET_S = 60.0
FILE_NAME = "trigger-index.db"
_BATCH = 50_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS trigger_run (trigger TEXT NOT NULL, test_id INTEGER NOT NULL,"
    " run_id TEXT NOT NULL, exitcode INTEGER, classification TEXT,"
    " PRIMARY KEY (trigger, test_id, run_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS trigger_test (trigger TEXT NOT NULL, test_id INTEGER NOT NULL,"
    " package TEXT, release TEXT, arch TEXT, run_id TEXT, exitcode INTEGER, classification TEXT,"
    " rank INTEGER, runs INTEGER, PRIMARY KEY (trigger, test_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS trigger_summary (trigger TEXT PRIMARY KEY, runs INTEGER, tests INTEGER,"
    " packages INTEGER, counts TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT)",
)
_ORDER_INDEX = "CREATE INDEX IF NOT EXISTS trigger_test_page_ix ON trigger_test(trigger, rank, package, arch, release)"


# Writing ------------------------------------------------------------------------------------


def _rank(classification: str) -> int:
    return RANK.get(classification, len(RANK))


def index_path(public_db: str | Path, configured: str | None = None) -> Path:
    """``[web] trigger_index``, else ``trigger-index.db`` next to the public DB."""
    return sidecar.index_path(public_db, configured, FILE_NAME)


def refresh(source_path: str | Path, path: str | Path, budget_s: float = REBUILD_BUDGET_S) -> RefreshSummary:
    """Bring the index at ``path`` up to date with the results DB at ``source_path`` (see :class:`sidecar.Sidecar`)."""
    return _SIDECAR.refresh(source_path, path, budget_s)


def publish_stage(config: Config) -> RefreshSummary | None:
    """publish-db's stage after each swap: index the newly published results; a failure never fails the publish."""
    return _SIDECAR.publish_stage(config, REBUILD_BUDGET_S)


def _unfinished(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def rebuild(source: sqlite3.Connection, path: Path, top: int, deadline: float) -> tuple[int, bool]:
    """Build the index into ``<path>.new`` test by test, in (test_id, run_id) order.

    Stops after the test being read when ``deadline`` (monotonic) has
    passed, remembering the last test done in the new file; a later call
    continues from there. When every test is done, the page index and the
    summaries are built and the file is renamed over ``path``. Returns
    (results read, finished).
    """
    new_path = _unfinished(path)
    conn = sqlite3.connect(str(new_path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    for statement in _SCHEMA:
        conn.execute(statement)
    state = sidecar.read_state(conn)
    if int(state.get("building_top", top)) > top:  # the source went backwards: start afresh
        conn.close()
        new_path.unlink()
        return rebuild(source, path, top, deadline)
    build_top = int(state.get("building_top", top))
    after = int(state.get("building_test_id", -1))
    tests = {row[0]: row[1:] for row in source.execute("SELECT id, package, release, arch FROM test")}
    rows = source.execute(
        "SELECT test_id, run_id, version, triggers, exitcode FROM result WHERE test_id > ? AND rowid <= ?"
        " ORDER BY test_id, run_id",
        (after, build_top),
    )
    run_batch: list[tuple] = []
    test_batch: list[tuple] = []
    current_test = None
    window: collections.deque[insight.Run] = collections.deque(maxlen=insight.WINDOW)
    newest: dict[str, list] = {}
    count = 0
    finished = True

    def flush_test() -> None:
        package, release, arch = tests.get(current_test, ("", "", ""))
        for trigger, (run_id, exitcode, classification, runs) in newest.items():
            test_batch.append(
                (
                    trigger,
                    current_test,
                    package,
                    release,
                    arch,
                    run_id,
                    exitcode,
                    classification,
                    _rank(classification),
                    runs,
                )
            )

    conn.execute("BEGIN")
    for test_id, run_id, version, triggers, exitcode in rows:
        if test_id != current_test:
            if current_test is not None:
                flush_test()
                if time.monotonic() > deadline:
                    finished = False
                    break
            current_test = test_id
            window.clear()
            newest = {}
        count += 1
        run = insight.Run(run_id, version, triggers, exitcode)
        classification = insight.classify(run, list(window))
        window.appendleft(run)
        for trigger in dict.fromkeys(results.split_triggers(triggers)):
            run_batch.append((trigger, test_id, run_id, exitcode, classification))
            runs = newest[trigger][3] + 1 if trigger in newest else 1
            newest[trigger] = [run_id, exitcode, classification, runs]
        if len(run_batch) >= _BATCH:
            _write_batches(conn, run_batch, test_batch)
    else:
        if current_test is not None:
            flush_test()
    _write_batches(conn, run_batch, test_batch)
    # Tests are flushed only once all their rows were read, so current_test is complete either way.
    done_test = current_test
    conn.executemany(
        "INSERT OR REPLACE INTO state(name, value) VALUES (?, ?)",
        [("building_top", str(build_top)), ("building_test_id", str(done_test if done_test is not None else after))],
    )
    conn.execute("COMMIT")
    if not finished:
        conn.close()
        log.info("trigger index %s: rebuild paused after test %s (%d results this time)", path, done_test, count)
        return count, False
    conn.execute(_ORDER_INDEX)
    conn.execute("BEGIN")
    _summarise(conn, None)
    conn.execute("DELETE FROM state WHERE name IN ('building_top', 'building_test_id')")
    sidecar.store_watermark(conn, source, build_top)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    os.chmod(new_path, 0o640)
    os.replace(new_path, path)
    log.info("trigger index %s rebuilt up to result rowid %d", path, build_top)
    return count, True


def _write_batches(conn: sqlite3.Connection, run_batch: list[tuple], test_batch: list[tuple]) -> None:
    conn.executemany("INSERT OR REPLACE INTO trigger_run VALUES (?, ?, ?, ?, ?)", run_batch)
    conn.executemany("INSERT OR REPLACE INTO trigger_test VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", test_batch)
    run_batch.clear()
    test_batch.clear()


def _window(source: sqlite3.Connection, test_id: int, run_id: str, newer: bool) -> list[insight.Run]:
    """Up to WINDOW results of a test just before (newest first) or just after (oldest first) run_id."""
    if newer:
        sql = "SELECT run_id, version, triggers, exitcode FROM result WHERE test_id = ? AND run_id > ? ORDER BY run_id"
    else:
        sql = (
            "SELECT run_id, version, triggers, exitcode FROM result WHERE test_id = ? AND run_id < ?"
            " ORDER BY run_id DESC"
        )
    return [insight.Run(*row) for row in source.execute(f"{sql} LIMIT {insight.WINDOW}", (test_id, run_id))]


def _incremental(source: sqlite3.Connection, conn: sqlite3.Connection, low: int, top: int) -> int:
    """Index result rows with low < rowid <= top, and reclassify the results a late row precedes."""
    new_rows = source.execute(
        "SELECT test_id, run_id FROM result WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (low, top)
    ).fetchall()
    if not new_rows and low == top:
        return 0
    todo: dict[tuple[int, str], None] = {}
    for test_id, run_id in new_rows:
        todo[(test_id, run_id)] = None
        for later in _window(source, test_id, run_id, newer=True):
            todo[(test_id, later.run_id)] = None
    touched: set[tuple[str, int]] = set()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for test_id, run_id in todo:
            row = source.execute(
                "SELECT run_id, version, triggers, exitcode FROM result WHERE test_id = ? AND run_id = ?",
                (test_id, run_id),
            ).fetchone()
            run = insight.Run(*row)
            classification = insight.classify(run, _window(source, test_id, run_id, newer=False))
            for trigger in dict.fromkeys(results.split_triggers(run.triggers)):
                conn.execute(
                    "INSERT OR REPLACE INTO trigger_run VALUES (?, ?, ?, ?, ?)",
                    (trigger, test_id, run_id, run.exitcode, classification),
                )
                touched.add((trigger, test_id))
        _refresh_tests(source, conn, touched)
        _summarise(conn, {trigger for trigger, _ in touched})
        sidecar.store_watermark(conn, source, top)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.info("trigger index: %d new results, %d (trigger, test) pairs updated", len(new_rows), len(touched))
    return len(new_rows)


def _refresh_tests(source: sqlite3.Connection, conn: sqlite3.Connection, pairs: Iterable[tuple[str, int]]) -> None:
    for trigger, test_id in pairs:
        newest = conn.execute(
            "SELECT run_id, exitcode, classification FROM trigger_run WHERE trigger = ? AND test_id = ?"
            " ORDER BY run_id DESC LIMIT 1",
            (trigger, test_id),
        ).fetchone()
        runs = conn.execute(
            "SELECT COUNT(*) FROM trigger_run WHERE trigger = ? AND test_id = ?", (trigger, test_id)
        ).fetchone()[0]
        package, release, arch = source.execute(
            "SELECT package, release, arch FROM test WHERE id = ?", (test_id,)
        ).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO trigger_test VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (trigger, test_id, package, release, arch, *newest, _rank(newest[2]), runs),
        )


def _summarise(conn: sqlite3.Connection, triggers: set[str] | None) -> None:
    """Recompute trigger_summary for ``triggers`` (None: every trigger, in two grouped scans)."""
    where = "" if triggers is None else "WHERE trigger = ?"
    selected = [None] if triggers is None else sorted(triggers)
    for trigger in selected:
        args = () if trigger is None else (trigger,)
        summaries: dict[str, list] = {}
        # The page index orders (trigger, rank, package): both counts are index walks.
        for name, rank, tests, packages, runs in conn.execute(
            "SELECT trigger, rank, COUNT(*), COUNT(DISTINCT package), SUM(runs) FROM trigger_test"
            f" INDEXED BY trigger_test_page_ix {where} GROUP BY trigger, rank",
            args,
        ):
            entry = summaries.setdefault(name, [0, 0, 0, {}])
            entry[0] += runs
            entry[1] += tests
            entry[3][_CLASS_BY_RANK.get(rank, "unknown")] = [tests, packages]
        for name, packages in conn.execute(
            f"SELECT trigger, COUNT(DISTINCT package) FROM trigger_test {where} GROUP BY trigger", args
        ):
            summaries[name][2] = packages
        conn.executemany(
            "INSERT OR REPLACE INTO trigger_summary VALUES (?, ?, ?, ?, ?)",
            ((name, e[0], e[1], e[2], json.dumps(e[3], sort_keys=True)) for name, e in summaries.items()),
        )


_SIDECAR = sidecar.Sidecar(
    name="trigger index",
    file_name=FILE_NAME,
    config_key="trigger_index",
    schema=(*_SCHEMA, _ORDER_INDEX),
    incremental=_incremental,
    rebuild=rebuild,
    unfinished=_unfinished,
    rebuild_threshold=REBUILD_THRESHOLD,
)
