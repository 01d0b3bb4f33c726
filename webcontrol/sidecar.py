# SPDX-License-Identifier: GPL-3.0-or-later
"""What publish-db's sidecar index DBs share (docs/architecture.rst, Data flow).

``trigger-index.db`` (:mod:`webcontrol.triggerindex`) and
``classification-index.db`` (:mod:`webcontrol.classindex`) each derive rows
from the public DB's results and are brought up to date after every publish.
Both keep a rowid watermark in their ``state`` table, together with the
``(test_id, run_id)`` of that row, so that a public DB rebuilt from scratch
(rowids reused for other results) is noticed and the sidecar rebuilt. A
rebuild is resumable and spends a bounded time per publish; until it
completes, the previous sidecar stays in place.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from webcontrol import db
from webcontrol.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshSummary:
    rebuilt: bool
    indexed: int  # result rows read
    seconds: float
    complete: bool = True  # False: a rebuild paused, to be continued by the next call


def index_path(public_db: str | Path, configured: str | None, file_name: str) -> Path:
    """The configured path, else ``file_name`` next to the public DB."""
    return Path(configured) if configured else Path(public_db).with_name(file_name)


def read_state(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, value FROM state"))


def watermark_row(source: sqlite3.Connection, rowid: int) -> list:
    """What the watermark records of result ``rowid``: ``[test_id, run_id]``, or [] (none, or rowid 0)."""
    row = source.execute("SELECT test_id, run_id FROM result WHERE rowid = ?", (rowid,)).fetchone()
    return [row[0], row[1]] if row else []


def valid_watermark(source: sqlite3.Connection, state: dict[str, str]) -> int | None:
    """The stored watermark when the row it names is still there, unchanged; else None."""
    try:
        rowid = int(state["rowid"])
        recorded = json.loads(state.get("row", "[]"))
    except (KeyError, ValueError):
        return None
    if rowid == 0:
        return 0
    row = watermark_row(source, rowid)
    # Trigger indexes written before this module stored the test id as a string.
    return rowid if row and recorded in (row, [str(row[0]), row[1]]) else None


def store_watermark(conn: sqlite3.Connection, source: sqlite3.Connection, rowid: int) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO state(name, value) VALUES (?, ?)",
        [("rowid", str(rowid)), ("row", json.dumps(watermark_row(source, rowid)))],
    )


def create(conn: sqlite3.Connection, statements: Iterable[str]) -> None:
    for statement in statements:
        conn.execute(statement)


@dataclass(frozen=True)
class Sidecar:
    """One sidecar: how to add rows above a watermark, how to rebuild, where it lives."""

    name: str  # for log lines: "trigger index"
    file_name: str  # next to the public DB unless configured
    config_key: str  # [web] key of its path
    schema: tuple[str, ...]  # statements that create its tables (idempotent)
    #: ``(source, conn, low, top)``: add the results with rowid in (low, top]; returns how many were read.
    incremental: Callable[[sqlite3.Connection, sqlite3.Connection, int, int], int]
    #: ``(source, path, top, deadline)``: rebuild up to ``top``; ``(rows read, finished)``.
    rebuild: Callable[[sqlite3.Connection, Path, int, float], tuple[int, bool]]
    #: The file an unfinished rebuild leaves next to ``path``.
    unfinished: Callable[[Path], Path]
    rebuild_threshold: int  # more pending rows than this: rebuild in one ordered pass instead

    def refresh(self, source_path: str | Path, path: str | Path, budget_s: float) -> RefreshSummary:
        """Bring the sidecar at ``path`` up to date with the results DB at ``source_path``.

        Raises sqlite3.Error (and db.DatabaseError when the source cannot be opened).
        """
        started = time.monotonic()
        path = Path(path)
        source = db.connect_ro(source_path)
        source.row_factory = None
        try:
            top = source.execute("SELECT COALESCE(MAX(rowid), 0) FROM result").fetchone()[0]
            if path.exists() and not self.unfinished(path).exists():
                conn = sqlite3.connect(str(path), isolation_level=None, timeout=db.BUSY_TIMEOUT_MS / 1000)
                try:
                    create(conn, self.schema)
                    low = valid_watermark(source, read_state(conn))
                    if low is not None and low <= top and top - low <= self.rebuild_threshold:
                        count = self.incremental(source, conn, low, top)
                        return RefreshSummary(False, count, time.monotonic() - started)
                finally:
                    conn.close()
                log.info(
                    "%s %s: watermark unusable or too far behind (%s of %d); rebuilding", self.name, path, low, top
                )
            count, done = self.rebuild(source, path, top, started + budget_s)
            return RefreshSummary(True, count, time.monotonic() - started, complete=done)
        finally:
            source.close()

    def publish_stage(self, config: Config, budget_s: float) -> RefreshSummary | None:
        """publish-db's stage after each swap: index the newly published results.

        A failure is logged and leaves the previous sidecar in place (the
        next publish retries); it never fails the publish itself.
        """
        public = config.need("web", "database_public")
        path = index_path(public, config.get("web", self.config_key), self.file_name)
        try:
            done = self.refresh(public, path, budget_s)
        except (sqlite3.Error, db.DatabaseError, OSError) as err:
            log.error("%s %s not updated: %s", self.name, path, err)
            return None
        log.info(
            "%s %s: %s %d results in %.2f s%s",
            self.name,
            path,
            "rebuilt from" if done.rebuilt else "added",
            done.indexed,
            done.seconds,
            "" if done.complete else " (rebuild continues at the next publish)",
        )
        return done
