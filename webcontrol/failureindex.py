# SPDX-License-Identifier: GPL-3.0-or-later
"""The failure index: an SQLite FTS5 DB of the failure excerpts of failing runs.

Written by ``index-failures`` (consumer and backfill), read by ``/search``.
Its own file (``[web] failure_index``), never part of the results DB.

Every run gets an id that sorts like time: the run id's timestamp in
seconds shifted left by 20 bits plus the run id's 5-hex-digit suffix (0 for
old run ids without one); two runs that share both get consecutive ids.
So FTS5 can walk matches newest first by rowid without sorting them, and
date filters and retention are rowid ranges.

Tables: ``run(id, package, release, arch, run_id, version, triggers,
exitcode)`` and the FTS5 table ``excerpt(text)`` with the same rowid.
The DB uses a rollback journal, so web apps (another user, group read
access only) can open it read-only while the indexer writes.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from webcontrol import db, results
from webcontrol.config import Config

log = logging.getLogger(__name__)

SUFFIX_BITS = 20
MAX_TERMS = 10
MAX_QUERY_CHARS = 200
MARK_START = "\x02"
MARK_END = "\x03"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run (id INTEGER PRIMARY KEY, package TEXT NOT NULL, release TEXT NOT NULL,"
    " arch TEXT NOT NULL, run_id TEXT NOT NULL, version TEXT, triggers TEXT, exitcode INTEGER,"
    " UNIQUE (package, release, arch, run_id))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS excerpt USING fts5(text, columnsize=0)",
)
_TERMS = re.compile(r'"([^"]*)"|(\S+)')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class QueryError(ValueError):
    """A search query that is empty or too long."""


@dataclass(frozen=True)
class Entry:
    """One failing run and its excerpt, ready to index."""

    package: str
    release: str
    arch: str
    run_id: str
    version: str | None
    triggers: str | None
    exitcode: int | None
    text: str


@dataclass(frozen=True)
class Hit:
    package: str
    release: str
    arch: str
    run_id: str
    version: str | None
    triggers: str | None
    exitcode: int | None
    marked: str  # the excerpt with MARK_START/MARK_END around matches
    key: int  # paging cursor


def index_path(config: Config) -> Path:
    """``[web] failure_index``, else ``failures.db`` in the state folder."""
    configured = config.get("web", "failure_index")
    return Path(configured) if configured else Path(config.state_dir) / "failures.db"


def connect(path: str | Path) -> sqlite3.Connection:
    """The writer's connection, schema created. Raises sqlite3.Error."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # The consumer base may call process() from another thread than the one that built it.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=db.BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {db.BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = DELETE")
    for statement in _SCHEMA:
        conn.execute(statement)
    return conn


def run_key(run_id: str) -> int:
    """The time-ordered id of a run id (``20240221_110051_a1b2c@``). Raises ValueError."""
    stamp = calendar.timegm(time.strptime(run_id[:15], "%Y%m%d_%H%M%S"))
    suffix = run_id[16:21] if len(run_id) > 21 and run_id[15] == "_" else "0"
    return (stamp << SUFFIX_BITS) | int(suffix, 16)


def date_key(day: datetime.date) -> int:
    """The smallest id of a run on or after ``day`` (00:00 UTC)."""
    return calendar.timegm(day.timetuple()) << SUFFIX_BITS


def add(conn: sqlite3.Connection, entries: Iterable[Entry]) -> int:
    """Index entries in one transaction; runs already indexed are skipped. Returns how many were added."""
    added = 0
    with db.write_transaction(conn):
        for entry in entries:
            if conn.execute(
                "SELECT 1 FROM run WHERE package = ? AND release = ? AND arch = ? AND run_id = ?",
                (entry.package, entry.release, entry.arch, entry.run_id),
            ).fetchone():
                continue
            key = run_key(entry.run_id)
            while conn.execute("SELECT 1 FROM run WHERE id = ?", (key,)).fetchone():
                key += 1  # same second and suffix as another run: the next free id
            conn.execute(
                "INSERT INTO run VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    entry.package,
                    entry.release,
                    entry.arch,
                    entry.run_id,
                    entry.version,
                    entry.triggers,
                    entry.exitcode,
                ),
            )
            conn.execute("INSERT INTO excerpt(rowid, text) VALUES (?, ?)", (key, entry.text))
            added += 1
    return added


