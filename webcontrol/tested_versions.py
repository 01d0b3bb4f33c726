# SPDX-License-Identifier: GPL-3.0-or-later
"""The latest tested version of each package: one definition for the indexed-packages JSON and /testlist.

A package's latest tested version is the highest version, by Debian version
comparison, among the versions its results were recorded with. Results
without a known version (NULL, empty, ``unknown``) or with one python-debian
cannot parse do not count; a package none of whose results has a known
version is still listed, with the version ``""``. Versions are shown without
their epoch.

publish-db keeps the answer in the public DB's ``tested_version`` table and
writes the JSON file from it; browse.cgi reads the same table when the file
is missing. The table is brought up to date the way :mod:`webcontrol.flakiness`
keeps its own: in place in publish-db's working copy (after a fresh
snapshot, the previous public DB's rows and watermark, the highest result
rowid counted, are copied over first), and only results above the
watermark are read. Rowids, unlike run ids, grow with every insert, so results
back-filled with old run ids (download-all-results filling a gap or
rebuilding the DB) are counted too. Without a usable previous table, or
when the watermark is above the highest rowid (the rw DB was rebuilt),
every result is read.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from debian.debian_support import Version

from webcontrol import archive, atomicfile, db, results

log = logging.getLogger(__name__)

TABLE = "tested_version"
STATE_TABLE = "tested_version_state"
WATERMARK = "result_rowid"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (package CHAR[120] PRIMARY KEY, version VARCHAR[200] NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (name TEXT PRIMARY KEY, value INTEGER)",
)
#: Versions that say the worker could not tell.
UNKNOWN = ("", "unknown")


def latest(best: dict[str, str], rows: Iterable[tuple[str, str | None]]) -> set[str]:
    """Fold ``(package, version)`` rows into ``best`` (package → latest version); returns the packages changed."""
    parsed: dict[str, Version] = {}
    changed: set[str] = set()
    unparsable = 0
    for package, version in rows:
        if package not in best:
            best[package] = ""
            changed.add(package)
        if version is None or version in UNKNOWN:
            continue
        try:
            candidate = Version(version)
        except ValueError:
            unparsable += 1
            continue
        current = best[package]
        if current:
            if package not in parsed:
                parsed[package] = Version(current)
            if candidate <= parsed[package]:
                continue
        best[package] = version
        parsed[package] = candidate
        changed.add(package)
    if unparsable:
        log.warning("%d results with an unparsable version ignored", unparsable)
    return changed


def _carry_over(conn: sqlite3.Connection, previous: Path) -> int | None:
    """Copy the previous public DB's rows into ``conn``; their watermark, or None when unusable."""
    conn.execute(f"DELETE FROM {TABLE}")  # a copy restored from a public DB may bring stale rows
    if not previous.exists():
        return None
    conn.execute("ATTACH DATABASE ? AS tested_old", (previous.resolve().as_uri() + "?mode=ro",))
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM tested_old.sqlite_master WHERE type = 'table'")}
        if TABLE not in tables or STATE_TABLE not in tables:
            return None
        watermark = db.stored_watermark(conn, STATE_TABLE, WATERMARK, "tested_old")
        if watermark is None:
            return None
        conn.execute(f"INSERT INTO {TABLE}(package, version) SELECT package, version FROM tested_old.{TABLE}")
        return watermark
    except sqlite3.DatabaseError as err:
        log.warning("previous public DB %s: tested versions unreadable (%s); reading every result", previous, err)
        conn.execute(f"DELETE FROM {TABLE}")
        return None
    finally:
        conn.execute("DETACH DATABASE tested_old")


def update(conn: sqlite3.Connection, previous: Path | None) -> int:
    """Bring ``tested_version`` in ``conn`` (publish-db's working copy, autocommit) up to date.

    With ``previous`` (a fresh snapshot), the rows and watermark are first
    copied from that public DB; with None, ``conn`` already holds them and
    is updated in place, writing nothing when no result is new. Returns how
    many packages changed. Raises sqlite3.Error.
    """
    started = time.monotonic()
    for statement in _SCHEMA:
        conn.execute(statement)
    watermark = (
        db.stored_watermark(conn, STATE_TABLE, WATERMARK) if previous is None else _carry_over(conn, Path(previous))
    )
    conn.execute("BEGIN")
    try:
        highest = conn.execute("SELECT MAX(rowid) FROM result").fetchone()[0] or 0
        full = watermark is None or watermark > highest
        if previous is None and watermark == highest:
            conn.execute("COMMIT")
            return 0
        if full:
            conn.execute(f"DELETE FROM {TABLE}")
        since = 0 if full else watermark
        best = {} if full else dict(conn.execute(f"SELECT package, version FROM {TABLE}"))
        rows = conn.execute(
            "SELECT DISTINCT test.package, result.version FROM result JOIN test ON test.id = result.test_id"
            " WHERE result.rowid > ? AND result.rowid <= ?",
            (since, highest),
        )
        changed = latest(best, rows)
        conn.executemany(
            f"INSERT OR REPLACE INTO {TABLE}(package, version) VALUES (?, ?)",
            ((package, best[package]) for package in changed),
        )
        conn.execute(f"INSERT OR REPLACE INTO {STATE_TABLE}(name, value) VALUES (?, ?)", (WATERMARK, highest))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    log.info(
        "tested versions: %s, %d packages changed in %.2f s",
        "every result read" if full else f"results after rowid {since} read",
        len(changed),
        time.monotonic() - started,
    )
    return len(changed)


def has_table(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None
    )


def _index(best: Iterable[tuple[str, str]]) -> dict[str, list[list[str]]]:
    index: dict[str, list[list[str]]] = {}
    for package, version in sorted(best):
        index.setdefault(results.srchash(package), []).append([package, archive.strip_epoch(version)])
    return index


def index(conn: sqlite3.Connection) -> dict[str, list[list[str]]]:
    """``{prefix: [[package, version], ...]}``, packages sorted, versions without epoch.

    Read from the ``tested_version`` table when the DB has it, otherwise
    computed from every result (a public DB published before the table
    existed). Raises sqlite3.Error.
    """
    if has_table(conn):
        return _index((row[0], row[1]) for row in conn.execute(f"SELECT package, version FROM {TABLE}"))
    best: dict[str, str] = {}
    latest(
        best, conn.execute("SELECT DISTINCT test.package, result.version FROM result JOIN test ON test.id = test_id")
    )
    return _index(best.items())


def write_json(conn: sqlite3.Connection, path: Path) -> None:
    """Write the indexed-packages JSON ``{"h": [["hello", "2.10-3"], ...]}`` atomically."""
    atomicfile.write_json_atomic(path, index(conn))
    # The state file of the run-id watermark this table replaced.
    path.with_name(path.name + ".state").unlink(missing_ok=True)
