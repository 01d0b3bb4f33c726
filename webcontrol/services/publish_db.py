# SPDX-License-Identifier: GPL-3.0-or-later
"""publish-db: a consistent public copy of the results DB, swapped in atomically (docs/formats.rst, Publishing).

1. Snapshot the rw DB (opened read-only) with SQLite's backup API into
   ``<public>.new`` in one step: WAL readers never block the writer, and a
   one-step backup is a consistent snapshot. Drop the ingest marker table.
2. Carry ``current_version``/``url_last_checked`` over from the previous
   public DB and refresh them from the archive's Sources.gz indexes with
   If-Modified-Since; a failed fetch keeps the old rows and is logged.
3. Write the sha256 (bare hex), rename it into place, then rename the DB.
4. Update the latest tested version of each package in the copy (only
   results stored since the last publish are read, see
   :mod:`webcontrol.tested_versions`) and write the indexed-packages JSON
   from it.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from webcontrol import archive, atomicfile, classindex, db, flakiness, tested_versions, triggerindex
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import ProgramError, run_program

log = logging.getLogger(__name__)

HASH_CHUNK = 4 * 1024 * 1024
SNAPSHOT_MMAP_BYTES = 1 << 36
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
        # Source pages read through mmap and a small target cache (pages go straight to the file):
        # 2-3x faster than the defaults, close to a plain file copy.
        source.execute(f"PRAGMA mmap_size = {SNAPSHOT_MMAP_BYTES}")
        target.execute("PRAGMA journal_mode = OFF")
        target.execute("PRAGMA synchronous = OFF")
        target.execute("PRAGMA cache_size = 100")
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


class BackgroundHash:
    """sha256 of a file computed in a thread (hashlib releases the GIL), so reads can go on meanwhile."""

    def __init__(self, path: Path) -> None:
        self._digest: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="sha256", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._digest = sha256_of(path)
        except OSError as err:
            self._error = err

    def result(self) -> str:
        """The hex digest. Raises OSError."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
        tested_versions.update(conn, public)
        stage("tested versions")
        # The snapshot is final (what follows only reads it): hash it while the packages index is updated.
        hashing = BackgroundHash(new_path)
        indexed = config.get("web", "indexed_packages")
        if indexed:
            tested_versions.write_json(conn, Path(indexed))
        stage("indexed packages")
    finally:
        conn.close()
    digest = hashing.result()
    stage("sha256")
    os.chmod(new_path, atomicfile.PUBLIC_MODE)
    atomicfile.write_atomic(config.public_db_sha256, digest)
    os.replace(new_path, public)
    stage("swap")
    log.info(
        "published %s (sha256 %s) in %.2f s (%s), %d archive fetch failures",
        public,
        digest,
        sum(stages.values()),
        ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()),
        failures,
    )
    return True


def _run(args: argparse.Namespace, config: Config) -> int:
    config.need_all([("web", "database"), ("web", "database_public")])
    with periodic.single_instance(config.need("web", "database_public") + ".lock", "publish-db") as held:
        if not held:
            return 0
        return periodic.run_passes("publish-db", lambda: _publish_pass(config))


def _publish_pass(config: Config) -> None:
    try:
        if publish(config):
            triggerindex.publish_stage(config)
            classindex.publish_stage(config)
    except sqlite3.Error as err:
        raise ProgramError(f"publishing failed: {err}") from err


def main(argv=None) -> int:
    return run_program("Publish a consistent public copy of the results DB with its sha256.", _run, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
