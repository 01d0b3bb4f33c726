# SPDX-License-Identifier: GPL-3.0-or-later
"""The results DB: schema, migrations, connections and the one write routine.

The column names and declared types are read by britney and other tools
from the published copy, so they never change (docs/formats.rst, Results DB). Migrations are
counted by ``PRAGMA user_version``; a legacy DB from the old scripts
(version 0 with tables, no ``env``/``uuid``) is upgraded in place.

Writers (download-results, download-all-results) call :func:`record_results`
in short ``BEGIN IMMEDIATE`` transactions. Web apps only ever open the
public copy with :func:`connect_ro`.
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
MARKER_TABLE = "ingest_marker"

_CREATE_TEST = """
CREATE TABLE IF NOT EXISTS test (
    id INTEGER PRIMARY KEY,
    release CHAR[20],
    arch CHAR[20],
    package char[120])
"""
_CREATE_RESULT = """
CREATE TABLE IF NOT EXISTS result (
    test_id INTEGER,
    run_id CHAR[30],
    version VARCHAR[200],
    triggers TEXT,
    duration INTEGER,
    exitcode INTEGER,
    requester TEXT,
    env TEXT,
    uuid TEXT UNIQUE,
    PRIMARY KEY(test_id, run_id),
    FOREIGN KEY(test_id) REFERENCES test(id))
"""
RELEASE_ARCH_INDEX = "test_release_arch_ix"
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS test_package_uix ON test(package, release, arch)",
    "CREATE INDEX IF NOT EXISTS test_id_ix ON test(id)",
    "CREATE INDEX IF NOT EXISTS result_run_ix ON result(run_id DESC)",
    "CREATE INDEX IF NOT EXISTS result_requester_idx ON result(requester)",
    "CREATE INDEX IF NOT EXISTS result_test_id_ix ON result(test_id)",
)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _migration_1_base_schema(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring a legacy DB (no env/uuid) up to them."""
    conn.execute(_CREATE_TEST)
    conn.execute(_CREATE_RESULT)
    columns = _columns(conn, "result")
    if "env" not in columns:
        conn.execute("ALTER TABLE result ADD COLUMN env TEXT")
    if "uuid" not in columns:
        # ADD COLUMN cannot carry UNIQUE; a unique index gives the same guarantee.
        conn.execute("ALTER TABLE result ADD COLUMN uuid TEXT")
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS result_uuid_uix ON result(uuid)")
    for statement in _INDEXES:
        conn.execute(statement)


def _migration_2_ingest_marker(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} ("
        " container TEXT PRIMARY KEY, marker TEXT NOT NULL, updated TEXT NOT NULL)"
    )


def _migration_3_requester_run_index(conn: sqlite3.Connection) -> None:
    """``/user/<u>`` pages a requester's results newest first: one index walk, not a sort.

    Additive (readers of the public copy see one more index); building it on
    a 10M-row DB takes about 30 s once, in the first writer that starts.
    """
    conn.execute("CREATE INDEX IF NOT EXISTS result_requester_run_ix ON result(requester, run_id)")


def _migration_4_release_arch_index(conn: sqlite3.Connection) -> None:
    """Which (release, arch) pairs have tests: a few dozen index seeks instead of a scan of every test.

    Every browse process asks this at start and after each publish; the
    scan cost about 100 ms of CPU at 200,000 tests. Additive, like migration 3.
    """
    conn.execute(f"CREATE INDEX IF NOT EXISTS {RELEASE_ARCH_INDEX} ON test(release, arch)")


#: Numbered migrations; ``PRAGMA user_version`` = how many have been applied.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migration_1_base_schema,
    _migration_2_ingest_marker,
    _migration_3_requester_run_index,
    _migration_4_release_arch_index,
)


class DatabaseError(Exception):
    """The DB cannot be opened, migrated or written."""


