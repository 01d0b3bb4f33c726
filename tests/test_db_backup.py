# SPDX-License-Identifier: GPL-3.0-or-later
"""db-backup and db-backup --restore, against the local store and a real Swift."""

from __future__ import annotations

import datetime
import hashlib
import re
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
import zstandard

from tests.services.swift import unreachable_config_section
from webcontrol import db
from webcontrol.config import from_dict, write
from webcontrol.services import db_backup
from webcontrol.store import ObjectInfo
from webcontrol.store.local import LocalStore
from webcontrol.store.swift import SwiftStore

NAME = re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}_\d{2}_\d{2}/autopkgtest-([0-9a-f]{32})\.db\.zst$")


def record(i: int, package: str = "hello") -> db.ResultRecord:
    return db.ResultRecord(
        release="noble",
        arch="amd64",
        package=package,
        run_id=f"20240221_{i:06d}_a1b2c@",
        version="1.0",
        triggers=f"{package}/1.0",
        duration=10,
        exitcode=0,
        uuid=str(uuid.uuid4()),
    )


def make_db(path: Path, count: int = 3) -> None:
    conn = db.connect_rw(path)
    db.record_results(conn, [record(i) for i in range(count)])
    conn.close()


def results_in(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT package, run_id, version, exitcode FROM result JOIN test ON test.id = test_id ORDER BY run_id"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture
def local_site(tmp_path):
    """Config file and paths for a site with the local store."""
    values = {
        "web": {
            "database": str(tmp_path / "data" / "autopkgtest.db"),
            "state_dir": str(tmp_path / "state"),
            "results_dir": str(tmp_path / "results"),
        }
    }
    (tmp_path / "data").mkdir()
    write(values, tmp_path / "site.conf")
    return tmp_path


def run(site: Path, *args: str) -> int:
    return db_backup.main(["--config", str(site / "site.conf"), *args])


def backups_dir(site: Path) -> Path:
    return site / "state" / "backups"


def stored_backups(site: Path) -> list[str]:
    root = backups_dir(site)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_backup_to_local_store_is_a_compressed_snapshot(local_site):
    make_db(local_site / "data" / "autopkgtest.db")
    assert run(local_site) == 0
    [name] = stored_backups(local_site)
    match = NAME.match(name)
    assert match, name
    with open(backups_dir(local_site) / name, "rb") as stored:
        raw = zstandard.ZstdDecompressor().stream_reader(stored).read()
    assert hashlib.md5(raw).hexdigest() == match.group(1)
    copy = local_site / "copy.db"
    copy.write_bytes(raw)
    assert results_in(copy) == results_in(local_site / "data" / "autopkgtest.db")
    assert len(results_in(copy)) == 3


def test_snapshot_is_consistent_while_a_writer_runs(local_site):
    path = local_site / "data" / "autopkgtest.db"
    make_db(path, 0)
    stop = threading.Event()

    def writer():
        conn = db.connect_rw(path)
        i = 0
        while not stop.is_set():
            # Two rows per transaction: a consistent snapshot holds an even number.
            db.record_results(conn, [record(i, "a"), record(i, "b")])
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = []
        for n in range(3):
            snap = local_site / f"snap{n}.db"
            db_backup.snapshot(path, snap)
            conn = sqlite3.connect(snap)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            counts.append(conn.execute("SELECT COUNT(*) FROM result").fetchone()[0])
            conn.close()
    finally:
        stop.set()
        thread.join()
    assert all(count % 2 == 0 for count in counts), counts


def test_old_backups_are_deleted(local_site):
    make_db(local_site / "data" / "autopkgtest.db")
    store = LocalStore(local_site / "state")
    now = datetime.datetime.now(datetime.timezone.utc)
    old = db_backup.backup_name(now - datetime.timedelta(days=31), "0" * 32)
    recent = db_backup.backup_name(now - datetime.timedelta(days=29), "1" * 32)
    store.put_object("backups", old, b"x")
    store.put_object("backups", recent, b"x")
    store.put_object("backups", "manual/keep-me.zst", b"x")
    assert run(local_site) == 0
    names = stored_backups(local_site)
    assert old not in names
    assert recent in names and "manual/keep-me.zst" in names
    assert len(names) == 3


def test_restore_into_missing_db(local_site):
    db_path = local_site / "data" / "autopkgtest.db"
    make_db(db_path, 5)
    before = results_in(db_path)
    assert run(local_site) == 0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    assert run(local_site, "--restore") == 0
    assert results_in(db_path) == before
    # The restored DB is a working rw DB.
    conn = db.connect_rw(db_path)
    db.record_results(conn, [record(99)])
    conn.close()
    assert len(results_in(db_path)) == 6


def test_restore_picks_the_newest_backup_into_an_empty_schema(local_site):
    db_path = local_site / "data" / "autopkgtest.db"
    make_db(db_path, 1)
    assert run(local_site) == 0
    conn = db.connect_rw(db_path)
    db.record_results(conn, [record(50), record(51)])
    conn.close()
    # A later backup, one second on, holds 3 results.
    db_backup.make_backup(
        db_path,
        db_backup.Destination(LocalStore(local_site / "state"), "backups"),
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1),
    )
    db_path.unlink()
    Path(f"{db_path}-wal").unlink(missing_ok=True)
    Path(f"{db_path}-shm").unlink(missing_ok=True)
    db.connect_rw(db_path).close()  # what download-results leaves: schema, no results
    assert run(local_site, "--restore") == 0
    assert len(results_in(db_path)) == 3


