# SPDX-License-Identifier: GPL-3.0-or-later
"""publish-db: the public copy read back with plain sqlite3, archive versions, failures."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from webcontrol import db, demodata
from webcontrol.db import ResultRecord
from webcontrol.services import publish_db


def seed(path, records):
    conn = db.connect_rw(path)
    db.record_results(conn, records, marker=("autopkgtest-noble", "noble/amd64/z"))
    return conn


def record(package, version, run_id, release="noble", arch="amd64", exitcode=0):
    return ResultRecord(release, arch, package, run_id, version, f"{package}/{version}", 30, exitcode, "", "", None)


@pytest.fixture
def archive(tmp_path):
    def make(versions, component="main"):
        return demodata.write_archive(tmp_path / "archive", versions, component)

    return make


def public_of(config):
    return Path(config.get("web", "database_public"))


def test_public_copy_is_readable_and_matches_its_sha256(tmp_path, make_config, archive):
    url = archive({"noble": {"hello": "2.10-3", "six": "1.16.0-4"}, "noble-updates": {"hello": "2.10-3ubuntu0.1"}})
    indexed = tmp_path / "indexed.json"
    config = make_config(web={"archive_url": url, "indexed_packages": indexed})
    seed(
        config.get("web", "database"),
        [
            record("hello", "2.10-3", "20240101_000000_aaaaa@"),
            record("hello", "2.9-1", "20240102_000000_aaaaa@"),
            record("hello", "1:2.8-1", "20240103_000000_aaaaa@"),
            record("libpng1.6", "1.6.43-5", "20240101_000000_bbbbb@"),
            record("libpng1.6", "1.6.9-1", "20240101_000001_bbbbb@"),
            record("six", "unknown", "20240101_000000_ccccc@", exitcode=12),
        ],
    )
    # A leftover from a killed run is removed first.
    public = public_of(config)
    Path(str(public) + ".new").write_bytes(b"junk")
    assert publish_db.main(["--config", config.path]) == 0

    digest = (Path(str(public) + ".sha256")).read_text()
    assert digest == hashlib.sha256(public.read_bytes()).hexdigest()  # bare hex, no newline
    assert not Path(str(public) + ".new").exists()
    assert oct(public.stat().st_mode & 0o777) == "0o644"
    conn = sqlite3.connect(public)  # plain sqlite3, as britney reads it
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # The insight tables (webcontrol.flakiness) and the latest tested versions (webcontrol.tested_versions)
    # ride along; the ingest marker does not.
    assert tables == {
        "test",
        "result",
        "current_version",
        "url_last_checked",
        "test_flakiness",
        "test_flakiness_state",
        "tested_version",
        "tested_version_state",
    }
    britney = conn.execute(
        "SELECT exitcode, version, triggers, run_id FROM test LEFT JOIN result ON test.id = result.test_id"
        " WHERE release = 'noble' AND arch = 'amd64' AND package = 'hello' AND run_id > '20240101_000000_aaaaa@'"
        " ORDER BY run_id"
    ).fetchall()
    assert britney == [
        (0, "2.9-1", "hello/2.9-1", "20240102_000000_aaaaa@"),
        (0, "1:2.8-1", "hello/1:2.8-1", "20240103_000000_aaaaa@"),
    ]
    versions = conn.execute(
        "SELECT release, pocket, component, package, version FROM current_version ORDER BY package"
    ).fetchall()
    assert versions == [
        ("noble", "noble-updates", "main", "hello", "2.10-3ubuntu0.1"),
        ("noble", "noble", "main", "six", "1.16.0-4"),
    ]
    checked = dict(conn.execute("SELECT url, timestamp FROM url_last_checked"))
    assert url + "/dists/noble/main/source/Sources.gz" in checked
    # Highest Debian version per package (epoch wins, then stripped); "unknown" is no version, so six,
    # tested only with an unknown version, is listed without one.
    assert json.loads(indexed.read_text()) == {
        "h": [["hello", "2.8-1"]],
        "libp": [["libpng1.6", "1.6.43-5"]],
        "s": [["six", ""]],
    }


def test_unchanged_archive_keeps_rows_and_updates_win_whatever_changes(tmp_path, make_config, archive):
    url = archive({"noble": {"hello": "1.0-1"}, "noble-updates": {"hello": "1.0-1ubuntu1"}})
    config = make_config(web={"archive_url": url})
    conn = seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    # Only the release pocket changes: -updates still wins.
    sources = tmp_path / "archive/dists/noble/main/source/Sources.gz"
    sources.write_bytes(gzip.compress(b"Package: hello\nVersion: 1.0-2\n\nPackage: new\nVersion: 3\n"))
    os.utime(sources, (time.time() + 5, time.time() + 5))
    db.record_results(conn, [record("hello", "1.0-2", "20240102_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    assert dict(public.execute("SELECT package, version FROM current_version")) == {"hello": "1.0-1ubuntu1", "new": "3"}
    assert public.execute("SELECT COUNT(*) FROM result").fetchone() == (2,)


def test_failed_archive_fetch_keeps_previous_rows(tmp_path, make_config, archive, caplog):
    url = archive({"noble": {"hello": "1.0-1"}})
    config = make_config(web={"archive_url": url})
    seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    (tmp_path / "archive/dists/noble/main/source/Sources.gz").write_bytes(b"not gzip")
    os.utime(tmp_path / "archive/dists/noble/main/source/Sources.gz", (time.time() + 5, time.time() + 5))
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT package, version FROM current_version").fetchall() == [("hello", "1.0-1")]
    assert "keeping previous versions for noble main" in caplog.text


def test_http_archive_with_if_modified_since(tmp_path, make_config):
    import http.server

    requests = []
    body = gzip.compress(b"Package: hello\nVersion: 9.9-1\n")

    class Mirror(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append((self.path, self.headers.get("If-Modified-Since")))
            if self.path.endswith("/noble/main/source/Sources.gz"):
                if self.headers.get("If-Modified-Since") == "Mon, 01 Jan 2024 00:00:00 GMT":
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                self.end_headers()
                self.wfile.write(body)
            elif "universe" in self.path:
                self.connection.close()  # reset
            else:
                self.send_error(500)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = make_config(web={"archive_url": f"http://127.0.0.1:{server.server_port}/ubuntu"})
        seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
        assert publish_db.main(["--config", config.path]) == 0
        assert publish_db.main(["--config", config.path]) == 0
    finally:
        server.shutdown()
        server.server_close()
    main_requests = [h for p, h in requests if p == "/ubuntu/dists/noble/main/source/Sources.gz"]
    assert main_requests == [None, "Mon, 01 Jan 2024 00:00:00 GMT"]
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT version FROM current_version WHERE package = 'hello'").fetchone() == ("9.9-1",)


def test_http_archive_transient_failure_is_retried(tmp_path, make_config):
    """A mirror that answers 503 once and then the index: the versions still arrive in this run."""
    import http.server

    answers = []
    body = gzip.compress(b"Package: hello\nVersion: 9.9-1\n")

    class Mirror(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.path.endswith("/noble/main/source/Sources.gz"):
                self.send_error(404)
                return
            status = 503 if not answers else 200
            answers.append(status)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = make_config(web={"archive_url": f"http://127.0.0.1:{server.server_port}/ubuntu"})
        seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
        assert publish_db.main(["--config", config.path]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert answers == [503, 200]
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT version FROM current_version WHERE package = 'hello'").fetchone() == ("9.9-1",)


def test_old_current_version_without_pocket_is_upgraded(tmp_path, make_config):
    config = make_config()
    seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
    old = sqlite3.connect(public_of(config))
    old.execute(
        "CREATE TABLE current_version (release CHAR[20], package CHAR[50], version CHAR[120], PRIMARY KEY(release, package))"
    )
    old.execute("INSERT INTO current_version VALUES ('noble', 'hello', '0.9-1')")
    old.commit()
    old.close()
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT release, pocket, component, package, version FROM current_version").fetchall() == [
        ("noble", None, None, "hello", "0.9-1")
    ]


def test_nothing_to_publish_without_results(make_config):
    config = make_config()
    db.connect_rw(config.get("web", "database")).close()
    assert publish_db.main(["--config", config.path]) == 0
    assert not public_of(config).exists()


def test_missing_key_is_named(tmp_path, capsys):
    conf = tmp_path / "c.conf"
    conf.write_text("[web]\ndatabase = /tmp/x.db\n")
    assert publish_db.main(["--config", str(conf)]) == 2
    assert f"{conf}: missing required key [web] database_public" in capsys.readouterr().err


def test_snapshot_while_the_writer_ingests_is_consistent(tmp_path, make_config):
    config = make_config()
    path = config.get("web", "database")
    conn = seed(path, [record("hello", "1.0", f"20240101_{i:06d}_aaaaa@") for i in range(2000)])
    stop = threading.Event()
    written = []

    def writer():
        writer_conn = db.connect_rw(path)
        i = 0
        while not stop.is_set():
            db.record_results(writer_conn, [record("six", "1.0", f"20240202_{i:06d}_aaaaa@")])
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(5):
            assert publish_db.main(["--config", config.path]) == 0
            public = sqlite3.connect(public_of(config))
            assert public.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            # A snapshot holds whole transactions: six's rows are a prefix of what was written.
            six = public.execute(
                "SELECT COUNT(*) FROM result JOIN test ON test.id = test_id WHERE package = 'six'"
            ).fetchone()[0]
            assert six <= len(written)
            public.close()
    finally:
        stop.set()
        thread.join()
    assert written
    conn.close()


# The working copy (<public>.work): new rows appended, derived tables updated in place -----------------


def dump(path):
    """Every row of every table of a DB, and its schema: what a reader of the public DB can see.

    Result rowids count (the derived tables' watermarks are result rowids); other tables' are not content.
    """
    conn = sqlite3.connect(path)
    try:
        schema = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        tables = [row[1] for row in schema if row[0] == "table"]
        content = {
            table: sorted(conn.execute(f'SELECT {"rowid, " if table == "result" else ""}* FROM "{table}"'))
            for table in tables
        }
        return schema, content, conn.execute("PRAGMA user_version").fetchone()
    finally:
        conn.close()


def served_pair(config):
    public = public_of(config)
    return public.stat().st_ino, public.read_bytes(), Path(config.public_db_sha256).read_text()


def test_the_working_copy_publishes_what_a_fresh_snapshot_would(tmp_path, make_config, archive):
    url = archive({"noble": {"hello": "2.10-3"}, "jammy": {"six": "1.0-1"}})
    indexed = tmp_path / "indexed.json"
    config = make_config(web={"archive_url": url, "indexed_packages": indexed})
    conn = seed(config.get("web", "database"), [record("hello", "2.9-1", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    # New tests (one of a release the DB did not have), new results, a newer version, and the ingest
    # marker moving on: the next publish appends them to the working copy.
    db.record_results(
        conn,
        [
            record("hello", "2.10-3", "20240102_000000_aaaaa@"),
            record("hello", "2.10-3", "20240102_000000_bbbbb@", arch="arm64", exitcode=4),
            record("six", "1.0-1", "20240103_000000_ccccc@", release="jammy"),
        ],
        marker=("autopkgtest-jammy", "jammy/amd64/s"),
    )
    assert publish_db.main(["--config", config.path]) == 0
    ino, body, digest = served_pair(config)
    assert digest == hashlib.sha256(body).hexdigest()
    incremental = dump(public_of(config))
    assert db.MARKER_TABLE not in incremental[1]
    assert incremental[1]["result"][-1][1:3] == (3, "20240103_000000_ccccc@")
    # jammy's index was fetched although jammy came after the first publish.
    assert ("jammy", "jammy", "main", "six", "1.0-1") in incremental[1]["current_version"]
    assert json.loads(indexed.read_text())["h"] == [["hello", "2.10-3"]]

    assert publish_db.main(["--config", config.path, "--full"]) == 0
    assert dump(public_of(config)) == incremental


def test_an_unchanged_db_is_not_copied_again_but_archive_changes_are_published(tmp_path, make_config, archive):
    url = archive({"noble": {"hello": "1.0-1"}})
    indexed = tmp_path / "indexed.json"
    config = make_config(web={"archive_url": url, "indexed_packages": indexed})
    conn = seed(config.get("web", "database"), [record("hello", "1.0-1", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    first = served_pair(config)
    # Nothing new: the very same file stays in place, with its sha256; a lost indexed-packages JSON
    # (it lives in /run) comes back.
    indexed.unlink()
    assert publish_db.main(["--config", config.path]) == 0
    assert served_pair(config) == first
    assert json.loads(indexed.read_text()) == {"h": [["hello", "1.0-1"]]}
    # Only the archive changed: published.
    sources = tmp_path / "archive/dists/noble/main/source/Sources.gz"
    sources.write_bytes(gzip.compress(b"Package: hello\nVersion: 1.0-2\n"))
    os.utime(sources, (time.time() + 5, time.time() + 5))
    assert publish_db.main(["--config", config.path]) == 0
    ino, body, digest = served_pair(config)
    assert digest == hashlib.sha256(body).hexdigest() != first[2]
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT version FROM current_version WHERE package = 'hello'").fetchone() == ("1.0-2",)
    public.close()
    # A lost .sha256 is written again.
    Path(config.public_db_sha256).unlink()
    assert publish_db.main(["--config", config.path]) == 0
    assert served_pair(config)[2] == hashlib.sha256(public_of(config).read_bytes()).hexdigest()
    # A new result: published.
    db.record_results(conn, [record("hello", "1.0-2", "20240102_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT COUNT(*) FROM result").fetchone() == (2,)
    public.close()


def test_a_rebuilt_or_edited_rw_db_is_published_as_it_now_is(tmp_path, make_config):
    config = make_config()
    rw = Path(config.get("web", "database"))
    records = [record("hello", "1.0", f"20240101_00000{i}_aaaaa@") for i in range(4)]
    conn = seed(rw, records)
    assert publish_db.main(["--config", config.path]) == 0

    def published_runs():
        public = sqlite3.connect(public_of(config))
        try:
            return [row[0] for row in public.execute("SELECT run_id FROM result ORDER BY run_id")]
        finally:
            public.close()

    # The newest result deleted by hand: noticed at once.
    conn.execute("DELETE FROM result WHERE run_id = '20240101_000003_aaaaa@'")
    assert publish_db.main(["--config", config.path]) == 0
    assert published_runs() == [r.run_id for r in records[:3]]
    # An older one: publish-db --full (docs/operating.rst) takes a fresh snapshot.
    conn.execute("DELETE FROM result WHERE run_id = '20240101_000000_aaaaa@'")
    assert publish_db.main(["--config", config.path, "--full"]) == 0
    assert published_runs() == [r.run_id for r in records[1:3]]
    conn.close()
    # The rw DB rebuilt from scratch with other rows.
    for suffix in ("", "-wal", "-shm"):
        Path(str(rw) + suffix).unlink(missing_ok=True)
    seed(rw, [record("six", "2.0", "20250101_000000_bbbbb@")]).close()
    assert publish_db.main(["--config", config.path]) == 0
    assert published_runs() == ["20250101_000000_bbbbb@"]
    # A migration that adds an index to the rw DB: it reaches the public DB.
    conn = sqlite3.connect(rw)
    conn.execute("CREATE INDEX result_duration_ix ON result(duration)")
    conn.close()
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT 1 FROM sqlite_master WHERE name = 'result_duration_ix'").fetchone() == (1,)
    public.close()


def test_a_working_copy_from_before_a_reboot_is_rebuilt(tmp_path, make_config, caplog):
    config = make_config()
    conn = seed(config.get("web", "database"), [record("hello", "1.0", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    # The working copy is written without fsync: after a crash of the machine it cannot be trusted.
    work = Path(str(public_of(config)) + ".work")
    state = Path(str(work) + ".json")
    value = json.loads(state.read_text())
    state.write_text(json.dumps({**value, "boot": "another-boot"}))
    with sqlite3.connect(work) as damaged:
        damaged.execute("DELETE FROM result")
    db.record_results(conn, [record("hello", "1.1", "20240102_000000_aaaaa@")])
    caplog.set_level("INFO")
    assert publish_db.main(["--config", config.path]) == 0
    assert "fresh snapshot" in caplog.text
    public = sqlite3.connect(public_of(config))
    assert public.execute("SELECT COUNT(*) FROM result").fetchone() == (2,)
    public.close()
    conn.close()


def test_statistics_of_the_rw_db_reach_the_public_db(make_config):
    config = make_config()
    conn = seed(config.get("web", "database"), [record("hello", "1.0", "20240101_000000_aaaaa@")])
    assert publish_db.main(["--config", config.path]) == 0
    db.record_results(conn, [record("hello", "1.1", f"20240102_00000{i}_aaaaa@") for i in range(5)])
    conn.execute("ANALYZE")
    assert publish_db.main(["--config", config.path]) == 0
    # A later ANALYZE changes rows, not the schema: still published.
    db.record_results(conn, [record("six", "1.1", "20240103_000000_aaaaa@")])
    conn.execute("ANALYZE")
    assert publish_db.main(["--config", config.path]) == 0
    public = sqlite3.connect(public_of(config))
    incremental = sorted(public.execute("SELECT * FROM sqlite_stat1"))
    public.close()
    assert ("test", "test_package_uix", "2 1 1 1") in incremental
    # As a fresh snapshot has them (without the ingest marker's).
    assert publish_db.main(["--config", config.path, "--full"]) == 0
    assert dump(public_of(config))[1]["sqlite_stat1"] == incremental
    conn.close()
