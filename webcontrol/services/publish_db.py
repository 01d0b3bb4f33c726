# SPDX-License-Identifier: GPL-3.0-or-later
"""publish-db: a consistent public copy of the results DB, swapped in atomically (docs/formats.rst, Publishing).

publish-db keeps a private working copy of the public DB, ``<public>.work``,
and every minute

1. appends to it the tests and results the rw DB gained (read in one
   transaction, so a consistent snapshot; results are only ever added).
   When it cannot (no working copy yet, the rw DB was rebuilt, restored or
   migrated, rows vanished, the copy is a day old, ``--full``), it takes a
   fresh snapshot of the rw DB (opened read-only) with SQLite's backup
   API instead, drops the ingest marker table and carries the previous
   public DB's version tables over;
2. refreshes ``current_version``/``url_last_checked`` from the archive's
   Sources.gz indexes with If-Modified-Since (a failed fetch keeps the old
   rows and is logged);
3. brings the flakiness and tested-version tables up to date from the new
   results (:mod:`webcontrol.flakiness`, :mod:`webcontrol.tested_versions`)
   and writes the indexed-packages JSON when it changed;
4. copies the working copy to ``<public>.new`` while hashing the bytes
   written in a second thread, writes the sha256 (bare hex), renames it into
   place, then renames the DB.

So the public file is written once and never rewritten afterwards, and the
derived tables cost what the new rows cost. When nothing changed since the
last publish, step 4 is skipped and the public DB stays as it is.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from webcontrol import archive, atomicfile, classindex, db, flakiness, tested_versions, triggerindex
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import ProgramError, run_program

log = logging.getLogger(__name__)

COPY_CHUNK = 4 * 1024 * 1024
COPY_STEP = 32 * 1024 * 1024
SNAPSHOT_MMAP_BYTES = 1 << 36
WORK_SUFFIX = ".work"
WORK_CACHE_KIB = -65536  # 64 MiB of page cache for the working copy's index updates
#: A fresh snapshot at least this often, whatever happened to the rw DB out of band.
REBUILD_AFTER_S = 24 * 3600
RENAME_EXCHANGE = 2
FETCH_THREADS = 8
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _copy_step(source: int, target: int, count: int) -> int:
    """Copy up to ``count`` bytes in the kernel from the files' positions; how many were copied."""
    try:
        return os.copy_file_range(source, target, count)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    return os.sendfile(target, source, None, count)


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


def refresh_versions(conn: sqlite3.Connection, archive_url: str, releases: Iterable[str] | None = None) -> int:
    """Refresh current_version from every release/pocket/component index. Returns failures.

    ``releases`` are those of the tests (read from ``test`` when None). The
    indexes are fetched concurrently (mostly 304 answers: the time is round
    trips), then applied one by one in a fixed order.
    """
    if releases is None:
        releases = [row[0] for row in conn.execute("SELECT DISTINCT release FROM test")]
    releases = sorted(releases)
    indexes = [
        (release, pocket, component, archive.sources_url(archive_url, pocket, component))
        for release in releases
        for pocket in (release, f"{release}-updates")
        for component in archive.COMPONENTS
    ]
    checked = dict(conn.execute("SELECT url, timestamp FROM url_last_checked"))

    def fetch(url: str) -> archive.Fetched | archive.FetchFailed:
        try:
            return archive.fetch(url, checked.get(url))
        except archive.FetchFailed as err:
            return err

    with ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="fetch") as pool:
        outcomes = list(pool.map(fetch, [index[3] for index in indexes]))
    failures = 0
    for (release, pocket, component, _url), fetched in zip(indexes, outcomes, strict=True):
        if isinstance(fetched, archive.FetchFailed):
            failures += 1
            log.warning("keeping previous versions for %s %s: %s", pocket, component, fetched)
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
                (fetched.url, fetched.last_modified or ""),
            )
        log.info("%s %s: %d source versions", pocket, component, len(versions))
    return failures


@dataclass
class PublishSummary:
    """What one publish did; ``stages`` maps each stage to its seconds, in order."""

    full: bool  # the working copy was rebuilt from a fresh snapshot of the rw DB
    published: bool  # False: nothing changed since the last publish, the public DB was left as it is
    new_results: int
    digest: str
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())


