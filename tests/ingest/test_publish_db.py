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
