# SPDX-License-Identifier: GPL-3.0-or-later
"""download-all-results against a real Swift: rows, damaged objects, resume, failures."""

from __future__ import annotations

import logging
import secrets
import threading
import time
import urllib.parse

import pika
import pytest

from tests.ingest.conftest import expected_row, rows, wait_for
from tests.services.http_relay import HttpRelay
from webcontrol import db, demodata, results
from webcontrol.config import from_dict
from webcontrol.services import download_all_results as dar
from webcontrol.store import StoreError
from webcontrol.store.swift import SwiftStore


def release_name() -> str:
    return "t" + secrets.token_hex(3)


@pytest.fixture
def swift_config(make_config, swift_server):
    def make(releases, **web):
        return make_config(web={"releases": " ".join(releases), **web}, swift=swift_server.config_section())

    return make


def run_cli(config, *extra):
    return dar.main(["--config", config.path, *extra])


def test_empty_db_filled_from_swift_equals_download_results(
    swift_store, swift_config, amqp_uri, recorder_factory, tmp_path
):
    """Generate results in Swift, feed their completion messages to download-results,
    then fill an empty DB from Swift: both DBs hold the same rows, field by field."""
    old, new = release_name(), release_name()
    runs = demodata.write_runs(
        swift_store, demodata.plan_runs([old, new], ["amd64", "s390x"], ["hello", "libpng1.6", "six"], runs_per_test=3)
    )
    # PPA and private results are never stored.
    demodata.write_runs(swift_store, demodata.plan_ppa_runs(new, "amd64", "joe", "ppa1", ["hello", "six"]))
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.exchange_declare(recorder_factory.exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(recorder_factory.queue, durable=True)
    channel.queue_bind(recorder_factory.queue, recorder_factory.exchange)
    for run in runs:
        channel.basic_publish(recorder_factory.exchange, "", run.completion_message().serialise())
    connection.close()
    live_db = tmp_path / "live.db"
    recorder_factory(live_db)
    assert wait_for(lambda: db.result_count(db.connect_ro(live_db)) == len(runs) if live_db.exists() else False)

    config = swift_config([old, new])
    assert run_cli(config) == 0
    filled = db.connect_rw(config.get("web", "database"))
    assert rows(filled) == sorted(expected_row(run) for run in runs)
    assert rows(filled) == rows(db.connect_rw(live_db))
    # The pass completed: the marker is reset so the next run sweeps again, and finds nothing new.
    assert db.get_marker(filled, results.distro_container(new)) == ""
    assert run_cli(config) == 0
    assert len(rows(filled)) == len(runs)


def test_damaged_objects_are_listed_and_skipped(swift_store, swift_config, caplog):
    rel = release_name()
    runs = demodata.write_runs(swift_store, demodata.plan_runs([rel], ["amd64"], ["hello"], runs_per_test=3))
    container = results.distro_container(rel)
    broken = f"{rel}/amd64/h/hello/20200101_000000_abcde@/result.tar"
    swift_store.put_object(container, broken, b"this is not a tar file")
    off_layout = f"{rel}/amd64/x/hello/20200101_000000_abcde@/result.tar"
    swift_store.put_object(container, off_layout, b"")
    config = swift_config([rel])
    assert run_cli(config) == 0
    assert rows(db.connect_rw(config.get("web", "database"))) == sorted(expected_row(r) for r in runs)
    assert f"{container}/{broken}" in caplog.text
    assert "damaged objects" in caplog.text
    assert "not in the <release>/<arch>/<prefix>/<package>/<run_id> layout" in caplog.text


def test_since_and_release_options(swift_store, swift_config):
    rel_a, rel_b = release_name(), release_name()
    runs = demodata.write_runs(swift_store, demodata.plan_runs([rel_a, rel_b], ["amd64"], ["hello"], runs_per_test=6))
    config = swift_config([rel_a, rel_b])
    cutoff = sorted(r.run_id for r in runs if r.release == rel_a)[3]
    since = f"{cutoff[:4]}-{cutoff[4:6]}-{cutoff[6:8]}"
    assert run_cli(config, "--release", rel_a, "--since", since) == 0
    stored = rows(db.connect_rw(config.get("web", "database")))
    assert stored and {r[0] for r in stored} == {rel_a}
    assert all(r[3] >= since.replace("-", "") for r in stored)


def test_a_sweep_asks_the_db_once_per_listing_page(swift_store, swift_config, monkeypatch):
    """The hourly pass lists everything again: its DB cost must grow with pages, not with objects."""
    rel = release_name()
    runs = demodata.write_runs(
        swift_store, demodata.plan_runs([rel], ["amd64", "arm64"], ["hello", "six"], runs_per_test=5)
    )
    objects = sum(1 for _ in swift_store.iter_objects(results.distro_container(rel)))
    pages = -(-objects // 10)
    conn = db.connect_rw(swift_config([rel]).get("web", "database"))
    assert dar.FullIngest(conn, lambda: swift_store, workers=2, page_size=10).run([rel]).stored == len(runs)

    lookups = []

    def traced(connection):
        connection.set_trace_callback(lambda sql: lookups.append(sql) if "FROM result" in sql else None)
        return connection

    traced(conn)
    connect_ro = db.connect_ro
    monkeypatch.setattr(db, "connect_ro", lambda *args, **kwargs: traced(connect_ro(*args, **kwargs)))
    summary = dar.FullIngest(conn, lambda: swift_store, workers=2, page_size=10).run([rel])
    assert (summary.present, summary.stored) == (len(runs), 0)
    assert len(lookups) <= pages
    assert summary.lookups == len(lookups)
    assert summary.listings == pages + (objects % 10 == 0)
    assert f"({summary.listings} listing requests, {len(lookups)} DB lookups)" in summary.line()


class FailingAfter:
    """A real store that fails once ``pages`` listings have been served (Swift going away)."""

    def __init__(self, store, pages):
        self.store = store
        self.pages = pages
        self.listings = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def list_objects(self, *args, **kwargs):
        self.listings += 1
        if self.pages is not None and self.listings > self.pages:
            raise StoreError("connection refused")
        return self.store.list_objects(*args, **kwargs)


def test_killed_run_resumes_from_its_marker_rereading_at_most_one_page(swift_store, swift_config, monkeypatch):
    monkeypatch.setattr(dar, "PAGE_SIZE", 10)
    rel = release_name()
    runs = demodata.write_runs(
        swift_store, demodata.plan_runs([rel], ["amd64", "arm64"], ["hello", "six"], runs_per_test=5)
    )
    objects = sum(1 for _ in swift_store.iter_objects(results.distro_container(rel)))
    pages = -(-objects // 10)
    assert pages > 3
    config = swift_config([rel])
    conn = db.connect_rw(config.get("web", "database"))
    failing = FailingAfter(swift_store, pages=2)
    job = dar.FullIngest(conn, lambda: failing, workers=2)
    with pytest.raises(StoreError):
        job.run([rel])
    marker = db.get_marker(conn, results.distro_container(rel))
    assert marker  # two pages committed with their rows
    partial = len(rows(conn))
    assert 0 < partial < len(runs)

    resumed = FailingAfter(swift_store, pages=None)
    job = dar.FullIngest(conn, lambda: resumed, workers=2)
    job.run([rel])
    assert rows(conn) == sorted(expected_row(r) for r in runs)
    assert resumed.listings <= pages - 2 + 1  # only the pages after the marker (+ the final empty check)


def test_unreachable_store_fails_and_keeps_the_marker(swift_store, swift_config, swift_server, make_config):
    rel = release_name()
    demodata.write_runs(swift_store, demodata.plan_runs([rel], ["amd64"], ["hello"], runs_per_test=2))
    section = dict(swift_server.config_section())
    section["os_auth_url"] = "http://127.0.0.1:9/auth/v1.0"
    config = make_config(web={"releases": rel}, swift=section)
    conn = db.connect_rw(config.get("web", "database"))
    db.record_results(conn, [], marker=(results.distro_container(rel), "somewhere"))
    assert run_cli(config) == 1
    assert db.get_marker(conn, results.distro_container(rel)) == "somewhere"
    assert rows(conn) == []


def test_discovers_release_containers_when_none_configured(tmp_path, make_config):
    from webcontrol.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    runs = demodata.write_runs(store, demodata.plan_runs(["zesty"], ["amd64"], ["hello"], runs_per_test=2))
    demodata.write_runs(store, demodata.plan_ppa_runs("zesty", "amd64", "joe", "ppa", ["hello"]))
    config = make_config(web={"releases": "", "results_dir": tmp_path / "store"})
    job = dar.FullIngest(db.connect_rw(config.get("web", "database")), lambda: LocalStore(tmp_path / "store"))
    assert job.discover_releases() == ["zesty"]
    # And through the CLI, distro-info may name releases the store lacks: those containers are skipped.
    assert run_cli(config, "--release", "zesty") == 0
    assert len(rows(db.connect_rw(config.get("web", "database")))) == len(runs)


def test_writer_and_batch_ingest_at_the_same_time(tmp_path):
    """download-results and download-all-results write the same DB concurrently without loss."""
    from webcontrol.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    runs = demodata.write_runs(
        store, demodata.plan_runs(["noble"], ["amd64", "arm64"], demodata.DEMO_PACKAGES[:6], runs_per_test=6)
    )
    other = list(demodata.plan_runs(["jammy"], ["amd64"], demodata.DEMO_PACKAGES, runs_per_test=10))
    path = tmp_path / "rw.db"
    db.connect_rw(path).close()
    from webcontrol import ingest

    def live_writer():
        conn = db.connect_rw(path)
        for run in other:
            db.record_results(conn, [ingest.record_from_completion(run.completion_message())])
            time.sleep(0.001)

    thread = threading.Thread(target=live_writer)
    thread.start()
    dar.FullIngest(db.connect_rw(path), lambda: store, workers=4).run(["noble"])
    thread.join()
    assert rows(db.connect_rw(path)) == sorted([expected_row(r) for r in runs] + [expected_row(r) for r in other])


def test_from_backup_restores_then_downloads_only_what_the_backup_lacks(tmp_path, make_config, caplog):
    """Rebuilding a unit: the newest backup, then only the results stored after it."""
    from webcontrol.services import db_backup
    from webcontrol.store.local import LocalStore

    caplog.set_level(logging.INFO)
    store = LocalStore(tmp_path / "store")
    planned = list(demodata.plan_runs(["noble"], ["amd64", "arm64"], demodata.DEMO_PACKAGES[:5], runs_per_test=6))
    before, after = planned[::2], planned[1::2]  # later results land between earlier ones in name order
    demodata.write_runs(store, before)
    old_unit = make_config(web={"results_dir": tmp_path / "store", "database": tmp_path / "old.db"})
    assert run_cli(old_unit) == 0
    conn = db.connect_rw(tmp_path / "old.db")
    # The old unit died in the middle of a pass: its saved position must not be trusted after a restore.
    db.record_results(conn, [], marker=(results.distro_container("noble"), "noble/zzz"))
    conn.close()
    assert db_backup.main(["--config", old_unit.path]) == 0
    demodata.write_runs(store, after)

    new_unit = make_config(web={"results_dir": tmp_path / "store", "database": tmp_path / "new.db"})
    caplog.clear()
    assert run_cli(new_unit, "--from-backup") == 0
    assert rows(db.connect_rw(tmp_path / "new.db")) == sorted(expected_row(r) for r in planned)
    assert f"done: {len(after)} results stored, {len(before)} already present" in caplog.text

    # Run again (say, after an interruption): the DB is not restored over, only completed.
    caplog.clear()
    assert run_cli(new_unit, "--from-backup") == 0
    assert "not restoring a backup over it" in caplog.text
    assert f"done: 0 results stored, {len(planned)} already present" in caplog.text


def test_from_backup_without_any_backup_fails_with_one_line(tmp_path, make_config, capsys):
    config = make_config(web={"results_dir": tmp_path / "store"})
    assert run_cli(config, "--from-backup") == 1
    assert f"no backups in LocalStore({str(tmp_path / 'state')!r}) container backups" in capsys.readouterr().err
    assert not db.result_count(db.connect_rw(config.get("web", "database")))


def test_a_result_swift_keeps_failing_fails_its_page_and_keeps_the_marker(swift_store, swift_config, swift_server):
    """A GET answered 5xx after every retry: the run fails without committing that page or moving past it."""
    rel = release_name()
    runs = demodata.write_runs(
        swift_store, demodata.plan_runs([rel], ["amd64", "arm64"], ["hello", "six"], runs_per_test=5)
    )
    container = results.distro_container(rel)
    names = [obj.name for obj in swift_store.iter_objects(container)]
    broken = next(name for name in names[10:20] if name.endswith("/result.tar"))
    relay = HttpRelay(swift_server.ports["proxy"]).start()
    section = dict(swift_server.config_section(), os_auth_url=relay.url + "/auth/v1.0")
    store = SwiftStore.from_config(from_dict({"swift": section}), retries=1, starting_backoff=0.01, max_backoff=0.01)
    conn = db.connect_rw(swift_config([rel]).get("web", "database"))
    try:
        relay.fail(urllib.parse.quote(f"{container}/{broken}"), 503, 1000)
        with pytest.raises(StoreError, match="HTTP 503"):
            dar.FullIngest(conn, lambda: store, workers=2, page_size=10).run([rel])
        assert db.get_marker(conn, container) == names[9]
        first_page = {f"{r.swift_dir}/result.tar" for r in runs} & set(names[:10])
        assert rows(conn) == sorted(expected_row(r) for r in runs if f"{r.swift_dir}/result.tar" in first_page)
    finally:
        store.close()
        relay.stop()
    # Swift answers again: the next run resumes at that page and completes.
    dar.FullIngest(conn, lambda: swift_store, workers=2, page_size=10).run([rel])
    assert rows(conn) == sorted(expected_row(r) for r in runs)


@pytest.mark.parametrize("busy_runs", [dar.BUSY_RUNS, 1], ids=["run-folders", "busy-tests-on-their-own"])
def test_sweep_after_a_restore_finds_new_tests_newer_runs_and_late_written_older_runs(
    swift_store, swift_config, caplog, busy_runs
):
    """fill_gaps (download-all-results --from-backup after the restore) on a real Swift: nothing is lost.

    With ``busy_runs=1`` every test the DB knows is listed on its own from two days before its newest run.
    """
    caplog.set_level(logging.INFO)
    rel = release_name()
    planned = list(demodata.plan_runs([rel], ["amd64", "arm64"], ["hello", "six", "glib2.0"], runs_per_test=4))
    new_test = [r for r in planned if r.package == "glib2.0"]
    known = [r for r in planned if r.package != "glib2.0"]
    newer = [r for r in known if r.run_id == max(o.run_id for o in known if (o.arch, o.package) == (r.arch, r.package))]
    late_older = [r for r in known if r not in newer][1:2]  # back-filled after the backup with an older run id
    backed_up = [r for r in known if r not in newer and r not in late_older]
    demodata.write_runs(swift_store, backed_up)
    config = swift_config([rel])
    conn = db.connect_rw(config.get("web", "database"))
    assert dar.FullIngest(conn, lambda: swift_store, workers=2).run([rel]).stored == len(backed_up)
    demodata.write_runs(swift_store, new_test + newer + late_older)
    container = results.distro_container(rel)
    unfinished = f"{rel}/amd64/h/hello/20990101_000000_fffff@"
    swift_store.put_object(container, f"{unfinished}/log.gz", b"still running")

    summary = dar.FullIngest(conn, lambda: swift_store, workers=2, busy_runs=busy_runs).run([rel], gaps=True)
    assert rows(conn) == sorted(expected_row(r) for r in planned)
    assert (summary.stored, summary.present) == (len(new_test + newer + late_older), len(backed_up))
    assert (summary.incomplete, summary.damaged) == (1, [])
    assert f"{container}/{unfinished}/result.tar: no result.tar (yet)" in caplog.text
    # Four known tests (two packages on two architectures), each listed on its own or not.
    assert f"({4 if busy_runs == 1 else 0} busy tests from their newest runs)" in caplog.text
    assert summary.listed == len(planned) + 1  # one row per run folder, not three objects
    assert db.get_marker(conn, container) == ""