class Stages:
    """Seconds per publish stage, for the log line and bench/publish_db.py."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock
        self._clock = now


def copy_hashing(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` and return the sha256 of ``target``. Raises OSError.

    The kernel copies (copy_file_range: no trip through user space) in
    steps while a second thread hashes what is already in ``target``
    (hashlib releases the GIL), following right behind: the file is
    hashed while it is written, and hashing, the slower half, sets the pace.
    """
    size = os.path.getsize(source)
    copied = 0
    failed = False
    progress = threading.Condition()
    digest = hashlib.sha256()
    hash_error: list[OSError] = []

    def hash_target() -> None:
        buffer = bytearray(COPY_CHUNK)
        done = 0
        try:
            with open(target, "rb", buffering=0) as handle, memoryview(buffer) as view:
                while done < size:
                    with progress:
                        progress.wait_for(lambda done=done: copied > done or failed)
                        ready = copied
                    if ready <= done:
                        return  # the copy failed
                    while done < ready:
                        count = handle.readinto(view[: min(COPY_CHUNK, ready - done)])
                        if not count:
                            raise OSError(f"{target}: shorter than written")
                        digest.update(view[:count])
                        done += count
        except OSError as err:
            hash_error.append(err)

    with open(source, "rb", buffering=0) as src, open(target, "wb", buffering=0) as dst:
        hasher = threading.Thread(target=hash_target, name="sha256", daemon=True)
        hasher.start()
        try:
            while copied < size:
                count = _copy_step(src.fileno(), dst.fileno(), min(COPY_STEP, size - copied))
                if not count:
                    raise OSError(f"{source}: shorter than {size} bytes")
                with progress:
                    copied += count
                    progress.notify()
        except BaseException:
            with progress:
                failed = True
                progress.notify()
            raise
        finally:
            hasher.join()
    if hash_error:
        raise hash_error[0]
    return digest.hexdigest()


# The working copy ----------------------------------------------------------------------------------


#: Tables publish-db writes itself: a rw DB restored from a public copy may have them, stale.
OWN_TABLES = frozenset(
    {
        "current_version",
        "url_last_checked",
        flakiness.TABLE,
        flakiness.STATE_TABLE,
        tested_versions.TABLE,
        tested_versions.STATE_TABLE,
    }
)


