# SPDX-License-Identifier: GPL-3.0-or-later
"""publish-db: a consistent public copy of the results DB, swapped in atomically (docs/formats.rst, Publishing).

1. Snapshot the rw DB (opened read-only) with SQLite's backup API into
   ``<public>.new`` in one step: WAL readers never block the writer, and a
   one-step backup is a consistent snapshot. Drop the ingest marker table.
2. Carry ``current_version``/``url_last_checked`` over from the previous
   public DB and refresh them from the archive's Sources.gz indexes with
   If-Modified-Since; a failed fetch keeps the old rows and is logged.
3. Write the sha256 (bare hex), rename it into place, then rename the DB.
4. Update the indexed-packages JSON incrementally (only runs newer than the
   last publish are read).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import hashlib
import logging
import os
import sqlite3
import time
from pathlib import Path

from debian.debian_support import Version

from webcontrol import archive, atomicfile, db, flakiness, results
from webcontrol.config import Config
from webcontrol.services.base import ProgramError, run_program

log = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(path: Path) -> None:
    """Start writing a fresh file back to disk without waiting for it (Linux).

    Renaming it over the old public DB later makes ext4 flush whatever is
    still unwritten (its replace-via-rename safeguard), about 1 s per GB on
    the critical path; started now, the flush overlaps hashing instead.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        sync_file_range = libc.sync_file_range
    except (OSError, AttributeError):
        return
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
    finally:
        os.close(fd)


def snapshot(rw_path: str, new_path: Path) -> None:
    """Consistent copy of the live DB into ``new_path`` without blocking the writer."""
    source = db.connect_ro(rw_path)
    target = sqlite3.connect(str(new_path), isolation_level=None)
    try:
        target.execute("PRAGMA journal_mode = OFF")
        target.execute("PRAGMA synchronous = OFF")
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode = DELETE")
        target.execute(f"DROP TABLE IF EXISTS {db.MARKER_TABLE}")
        db.ensure_public_tables(target)
    finally:
        target.close()
        source.close()


