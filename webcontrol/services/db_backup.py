# SPDX-License-Identifier: GPL-3.0-or-later
"""db-backup: daily snapshot of the rw results DB, and ``--restore`` (docs/formats.rst, Backups).

Backup: SQLite's backup API copies the rw DB into a temp file while
download-results keeps writing (a consistent snapshot, never a text dump);
the snapshot is zstd-compressed and stored as
``YYYY/MM/DD/HH_MM_SS/autopkgtest-<md5 of the snapshot>.db.zst`` in the
Swift container ``db-backups`` (or ``<state_dir>/backups/`` with the local
store); backups older than ``[web] backup_retention_days`` are deleted.

Restore: the newest backup (or ``--name``) is downloaded, checked and
copied with the backup API into the rw DB, which must be missing or hold no
results. Older backups holding a zstd-compressed SQL text dump are loaded
too. Stop download-results and download-all-results while restoring.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from webcontrol import db
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import ProgramError, run_program
from webcontrol.store import ContainerNotFound, ResultStore
from webcontrol.store.local import LocalStore
from webcontrol.store.swift import SwiftStore

log = logging.getLogger(__name__)

SWIFT_CONTAINER = "db-backups"
LOCAL_CONTAINER = "backups"  # under [web] state_dir
CHUNK = 1 << 20
SQLITE_MAGIC = b"SQLite format 3\x00"
_STAMP = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})_(\d{2})_(\d{2})/")
_MD5 = re.compile(r"autopkgtest-([0-9a-f]{32})\.db\.zst\Z")


@dataclass(frozen=True)
class Destination:
    store: ResultStore
    container: str

    def __str__(self) -> str:
        return f"{self.store!r} container {self.container}"


def destination(config: Config) -> Destination:
    """Swift ``db-backups`` with the Swift store, else ``<state_dir>/backups``. Raises ConfigError."""
    if config.results_store == "swift":
        return Destination(SwiftStore.from_config(config), SWIFT_CONTAINER)
    return Destination(LocalStore(config.state_dir), LOCAL_CONTAINER)


def backup_name(when: datetime.datetime, md5: str) -> str:
    return f"{when:%Y/%m/%d/%H_%M_%S}/autopkgtest-{md5}.db.zst"


def backup_time(name: str) -> datetime.datetime | None:
    """The UTC time encoded at the start of a backup name, or None."""
    match = _STAMP.match(name)
    if not match:
        return None
    try:
        return datetime.datetime(*map(int, match.groups()), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


# Backup


def snapshot(db_path: Path, target: Path) -> None:
    """Consistent copy of the live DB with the backup API. Raises ProgramError, sqlite3.Error."""
    if not db_path.is_file():
        raise ProgramError(f"results DB {db_path} does not exist")
    source = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=db.BUSY_TIMEOUT_MS / 1000)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # all pages in one step: one consistent read transaction
            copy.execute("PRAGMA journal_mode = DELETE")  # a self-contained single file
        finally:
            copy.close()
    finally:
        source.close()


def compress(source: Path, target: Path) -> str:
    """zstd-compress ``source`` into ``target``; returns the md5 of the uncompressed bytes."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(source, "rb") as raw, open(target, "wb") as out:
        with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer:
            while chunk := raw.read(CHUNK):
                md5.update(chunk)
                writer.write(chunk)
    return md5.hexdigest()


def make_backup(db_path: Path, dest: Destination, now: datetime.datetime) -> str:
    """Snapshot, compress and upload; returns the object name."""
    with tempfile.TemporaryDirectory(prefix=".db-backup-", dir=db_path.parent) as work:
        snap, packed = Path(work) / "snapshot.db", Path(work) / "snapshot.db.zst"
        snapshot(db_path, snap)
        log.info("snapshot of %s taken (%d bytes)", db_path, snap.stat().st_size)
        md5 = compress(snap, packed)
        name = backup_name(now, md5)
        dest.store.put_object_file(dest.container, name, packed)
        log.info("uploaded %s (%d bytes) to %s", name, packed.stat().st_size, dest)
    return name


def list_backups(dest: Destination) -> list[str]:
    """Names of all ``.zst`` objects in the backup container, oldest first."""
    if isinstance(dest.store, LocalStore) and not dest.store.root.is_dir():
        return []  # no state_dir yet: nothing was ever backed up here
    try:
        names = [row.name for row in dest.store.iter_objects(dest.container) if row.name.endswith(".zst")]
    except ContainerNotFound:
        return []
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(names, key=lambda name: (backup_time(name) or epoch, name))


def expire(dest: Destination, now: datetime.datetime, days: int, keep: str) -> int:
    """Delete backups older than ``days``, never ``keep``; returns how many failed."""
    cutoff = now - datetime.timedelta(days=days)
    failed = 0
    for name in list_backups(dest):
        when = backup_time(name)
        if when is None:
            log.info("keeping %s: no date in its name", name)
            continue
        if name == keep or when >= cutoff:
            continue
        try:
            dest.store.delete_object(dest.container, name)
            log.info("deleted %s (older than %d days)", name, days)
        except Exception as err:  # noqa: BLE001 - one line per failed item, the rest goes on
            failed += 1
            log.error("could not delete old backup %s: %s", name, err)
    return failed