def _rw_objects(conn: sqlite3.Connection, schema: str, tables: Iterable[str] | None = None) -> set[tuple]:
    """(type, name, tbl_name, sql) of the schema objects that come from the rw DB (of ``tables`` only)."""
    skipped = {db.MARKER_TABLE, *OWN_TABLES}
    rows = conn.execute(f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master")
    found = {tuple(row) for row in rows if row[2] not in skipped}
    if tables is not None:
        wanted = set(tables)
        found = {row for row in found if row[2] in wanted}
    return found


def append_new_rows(conn: sqlite3.Connection, rw_path: str) -> int | None:
    """Bring the working copy up to the rw DB by appending what it gained; how many results that was.

    Results and tests are only ever added to the rw DB (docs/formats.rst,
    rw DB), so the rows above the working copy's highest result rowid and
    test id are exactly what is new. Everything is read in one transaction,
    so the copy holds whole rw transactions. Returns None, changing nothing,
    when the working copy no longer mirrors the rw DB (rebuilt or restored,
    migrated, its newest result or test changed, tests deleted): the caller
    then takes a fresh snapshot. Older results edited by hand are only seen
    by a fresh snapshot (``--full``, or the daily one).
    """
    conn.execute("ATTACH DATABASE ? AS rw", (Path(rw_path).resolve().as_uri() + "?mode=ro",))
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = _append(conn)
        except sqlite3.IntegrityError as err:
            log.warning("working copy disagrees with the rw DB (%s); taking a fresh snapshot", err)
            added = None
        if added is None:
            conn.execute("ROLLBACK")
        else:
            conn.execute("COMMIT")
        return added
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("DETACH DATABASE rw")


def _append(conn: sqlite3.Connection) -> int | None:
    rw_objects = _rw_objects(conn, "rw")
    tables = {row[1] for row in rw_objects if row[0] == "table"}
    if _rw_objects(conn, "main", tables) != rw_objects:
        log.info("rw DB schema changed; taking a fresh snapshot")
        return None
    if conn.execute("PRAGMA rw.user_version").fetchone() != conn.execute("PRAGMA main.user_version").fetchone():
        log.info("rw DB migrated; taking a fresh snapshot")
        return None
    newest_test = conn.execute("SELECT * FROM main.test ORDER BY id DESC LIMIT 1").fetchone()
    newest_result = conn.execute("SELECT rowid, * FROM main.result ORDER BY rowid DESC LIMIT 1").fetchone()
    if (
        newest_test and conn.execute("SELECT * FROM rw.test WHERE id = ?", (newest_test[0],)).fetchone() != newest_test
    ) or (
        newest_result
        and conn.execute("SELECT rowid, * FROM rw.result WHERE rowid = ?", (newest_result[0],)).fetchone()
        != newest_result
    ):
        log.info("rw DB was rebuilt or restored; taking a fresh snapshot")
        return None
    conn.execute("INSERT INTO main.test SELECT * FROM rw.test WHERE id > ?", (newest_test[0] if newest_test else 0,))
    columns = ", ".join(f'"{row[1]}"' for row in conn.execute("PRAGMA main.table_info(result)"))
    added = conn.execute(
        f"INSERT INTO main.result(rowid, {columns}) SELECT rowid, {columns} FROM rw.result WHERE rowid > ?",
        (newest_result[0] if newest_result else 0,),
    ).rowcount
    # Tables the rw DB may hold besides these (sqlite_stat1 after an ANALYZE, ...) are small: copied whole.
    for table in sorted(tables - {"test", "result"}):
        conn.execute(f'DELETE FROM main."{table}"')
        # Statistics of the ingest marker go with it, as when a fresh snapshot drops it.
        where = " WHERE tbl != ?" if table in ("sqlite_stat1", "sqlite_stat4") else ""
        conn.execute(
            f'INSERT INTO main."{table}" SELECT * FROM rw."{table}"{where}', (db.MARKER_TABLE,) if where else ()
        )
    # Tests deleted from the rw DB by hand show up as a difference in count (cheap; counting results is
    # not: edits of results by hand wait for the daily snapshot or publish-db --full).
    count = "SELECT COUNT(*) FROM {0}.test"
    if conn.execute(count.format("main")).fetchone() != conn.execute(count.format("rw")).fetchone():
        log.info("rw DB lost tests; taking a fresh snapshot")
        return None
    return added


class WorkState:
    """``<work>.json``: when and since which boot the working copy was built, and what was last published.

    The working copy is written without fsync; a process killed mid-way
    leaves it whole (its rollback journal is in the page cache), but after a
    crash of the machine it may not be, so a working copy from another boot
    is rebuilt, as is one without a readable state file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        value = atomicfile.read_json(path, None)
        if not isinstance(value, dict) or not isinstance(value.get("built"), (int, float)):
            value = {}
        self.built: float = value.get("built", 0.0)
        self.boot: str | None = value.get("boot")
        self.published: list | None = value.get("published")
        #: The releases of the working copy's tests up to id ``releases_upto`` (a scan of ``test`` costs more
        #: than a publish).
        self.releases: list[str] = value.get("releases", [])
        self.releases_upto: int = value.get("releases_upto", 0)

    def usable(self) -> bool:
        return self.built > 0 and self.boot == boot_id() and time.time() - self.built < REBUILD_AFTER_S

    def rebuilt(self) -> None:
        self.built, self.boot, self.published = time.time(), boot_id(), None
        self.releases, self.releases_upto = [], 0

    def add_releases(self, conn: sqlite3.Connection) -> None:
        """Add the releases of the tests added since the last call (tests are only ever added)."""
        top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM test").fetchone()[0]
        if top != self.releases_upto:
            rows = conn.execute("SELECT DISTINCT release FROM test WHERE id > ?", (self.releases_upto,))
            self.releases = sorted(set(self.releases) | {row[0] for row in rows})
            self.releases_upto = top

    def save(self) -> None:
        value = {
            "built": self.built,
            "boot": self.boot,
            "published": self.published,
            "releases": self.releases,
            "releases_upto": self.releases_upto,
        }
        atomicfile.write_json_atomic(self.path, value, mode=0o600)


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def change_counter(path: Path) -> int:
    """The SQLite file change counter (header offset 24): it moves with every commit in rollback mode."""
    with open(path, "rb") as handle:
        handle.seek(24)
        return int.from_bytes(handle.read(4), "big")


def open_work(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")  # the public DB is a byte copy of it: never WAL
    conn.execute("PRAGMA synchronous = OFF")  # see WorkState
    conn.execute(f"PRAGMA cache_size = {WORK_CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {SNAPSHOT_MMAP_BYTES}")
    return conn


def rebuild_work(rw_path: str, work: Path) -> None:
    """A fresh snapshot of the rw DB as the working copy, renamed into place once complete."""
    tmp = work.with_name(work.name + ".tmp")
    tmp.unlink(missing_ok=True)
    snapshot(rw_path, tmp)
    Path(str(work) + "-journal").unlink(missing_ok=True)
    os.replace(tmp, work)


def swap_in(new_path: Path, public: Path) -> None:
    """Put ``new_path`` in place of ``public`` atomically. Raises OSError.

    An exchange (renameat2) rather than a rename over the old file: ext4
    flushes a file renamed over another one first (about 1 s per GB, and it
    would wait on the whole copy); after an exchange the page cache writes
    it back in its own time. Readers check the file against its sha256, and
    a crash rebuilds the working copy. Falls back to a plain rename.
    """
    if public.exists() and _exchange(new_path, public):
        new_path.unlink()  # now the previous public DB
        return
    os.replace(new_path, public)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0


def publish(config: Config, full: bool = False) -> PublishSummary | None:
    """One publish. Returns None when there was nothing to publish. Raises ProgramError, sqlite3.Error, OSError.

    ``full`` rebuilds the working copy from a fresh snapshot even when it
    still mirrors the rw DB.
    """
    rw_path = config.need("web", "database")
    public = Path(config.need("web", "database_public"))
    new_path = public.with_name(public.name + ".new")
    work = public.with_name(public.name + WORK_SUFFIX)
    stages = Stages()
    new_path.unlink(missing_ok=True)
    if not os.path.exists(rw_path):
        log.info("no results DB at %s yet; nothing to publish", rw_path)
        return None
    probe = db.connect_ro(rw_path)
    try:
        empty = not probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'result'").fetchone() or not (
            probe.execute("SELECT 1 FROM result LIMIT 1").fetchone()
        )
    finally:
        probe.close()
    if empty:
        log.info("results DB has no results; nothing to publish")
        return None
    state = WorkState(work.with_name(work.name + ".json"))
    stages.done("prepare")

    added: int | None = None
    if not full and state.usable() and work.exists():
        conn = open_work(work)
        try:
            added = append_new_rows(conn, rw_path)
        except sqlite3.DatabaseError as err:
            log.warning("working copy %s unusable (%s); taking a fresh snapshot", work, err)
        if added is None:
            conn.close()
        stages.done("new rows")
    rebuilt = added is None
    if rebuilt:
        rebuild_work(rw_path, work)
        state.rebuilt()
        conn = open_work(work)
        stages.done("snapshot")
    try:
        if rebuilt:
            carry_over(conn, public)
        state.add_releases(conn)
        failures = refresh_versions(conn, config.get("web", "archive_url"), state.releases)
        stages.done("archive")
        # A fresh snapshot takes the derived tables over from the public DB; otherwise they are updated in place.
        previous = public if rebuilt else None
        flakiness.update(conn, previous)
        stages.done("flakiness")
        tested = tested_versions.update(conn, previous)
        stages.done("tested versions")
        indexed = config.get("web", "indexed_packages")
        if indexed and (rebuilt or tested or not os.path.exists(indexed)):
            tested_versions.write_json(conn, Path(indexed))
        stages.done("indexed packages")
        if rebuilt:
            state.save()  # only now is the working copy complete
        # Hold a read lock: nothing may write the working copy while it is copied.
        conn.execute("BEGIN")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
        counter = change_counter(work)
        published = state.published
        if (
            published is not None
            and published[0] == counter
            and public.exists()
            and public.stat().st_size == work.stat().st_size
            and _read_text(config.public_db_sha256) == published[1]
        ):
            conn.execute("COMMIT")
            stages.done("unchanged")
            log.info("public DB %s unchanged since the last publish (%s)", public, _stage_text(stages))
            return PublishSummary(False, False, added or 0, published[1], stages.seconds)
        try:
            digest = copy_hashing(work, new_path)
        finally:
            conn.execute("COMMIT")
        stages.done("copy + sha256")
    finally:
        conn.close()
    os.chmod(new_path, atomicfile.PUBLIC_MODE)
    atomicfile.write_atomic(config.public_db_sha256, digest)
    swap_in(new_path, public)
    state.published = [counter, digest]
    state.save()
    stages.done("swap")
    log.info(
        "published %s (sha256 %s, %s, %d new results) in %.2f s (%s), %d archive fetch failures",
        public,
        digest,
        "fresh snapshot" if rebuilt else "working copy updated",
        added or 0,
        sum(stages.seconds.values()),
        _stage_text(stages),
        failures,
    )
    return PublishSummary(rebuilt, True, added or 0, digest, stages.seconds)


def _stage_text(stages: Stages) -> str:
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stages.seconds.items())


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _run(args: argparse.Namespace, config: Config) -> int:
    config.need_all([("web", "database"), ("web", "database_public")])
    with periodic.single_instance(config.need("web", "database_public") + ".lock", "publish-db") as held:
        if not held:
            return 0
        return periodic.run_passes("publish-db", lambda: _publish_pass(config, args.full))


def _publish_pass(config: Config, full: bool = False) -> None:
    try:
        if publish(config, full=full):
            triggerindex.publish_stage(config)
            classindex.publish_stage(config)
    except sqlite3.Error as err:
        raise ProgramError(f"publishing failed: {err}") from err


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full",
        action="store_true",
        help="rebuild the working copy from a fresh snapshot of the rw DB (after editing the rw DB by hand)",
    )


def main(argv=None) -> int:
    return run_program(
        "Publish a consistent public copy of the results DB with its sha256.", _run, _add_arguments, argv=argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