def test_restore_refuses_a_db_with_results(local_site, capsys):
    db_path = local_site / "data" / "autopkgtest.db"
    make_db(db_path, 2)
    assert run(local_site) == 0
    conn = db.connect_rw(db_path)
    db.record_results(conn, [record(7)])
    conn.close()
    assert run(local_site, "--restore") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "refusing to restore" in err[-1] and "holds 3 results" in err[-1]
    assert len(results_in(db_path)) == 3


def test_restore_accepts_an_old_sql_dump_backup(local_site):
    legacy = sqlite3.connect(":memory:")
    legacy.executescript(
        """
        CREATE TABLE test (id INTEGER PRIMARY KEY, release CHAR[20], arch CHAR[20], package char[120]);
        CREATE TABLE result (test_id INTEGER, run_id CHAR[30], version VARCHAR[200], triggers TEXT,
            duration INTEGER, exitcode INTEGER, requester TEXT, PRIMARY KEY(test_id, run_id));
        INSERT INTO test VALUES (1, 'jammy', 'arm64', 'six');
        INSERT INTO result VALUES (1, '20220101_000000_abcde@', '1.16', 'six/1.16', 5, 4, '');
        """
    )
    dump = "\n".join(legacy.iterdump()).encode()
    LocalStore(local_site / "state").put_object(
        "backups", "2022/01/02/03_04_05/autopkgtest.sql.zst", zstandard.ZstdCompressor().compress(dump)
    )
    assert run(local_site, "--restore") == 0
    db_path = local_site / "data" / "autopkgtest.db"
    assert results_in(db_path) == [("six", "20220101_000000_abcde@", "1.16", 4)]
    conn = sqlite3.connect(db_path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(result)")}
    conn.close()
    assert {"env", "uuid"} <= columns  # migrated to the current schema


def test_restore_rejects_a_damaged_backup(local_site, capsys):
    db_path = local_site / "data" / "autopkgtest.db"
    store = LocalStore(local_site / "state")
    name = db_backup.backup_name(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc), "f" * 32)
    store.put_object("backups", name, zstandard.ZstdCompressor().compress(b"SQLite format 3\x00" + b"\0" * 100))
    assert run(local_site, "--restore") == 1
    assert "damaged" in capsys.readouterr().err
    assert results_in_or_none(db_path) is None


def test_restore_rejects_a_backup_that_is_not_sql(local_site, capsys):
    LocalStore(local_site / "state").put_object(
        "backups", "2023/01/01/00_00_00/autopkgtest.sql.zst", zstandard.ZstdCompressor().compress(b"hello world;\n")
    )
    assert run(local_site, "--restore") == 1
    assert "neither an SQLite DB nor a loadable SQL dump" in capsys.readouterr().err.strip().splitlines()[-1]
    assert results_in_or_none(local_site / "data" / "autopkgtest.db") is None


def results_in_or_none(path: Path):
    return results_in(path) if path.exists() and path.stat().st_size else None


def test_missing_db_and_no_backups_fail_with_one_line(local_site, capsys):
    assert run(local_site) == 1
    assert "does not exist" in capsys.readouterr().err.strip().splitlines()[-1]
    assert run(local_site, "--restore") == 1
    assert "no backups" in capsys.readouterr().err.strip().splitlines()[-1]


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        db_backup.main(["--help"])
    assert done.value.code == 0
    assert "--restore" in capsys.readouterr().out


# Real Swift


@pytest.fixture
def swift_site(tmp_path, swift_server):
    values = {
        "web": {"database": str(tmp_path / "autopkgtest.db"), "state_dir": str(tmp_path / "state")},
        "swift": swift_server.config_section(),
    }
    write(values, tmp_path / "site.conf")
    return tmp_path


def swift_backups(swift_server) -> list[ObjectInfo]:
    store = SwiftStore.from_config(from_dict({"swift": swift_server.config_section()}))
    try:
        return list(store.iter_objects("db-backups"))
    finally:
        store.close()


def test_backup_and_restore_through_swift(swift_site, swift_server):
    db_path = swift_site / "autopkgtest.db"
    make_db(db_path, 4)
    before = results_in(db_path)
    store = SwiftStore.from_config(from_dict({"swift": swift_server.config_section()}))
    stale = db_backup.backup_name(datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc), "2" * 32)
    store.put_object("db-backups", stale, b"x")
    store.close()
    assert run(swift_site) == 0
    names = [row.name for row in swift_backups(swift_server)]
    assert stale not in names
    ours = [name for name in names if NAME.match(name)]
    assert ours, names
    assert not (swift_site / "state" / "backups").exists()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    assert run(swift_site, "--restore", "--name", max(ours)) == 0
    assert results_in(db_path) == before


def test_swift_down_fails_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("webcontrol.store.swift.STARTING_BACKOFF", 0.01)
    monkeypatch.setattr("webcontrol.store.swift.MAX_BACKOFF", 0.02)
    values = {"web": {"database": str(tmp_path / "autopkgtest.db")}, "swift": unreachable_config_section()}
    write(values, tmp_path / "site.conf")
    make_db(tmp_path / "autopkgtest.db", 1)
    assert run(tmp_path) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot reach" in line and "Traceback" not in line
    # Nothing half-done is left next to the DB.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".db-")) == []