# Restore


def result_rows(db_path: Path) -> int:
    """Results held by an existing DB (0 for an empty file or schema). Raises ProgramError."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return 0
    try:
        conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0] if "result" in tables else 0
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise ProgramError(f"refusing to restore into {db_path}: cannot read it ({err}); move it away first") from None


def download(dest: Destination, name: str, target: Path) -> None:
    stream = dest.store.open_object(dest.container, name)
    try:
        with open(target, "wb") as out:
            for chunk in stream.chunks:
                out.write(chunk)
    finally:
        stream.close()


def unpack(packed: Path, work: Path, name: str) -> Path:
    """An SQLite file from a backup: a zstd DB image, or a zstd SQL dump loaded into a scratch DB."""
    raw = work / "backup.raw"
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with open(packed, "rb") as src, open(raw, "wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
            while chunk := reader.read(CHUNK):
                md5.update(chunk)
                out.write(chunk)
    except zstandard.ZstdError as err:
        raise ProgramError(f"backup {name} is not valid zstd data: {err}") from None
    expected = _MD5.search(name)
    if expected and expected.group(1) != md5.hexdigest():
        raise ProgramError(f"backup {name} is damaged: md5 {md5.hexdigest()} does not match its name")
    with open(raw, "rb") as handle:
        is_db = handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    if is_db:
        return raw
    scratch = work / "from-dump.db"
    try:
        statements = load_dump(raw, scratch)
    except (sqlite3.Error, UnicodeDecodeError) as err:
        raise ProgramError(f"backup {name} is neither an SQLite DB nor a loadable SQL dump: {err}") from None
    log.info("loaded SQL dump %s (%d statements)", name, statements)
    return scratch


def load_dump(dump: Path, target: Path) -> int:
    """Run an SQL text dump into a new DB one statement at a time (dumps can be larger than memory).

    Dumps written by ``sqlite3 .dump`` and ``iterdump()`` hold one statement per line (string
    values may span lines), which is what this reads.
    """
    conn = sqlite3.connect(target, isolation_level=None)
    count = 0
    try:
        # A scratch file, thrown away if this fails: no journal, no fsync.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        pending = ""
        with open(dump, encoding="utf-8") as lines:
            for line in lines:
                pending += line
                if sqlite3.complete_statement(pending):
                    conn.execute(pending)
                    pending = ""
                    count += 1
        if pending.strip():
            conn.execute(pending)
            count += 1
        if conn.in_transaction:
            conn.execute("COMMIT")
    finally:
        conn.close()
    return count


def restore(db_path: Path, dest: Destination, name: str | None) -> str:
    """Restore the newest backup (or ``name``) into an empty or missing DB; returns its name."""
    held = result_rows(db_path)
    if held:
        raise ProgramError(f"refusing to restore into {db_path}: it already holds {held} results")
    if name is None:
        backups = list_backups(dest)
        if not backups:
            raise ProgramError(f"no backups in {dest}")
        name = backups[-1]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".db-restore-", dir=db_path.parent) as work_dir:
        work = Path(work_dir)
        packed = work / "backup.zst"
        download(dest, name, packed)
        log.info("downloaded %s (%d bytes) from %s", name, packed.stat().st_size, dest)
        image = unpack(packed, work, name)
        source = sqlite3.connect(image)
        try:
            check = source.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise ProgramError(f"backup {name} fails SQLite's quick_check: {check}")
            # The backup API writes through SQLite's locks and WAL, never around them.
            target = sqlite3.connect(db_path, timeout=db.BUSY_TIMEOUT_MS / 1000)
            try:
                if result_rows(db_path):  # a writer got in while we downloaded
                    raise ProgramError(f"refusing to restore into {db_path}: results appeared during the restore")
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    # A restored legacy DB (or dump) is brought up to the current schema now, not by the next writer.
    conn = db.connect_rw(db_path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        count = db.result_count(conn)
    finally:
        conn.close()
    log.info("restored %s into %s (schema version %d, %d results)", name, db_path, version, count)
    return name


# Program


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.name and not args.restore:
        raise ProgramError("--name only makes sense with --restore")
    db_path = Path(config.need("web", "database"))
    dest = destination(config)
    try:
        if args.restore:
            restore(db_path, dest, args.name)
            return 0
        return periodic.run_passes("db-backup", lambda: _backup_pass(db_path, dest, config))
    finally:
        dest.store.close()


def _backup_pass(db_path: Path, dest: Destination, config: Config) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = make_backup(db_path, dest, now)
    expire(dest, now, config.get("web", "backup_retention_days"), keep=name)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--restore",
        action="store_true",
        help="restore the newest backup into an empty or missing rw DB (stop the DB writers first)",
    )
    parser.add_argument("--name", metavar="OBJECT", help="with --restore: this backup instead of the newest")


def main(argv=None) -> int:
    return run_program(
        "Back up the rw results DB (SQLite backup API, zstd) to Swift db-backups or <state_dir>/backups, "
        "and delete backups older than [web] backup_retention_days; or restore one with --restore.",
        _run,
        _arguments,
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