def has_run(conn: sqlite3.Connection, package: str, release: str, arch: str, run_id: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM run WHERE package = ? AND release = ? AND arch = ? AND run_id = ?",
            (package, release, arch, run_id),
        ).fetchone()
    )


def prune(conn: sqlite3.Connection, retention_days: int, now: datetime.datetime | None = None) -> int:
    """Drop runs older than ``retention_days``. Returns how many were dropped."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cutoff = date_key((now - datetime.timedelta(days=retention_days)).date())
    with db.write_transaction(conn):
        conn.execute("DELETE FROM excerpt WHERE rowid < ?", (cutoff,))
        dropped = conn.execute("DELETE FROM run WHERE id < ?", (cutoff,)).rowcount
    if dropped:
        log.info("failure index: dropped %d runs older than %d days", dropped, retention_days)
    return dropped


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: each word (or "quoted phrase") must appear. Raises QueryError.

    Every term becomes a quoted FTS5 string, so no user input is read as
    FTS5 syntax (``AND``, ``*``, ``column:``) and nothing can make it fail
    to parse.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    text = _CONTROL.sub(" ", text)  # a NUL would end the FTS5 string early
    terms = [quoted or bare for quoted, bare in _TERMS.findall(text)]
    terms = [term for term in terms if term.strip()]
    if not terms:
        raise QueryError("the query is empty")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"the query has more than {MAX_TERMS} terms")
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def search(
    conn: sqlite3.Connection,
    query: str,
    release: str | None = None,
    arch: str | None = None,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Hit]:
    """Newest matches first. ``before`` is the ``key`` of the last hit of the previous page.

    Raises QueryError, sqlite3.Error.
    """
    where = ["excerpt MATCH ?"]
    args: list = [fts_query(query)]
    low = date_key(since) if since else 0
    high = date_key(until + datetime.timedelta(days=1)) if until else 2**62
    if before is not None:
        high = min(high, before)
    where.append("excerpt.rowid >= ? AND excerpt.rowid < ?")
    args += [low, high]
    if release:
        where.append("run.release = ?")
        args.append(release)
    if arch:
        where.append("run.arch = ?")
        args.append(arch)
    rows = conn.execute(
        "SELECT run.package, run.release, run.arch, run.run_id, run.version, run.triggers, run.exitcode,"
        f" highlight(excerpt, 0, '{MARK_START}', '{MARK_END}'), excerpt.rowid"
        f" FROM excerpt JOIN run ON run.id = excerpt.rowid WHERE {' AND '.join(where)}"
        " ORDER BY excerpt.rowid DESC LIMIT ?",
        (*args, limit),
    )
    return [Hit(*row) for row in rows]


def marked_lines(marked: str, most: int = 5) -> list[list[tuple[str, bool]]]:
    """The lines of a highlighted excerpt that contain a match, as (text, is_match) segments."""
    out = []
    inside = False
    for line in marked.split("\n"):
        segments: list[tuple[str, bool]] = []
        matched = inside
        for part in re.split(f"([{MARK_START}{MARK_END}])", line):
            if part == MARK_START:
                inside = matched = True
            elif part == MARK_END:
                inside = False
            elif part:
                segments.append((part, inside))
        if matched and len(out) < most:
            out.append(segments)
    return out


def is_failure(exitcode: int | None) -> bool:
    """Runs whose logs we index: every exit code that is not pass, neutral or skip."""
    return exitcode not in results.PASSING_CODES