def carry_over(new: sqlite3.Connection, previous: Path) -> None:
    """Copy current_version and url_last_checked from the previous public DB."""
    if not previous.exists():
        return
    new.execute("ATTACH DATABASE ? AS old", (previous.resolve().as_uri() + "?mode=ro",))
    try:
        tables = {row[0] for row in new.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        if "current_version" in tables:
            columns = {row[1] for row in new.execute("PRAGMA old.table_info(current_version)")}
            pocket = "pocket" if "pocket" in columns else "NULL"
            component = "component" if "component" in columns else "NULL"
            new.execute(
                "INSERT OR REPLACE INTO current_version(release, pocket, component, package, version)"
                f" SELECT release, {pocket}, {component}, package, version FROM old.current_version"
            )
        if "url_last_checked" in tables:
            new.execute("INSERT OR REPLACE INTO url_last_checked SELECT url, timestamp FROM old.url_last_checked")
    except sqlite3.DatabaseError as err:
        log.warning("previous public DB %s unreadable (%s); archive versions start afresh", previous, err)
    finally:
        new.execute("DETACH DATABASE old")


def refresh_versions(conn: sqlite3.Connection, archive_url: str) -> int:
    """Refresh current_version from every release/pocket/component index. Returns failures."""
    releases = [row[0] for row in conn.execute("SELECT DISTINCT release FROM test ORDER BY release")]
    failures = 0
    for release in releases:
        for pocket in (release, f"{release}-updates"):
            for component in archive.COMPONENTS:
                url = archive.sources_url(archive_url, pocket, component)
                row = conn.execute("SELECT timestamp FROM url_last_checked WHERE url = ?", (url,)).fetchone()
                try:
                    fetched = archive.fetch(url, row[0] if row else None)
                except archive.FetchFailed as err:
                    failures += 1
                    log.warning("keeping previous versions for %s %s: %s", pocket, component, err)
                    continue
                if fetched.body is None:
                    continue
                versions = archive.highest_versions(fetched.body)
                with db.write_transaction(conn):
                    conn.execute("DELETE FROM current_version WHERE pocket = ? AND component = ?", (pocket, component))
                    # -updates wins over the release pocket whichever index changed last.
                    conn.executemany(
                        "INSERT INTO current_version(release, pocket, component, package, version)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(release, package) DO UPDATE SET"
                        " pocket = excluded.pocket, component = excluded.component, version = excluded.version"
                        " WHERE excluded.pocket = ? OR current_version.pocket != ?",
                        (
                            (release, pocket, component, package, version, f"{release}-updates", f"{release}-updates")
                            for package, version in versions.items()
                        ),
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO url_last_checked(url, timestamp) VALUES (?, ?)",
                        (url, fetched.last_modified or ""),
                    )
                log.info("%s %s: %d source versions", pocket, component, len(versions))
    return failures


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def update_indexed_packages(conn: sqlite3.Connection, path: Path) -> None:
    """``{"h": [["hello", "2.10-3"], ...]}``: highest version per package, epoch stripped.

    A state file next to it remembers the newest run id already counted, so
    each publish reads only the new results (versions are never removed).
    """
    state_path = path.with_name(path.name + ".state")
    state = atomicfile.read_json(state_path, {})
    best: dict[str, str] = state.get("packages", {}) if isinstance(state, dict) else {}
    since = state.get("last_run_id", "") if isinstance(state, dict) else ""
    last = since
    rows = conn.execute(
        "SELECT test.package, result.version, result.run_id FROM result JOIN test ON test.id = result.test_id"
        " WHERE result.run_id > ?",
        (since,),
    )
    for package, version, run_id in rows:
        last = max(last, run_id)
        if not version or version == "unknown":
            continue
        try:
            if package not in best or Version(version) > Version(best[package]):
                best[package] = version
        except ValueError:
            log.warning("%s: unparsable version %r ignored", package, version)
    index: dict[str, list[list[str]]] = {}
    for package in sorted(best):
        index.setdefault(results.srchash(package), []).append([package, archive.strip_epoch(best[package])])
    atomicfile.write_json_atomic(path, index)
    atomicfile.write_json_atomic(state_path, {"last_run_id": last, "packages": best})


def publish(config: Config) -> bool:
    """One publish. Returns False when there was nothing to publish. Raises ProgramError."""
    rw_path = config.need("web", "database")
    public = Path(config.need("web", "database_public"))
    new_path = public.with_name(public.name + ".new")
    stages: dict[str, float] = {}
    clock = time.monotonic()
    new_path.unlink(missing_ok=True)
    if not os.path.exists(rw_path):
        log.info("no results DB at %s yet; nothing to publish", rw_path)
        return False
    probe = db.connect_ro(rw_path)
    try:
        empty = not probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'result'").fetchone() or not (
            probe.execute("SELECT 1 FROM result LIMIT 1").fetchone()
        )
    finally:
        probe.close()
    if empty:
        log.info("results DB has no results; nothing to publish")
        return False

    def stage(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        stages[name] = now - clock
        clock = now

    stage("prepare")
    snapshot(rw_path, new_path)
    start_writeback(new_path)
    stage("snapshot")
    conn = sqlite3.connect(str(new_path), isolation_level=None)
    # No fsync: its first one would flush the whole fresh copy (~0.5 s per GB). The copy is
    # rebuilt from the durable rw DB every minute, and readers check it against its sha256.
    conn.execute("PRAGMA synchronous = OFF")
    try:
        carry_over(conn, public)
        failures = refresh_versions(conn, config.get("web", "archive_url"))
        stage("archive")
        flakiness.update(conn, public)
        stage("flakiness")
        indexed = config.get("web", "indexed_packages")
        if indexed:
            update_indexed_packages(conn, Path(indexed))
            stage("indexed packages")
    finally:
        conn.close()
    digest = sha256_of(new_path)
    stage("sha256")
    os.chmod(new_path, atomicfile.PUBLIC_MODE)
    atomicfile.write_atomic(config.public_db_sha256, digest)
    os.replace(new_path, public)
    stage("swap")
    log.info(
        "published %s (sha256 %s) in %.2f s (%s), %d archive fetch failures",
        public, digest, sum(stages.values()), ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()), failures,
    )  # fmt: skip
    return True


def _run(args: argparse.Namespace, config: Config) -> int:
    config.need_all([("web", "database"), ("web", "database_public")])
    lock_path = config.need("web", "database_public") + ".lock"
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another publish-db is running; nothing to do")
            return 0
        try:
            publish(config)
        except sqlite3.Error as err:
            raise ProgramError(f"publishing failed: {err}") from err
    return 0


def main(argv=None) -> int:
    return run_program("Publish a consistent public copy of the results DB with its sha256.", _run, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
