# SPDX-License-Identifier: GPL-3.0-or-later
import sqlite3

import pytest

from webcontrol import db

LEGACY = """
CREATE TABLE test (id INTEGER PRIMARY KEY, release CHAR[20], arch CHAR[20], package char[120]);
CREATE TABLE result (test_id INTEGER, run_id CHAR[30], version VARCHAR[200], triggers TEXT, duration INTEGER,
    exitcode INTEGER, requester TEXT, PRIMARY KEY(test_id, run_id), FOREIGN KEY(test_id) REFERENCES test(id));
CREATE UNIQUE INDEX test_package_uix ON test(package, release, arch);
INSERT INTO test VALUES (1, 'noble', 'amd64', 'hello');
INSERT INTO result VALUES (1, '20240101_000000_abcde@', '1.0', 'hello/1.0', 10, 0, 'joe');
"""


def record(run_id, uuid=None, arch="amd64"):
    return db.ResultRecord("noble", arch, "hello", run_id, "1.1", "hello/1.1", 5, 4, "", "", uuid)


def test_legacy_db_is_upgraded_in_place_with_rows_intact(tmp_path):
    path = tmp_path / "old.db"
    legacy = sqlite3.connect(path)
    legacy.executescript(LEGACY)
    legacy.close()
    conn = db.connect_rw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    assert conn.execute("SELECT * FROM result").fetchall() == [
        (1, "20240101_000000_abcde@", "1.0", "hello/1.0", 10, 0, "joe", None, None)
    ]
    assert db.record_results(conn, [record("20240102_000000_abcde@", "u1")]) == [db.Outcome.INSERTED]
    with pytest.raises(sqlite3.IntegrityError):  # the unique index stands in for the column constraint
        conn.execute("INSERT INTO result(test_id, run_id, uuid) VALUES (1, 'x', 'u1')")


def test_schema_matches_the_contract(tmp_path):
    conn = db.connect_rw(tmp_path / "new.db")
    declared = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(result)")}
    assert declared == {
        "test_id": "INTEGER",
        "run_id": "CHAR[30]",
        "version": "VARCHAR[200]",
        "triggers": "TEXT",
        "duration": "INTEGER",
        "exitcode": "INTEGER",
        "requester": "TEXT",
        "env": "TEXT",
        "uuid": "TEXT",
    }
    indexes = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    }
    assert {"test_package_uix", "test_id_ix", "result_run_ix", "result_requester_idx", "result_test_id_ix"} <= indexes
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_idempotent_and_uuid_conflict_keeps_the_result(tmp_path):
    conn = db.connect_rw(tmp_path / "r.db")
    first = record("20240102_000000_abcde@", "u1")
    assert db.record_results(conn, [first, first]) == [db.Outcome.INSERTED, db.Outcome.DUPLICATE]
    other = record("20240102_000000_abcde@", "u1", arch="arm64")
    assert db.record_results(conn, [other]) == [db.Outcome.UUID_CLEARED]
    assert conn.execute("SELECT COUNT(*), COUNT(uuid) FROM result").fetchone() == (2, 1)


def test_failed_transaction_rolls_back_rows_and_marker(tmp_path):
    conn = db.connect_rw(tmp_path / "r.db")
    bad = db.ResultRecord("noble", "amd64", "hello", "20240102_000000_abcde@", "1", "t/1", 1, 0, "", "", None)
    with pytest.raises(sqlite3.Error):
        with db.write_transaction(conn):
            conn.execute("INSERT INTO test(release, arch, package) VALUES ('noble', 'amd64', 'hello')")
            db.set_marker(conn, "autopkgtest-noble", "m")
            conn.execute("INSERT INTO nonexistent VALUES (1)")
    assert db.get_marker(conn, "autopkgtest-noble") is None
    assert db.record_results(conn, [bad]) == [db.Outcome.INSERTED]


def test_read_only_connection_refuses_writes(tmp_path):
    path = tmp_path / "r.db"
    db.connect_rw(path).close()
    ro = db.connect_ro(path)
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("INSERT INTO test(release, arch, package) VALUES ('a', 'b', 'c')")


def test_statement_time_limit(tmp_path):
    path = tmp_path / "r.db"
    db.connect_rw(path).close()
    ro = db.connect_ro(path, timeout_ms=50)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        ro.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c").fetchone()


def test_opening_fills_what_user_version_claims_but_the_db_lacks(tmp_path, caplog):
    """A public copy says it is fully migrated but has no marker table; a hand-made DB lost an index."""
    path = tmp_path / "copy.db"
    conn = db.connect_rw(path)
    db.record_results(conn, [record("20240101_000000_abcde@")], marker=("autopkgtest-noble", "x"))
    conn.execute(f"DROP TABLE {db.MARKER_TABLE}")
    conn.execute("DROP INDEX result_requester_run_ix")
    conn.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    conn = db.connect_rw(path)
    assert db.schema_gaps(conn) == []
    assert "lacks ingest_marker, result_requester_run_ix" in caplog.text
    db.record_results(conn, [record("20240102_000000_abcde@")], marker=("autopkgtest-noble", "y"))
    assert db.get_marker(conn, "autopkgtest-noble") == "y" and db.result_count(conn) == 2


def test_release_arches_seek_the_index_and_answer_as_the_scan_does(tmp_path):
    """The browse catalogue: a legacy DB (no release/arch index) is scanned, a migrated one sought, same answer."""
    from webcontrol import history

    path = tmp_path / "old.db"
    legacy = sqlite3.connect(path)
    legacy.executescript(LEGACY)
    pairs = [("jammy", "arm64"), ("noble", "s390x"), ("noble", "armhf"), ("jammy", "amd64"), ("focal", "i386")]
    for number, (release, arch) in enumerate(pairs * 3):
        legacy.execute("INSERT INTO test(release, arch, package) VALUES (?, ?, ?)", (release, arch, f"p{number}"))
    legacy.commit()
    expected = {"focal": ["i386"], "jammy": ["amd64", "arm64"], "noble": ["amd64", "armhf", "s390x"]}
    assert history.release_arches(legacy) == expected
    legacy.close()

    conn = db.connect_rw(path)
    assert db.RELEASE_ARCH_INDEX in {row[1] for row in conn.execute("PRAGMA index_list(test)")}
    statements = []
    conn.set_trace_callback(statements.append)
    assert history.release_arches(conn) == expected
    conn.set_trace_callback(None)
    assert not any("DISTINCT" in statement for statement in statements)
    assert len(statements) == 1 + 1 + 6  # the index check, the first pair, one seek per pair found