def connect_rw(path: str | Path, migrate_schema: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the rw DB in WAL mode, migrated. Raises DatabaseError.

    The connection is in autocommit mode: writers open their own
    ``BEGIN IMMEDIATE`` transactions through :func:`write_transaction`.
    """
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrate_schema:
            migrate(conn)
    except sqlite3.Error as err:
        raise DatabaseError(f"cannot open results DB {path}: {err}") from err
    return conn


def connect_ro(path: str | Path, timeout_ms: int | None = None) -> sqlite3.Connection:
    """Open a DB read-only (``mode=ro`` URI). Raises DatabaseError.

    With ``timeout_ms``, every statement is interrupted after that long
    (browse pages must not hang on an expensive query).
    """
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = 1")
    except sqlite3.Error as err:
        raise DatabaseError(f"cannot open DB {path} read-only: {err}") from err
    conn.row_factory = sqlite3.Row
    if timeout_ms:
        set_statement_timeout(conn, timeout_ms)
    return conn


def set_statement_timeout(conn: sqlite3.Connection, timeout_ms: int) -> None:
    """Interrupt any statement running longer than ``timeout_ms`` (OperationalError)."""
    state = {"deadline": 0.0}

    def trace(statement: str) -> None:
        state["deadline"] = time.monotonic() + timeout_ms / 1000

    def progress() -> int:
        return 1 if state["deadline"] and time.monotonic() > state["deadline"] else 0

    conn.set_trace_callback(trace)
    conn.set_progress_handler(progress, 10_000)


_SCHEMA_OBJECTS = "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"


@functools.cache
def _required() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """Names of the tables and indexes, and each table's columns, that the migrations create."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in MIGRATIONS:
            step(conn)
        names, tables = set(), {}
        for kind, name, _table in conn.execute(_SCHEMA_OBJECTS):
            if not name.startswith("sqlite_"):
                names.add(name)
            if kind == "table":
                tables[name] = frozenset(_columns(conn, name))
        return frozenset(names), tables
    finally:
        conn.close()


def schema_gaps(conn: sqlite3.Connection) -> list[str]:
    """The tables, indexes and columns the migrations create that the DB lacks (empty when complete)."""
    names, tables = _required()
    present = {row[1] for row in conn.execute(_SCHEMA_OBJECTS)}
    gaps = sorted(names - present)
    for table, columns in sorted(tables.items()):
        if table in present:
            gaps += [f"{table}.{column}" for column in sorted(columns - _columns(conn, table))]
    return gaps


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction, then fill any gap. Returns the version.

    ``user_version`` alone is not trusted: a copy of the public DB carries the
    version of the DB it was taken from but not the ingest marker table, and
    an operator may restore a unit from such a copy. Every step is
    idempotent, so when anything is missing all of them run again.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        with write_transaction(conn):
            step(conn)
            conn.execute(f"PRAGMA user_version = {number}")
        log.info("results DB migrated to version %d (%s)", number, step.__name__.lstrip("_"))
    gaps = schema_gaps(conn)
    if gaps:
        log.warning("results DB at version %d lacks %s; creating them", version, ", ".join(gaps))
        with write_transaction(conn):
            for step in MIGRATIONS:
                step(conn)
    return conn.execute("PRAGMA user_version").fetchone()[0]


@contextmanager
def write_transaction(conn: sqlite3.Connection, attempts: int = 30) -> Iterator[sqlite3.Connection]:
    """``with write_transaction(conn):`` runs BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error.

    "database is locked" beyond the busy timeout is retried after a random
    0.1-2 s pause (docs/formats.rst, rw DB); BEGIN is the only statement that can meet
    the lock, so retrying it is safe. Raises sqlite3.Error.
    """
    for attempt in range(1, attempts + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as err:
            if ("locked" not in str(err) and "busy" not in str(err)) or attempt == attempts:
                raise
            pause = random.uniform(0.1, 2.0)
            log.warning("results DB locked (attempt %d), retrying in %.1f s", attempt, pause)
            time.sleep(pause)
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# Ingest ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRecord:
    """One finished distro run, as stored in ``test`` + ``result``."""

    release: str
    arch: str
    package: str
    run_id: str
    version: str | None
    triggers: str
    duration: int | None
    exitcode: int
    requester: str = ""
    env: str = ""
    uuid: str | None = None


class Outcome(Enum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"  # the same (test, run_id) is already stored
    UUID_CLEARED = "uuid-cleared"  # stored, but its uuid belonged to another run


def _test_id(conn: sqlite3.Connection, record: ResultRecord) -> int:
    key = (record.package, record.release, record.arch)
    row = conn.execute("SELECT id FROM test WHERE package = ? AND release = ? AND arch = ?", key).fetchone()
    if row:
        return row[0]
    try:
        return conn.execute(
            "INSERT INTO test(release, arch, package) VALUES (?, ?, ?)",
            (record.release, record.arch, record.package),
        ).lastrowid
    except sqlite3.IntegrityError:
        # Another writer inserted it first: the unique index guarantees one row.
        return conn.execute("SELECT id FROM test WHERE package = ? AND release = ? AND arch = ?", key).fetchone()[0]


def _insert(conn: sqlite3.Connection, record: ResultRecord) -> Outcome:
    test_id = _test_id(conn, record)
    if conn.execute("SELECT 1 FROM result WHERE test_id = ? AND run_id = ?", (test_id, record.run_id)).fetchone():
        return Outcome.DUPLICATE
    uuid = record.uuid
    outcome = Outcome.INSERTED
    if uuid:
        owner = conn.execute("SELECT test_id, run_id FROM result WHERE uuid = ?", (uuid,)).fetchone()
        if owner:
            log.warning(
                "uuid %s of %s/%s/%s run %s already belongs to test %s run %s; storing the result without uuid",
                uuid,
                record.release,
                record.arch,
                record.package,
                record.run_id,
                owner[0],
                owner[1],
            )
            uuid = None
            outcome = Outcome.UUID_CLEARED
    conn.execute(
        "INSERT INTO result(test_id, run_id, version, triggers, duration, exitcode, requester, env, uuid)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            test_id,
            record.run_id,
            record.version,
            record.triggers,
            record.duration,
            record.exitcode,
            record.requester,
            record.env,
            uuid,
        ),
    )
    return outcome


def record_results(
    conn: sqlite3.Connection,
    records: Sequence[ResultRecord],
    marker: tuple[str, str] | None = None,
) -> list[Outcome]:
    """Store results in one transaction; the shared write routine of both ingesters.

    Idempotent: a run already stored is reported DUPLICATE and left as it is.
    With ``marker=(container, last_object_name)`` the listing marker of
    download-all-results is committed in the same transaction, so a killed
    run resumes exactly after what it stored. Raises sqlite3.Error.
    """
    with write_transaction(conn):
        outcomes = [_insert(conn, record) for record in records]
        if marker is not None:
            set_marker(conn, *marker)
    return outcomes


def set_marker(conn: sqlite3.Connection, container: str, marker: str) -> None:
    """Record download-all-results' position (call inside a write transaction)."""
    conn.execute(
        f"INSERT INTO {MARKER_TABLE}(container, marker, updated) VALUES (?, ?, datetime('now'))"
        " ON CONFLICT(container) DO UPDATE SET marker = excluded.marker, updated = excluded.updated",
        (container, marker),
    )


def get_marker(conn: sqlite3.Connection, container: str) -> str | None:
    row = conn.execute(f"SELECT marker FROM {MARKER_TABLE} WHERE container = ?", (container,)).fetchone()
    return row[0] if row else None


def busy_tests(conn: sqlite3.Connection, release: str, more_than: int) -> list[tuple[str, str, str]]:
    """``(arch, package, newest run_id)`` of the release's tests holding more than ``more_than`` results.

    The sweep after a restore lists such a test on its own from its newest
    run instead of listing all its run folders (docs/operating.rst).
    """
    return [
        tuple(row)
        for row in conn.execute(
            "SELECT test.arch, test.package, MAX(result.run_id) FROM result JOIN test ON test.id = result.test_id"
            " WHERE test.release = ? GROUP BY result.test_id HAVING COUNT(*) > ?",
            (release, more_than),
        )
    ]


def stored_runs(conn: sqlite3.Connection, runs: Iterable[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    """Which of the ``(release, arch, package, run_id)`` runs the DB holds, in one query.

    download-all-results asks this once per listing page instead of once per
    object. Run ids are near-unique, so the run_id index narrows it to about
    one row per asked run.
    """
    wanted = set(runs)
    run_ids = sorted({run[3] for run in wanted})
    if not run_ids:
        return set()
    found: set[tuple[str, str, str, str]] = set()
    # SQLite (3.32 and later) allows 32766 parameters per statement; a listing page has at most 10000 names.
    for start in range(0, len(run_ids), 10000):
        chunk = run_ids[start : start + 10000]
        rows = conn.execute(
            "SELECT test.release, test.arch, test.package, result.run_id FROM result"
            " JOIN test ON test.id = result.test_id"
            f" WHERE result.run_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        found.update(tuple(row) for row in rows)
    return found & wanted


def releases_by_age(conn: sqlite3.Connection) -> list[str]:
    """Releases present in the DB, ordered by their oldest run id."""
    rows = conn.execute(
        "SELECT test.release, MIN(result.run_id) AS first FROM test JOIN result ON result.test_id = test.id"
        " GROUP BY test.release ORDER BY first"
    )
    return [row[0] for row in rows]


def result_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]


# Public DB extras (docs/formats.rst, Public DB) ----------------------------------------------------


def stored_watermark(conn: sqlite3.Connection, table: str, name: str, schema: str = "main") -> int | None:
    """The integer a derived table's ``(name, value)`` state table holds under ``name``, or None."""
    row = conn.execute(f"SELECT value FROM {schema}.{table} WHERE name = ?", (name,)).fetchone()
    return None if not row or row[0] is None else int(row[0])


_PUBLIC_TABLES = (
    "CREATE TABLE IF NOT EXISTS current_version (release CHAR[20], pocket CHAR[40], component CHAR[10],"
    " package CHAR[50], version CHAR[120], PRIMARY KEY(release, package))",
    "CREATE TABLE IF NOT EXISTS url_last_checked (url CHAR[100], timestamp CHAR[50], PRIMARY KEY(url))",
)


def ensure_public_tables(conn: sqlite3.Connection) -> None:
    """Create ``current_version``/``url_last_checked``; upgrade an old current_version."""
    for statement in _PUBLIC_TABLES:
        conn.execute(statement)
    columns = _columns(conn, "current_version")
    for column, declared in (("pocket", "CHAR[40]"), ("component", "CHAR[10]")):
        if column not in columns:
            conn.execute(f"ALTER TABLE current_version ADD COLUMN {column} {declared}")
    conn.execute("CREATE INDEX IF NOT EXISTS current_version_pocket_ix ON current_version(pocket, component)")


def create_public_schema(conn: sqlite3.Connection, extra: Iterable[str] = ()) -> None:
    """The full public-DB schema in an empty DB (tests and benchmarks build fixtures with it)."""
    conn.execute(_CREATE_TEST)
    conn.execute(_CREATE_RESULT)
    for statement in _INDEXES:
        conn.execute(statement)
    _migration_3_requester_run_index(conn)
    _migration_4_release_arch_index(conn)
    ensure_public_tables(conn)
    for statement in extra:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
