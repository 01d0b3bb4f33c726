# SPDX-License-Identifier: GPL-3.0-or-later
"""The trigger index sidecar: built and updated by publish-db, never inside the public DB."""

from __future__ import annotations

import sqlite3

from tests.ingest.conftest import make_config  # noqa: F401 (fixture)
from webcontrol import db, triggerindex
from webcontrol.db import ResultRecord
from webcontrol.services import publish_db

GLIB = "glib2.0/2.82.0-1"


def rec(package, run_id, exitcode, triggers=GLIB, arch="amd64", version="1.0-1"):
    return ResultRecord("noble", arch, package, run_id, version, triggers, 30, exitcode, "")


def index_rows(path, trigger=GLIB):
    conn = sqlite3.connect(path)
    try:
        return {
            (package, arch): (run_id, classification, runs)
            for package, arch, run_id, classification, runs in conn.execute(
                "SELECT package, arch, run_id, classification, runs FROM trigger_test WHERE trigger = ?", (trigger,)
            )
        }
    finally:
        conn.close()


def publish(config):
    assert publish_db.main(["--config", config.path]) == 0


def test_publish_db_keeps_the_index_beside_the_public_db_and_updates_it(make_config):  # noqa: F811
    config = make_config()
    rw = db.connect_rw(config.get("web", "database"))
    db.record_results(rw, [rec("libfoo", "20240301_100000@", 0, "libfoo/1.0-1")])
    publish(config)
    public = config.get("web", "database_public")
    path = triggerindex.index_path(public)
    assert path.exists() and index_rows(path) == {}
    tables = {row[0] for row in sqlite3.connect(public).execute("SELECT name FROM sqlite_master")}
    assert not any("trigger" in name for name in tables)

    db.record_results(rw, [rec("libfoo", "20240305_100000@", 4), rec("gtk3", "20240305_100001@", 0)])
    publish(config)
    assert index_rows(path) == {
        ("libfoo", "amd64"): ("20240305_100000@", "regression", 1),
        ("gtk3", "amd64"): ("20240305_100001@", "pass", 1),
    }
    state = dict(sqlite3.connect(path).execute("SELECT name, value FROM state"))
    assert state["rowid"] == "3"


def test_a_late_result_reclassifies_the_runs_after_it(make_config):  # noqa: F811
    config = make_config()
    rw = db.connect_rw(config.get("web", "database"))
    db.record_results(rw, [rec("libfoo", "20240305_100000@", 4)])
    publish(config)
    path = triggerindex.index_path(config.get("web", "database_public"))
    assert index_rows(path)[("libfoo", "amd64")][1] == "always_failed"
    # download-all-results fills a gap: an older pass that the failure must now be compared with.
    db.record_results(rw, [rec("libfoo", "20240301_100000@", 0, "libfoo/1.0-1")])
    summary = triggerindex.refresh(config.get("web", "database_public"), path)
    assert summary.indexed == 0  # not published yet: nothing new in the public DB
    publish(config)
    assert index_rows(path)[("libfoo", "amd64")] == ("20240305_100000@", "regression", 1)
    summary_row = sqlite3.connect(path).execute("SELECT counts FROM trigger_summary WHERE trigger = ?", (GLIB,))
    assert summary_row.fetchone()[0] == '{"regression": [1, 1]}'


def test_a_renumbered_db_is_rebuilt_not_misread(tmp_path):
    first = tmp_path / "a.db"
    conn = db.connect_rw(first)
    db.record_results(conn, [rec("libfoo", "20240305_100000@", 4), rec("gtk3", "20240305_100001@", 0)])
    conn.close()
    path = tmp_path / "trigger-index.db"
    assert triggerindex.refresh(first, path).rebuilt
    assert not triggerindex.refresh(first, path).rebuilt
    # Same number of rows, other content at the watermark row (a DB rebuilt from the store in another order).
    second = tmp_path / "b.db"
    conn = db.connect_rw(second)
    db.record_results(conn, [rec("pango", "20240306_100000@", 0), rec("cairo", "20240306_100001@", 4)])
    conn.close()
    assert triggerindex.refresh(second, path).rebuilt
    assert set(index_rows(path)) == {("pango", "amd64"), ("cairo", "amd64")}


def test_a_rebuild_pauses_at_its_budget_and_resumes(tmp_path):
    source = tmp_path / "a.db"
    conn = db.connect_rw(source)
    db.record_results(conn, [rec(f"pkg{n}", f"20240305_1000{n:02d}@", n % 2 * 4) for n in range(5)])
    conn.close()
    path = tmp_path / "trigger-index.db"
    calls = 0
    while True:
        calls += 1
        summary = triggerindex.refresh(source, path, budget_s=0)
        if summary.complete:
            break
        assert not path.exists()  # nothing half-built is ever served
    assert calls == 5  # one test per call with no time to spare
    assert len(index_rows(path)) == 5


def test_page_queries_are_index_seeks(tmp_path):
    """Every query of a trigger page reads a bounded range: no SCAN of result or of the index tables."""
    source = tmp_path / "public.db"
    conn = db.connect_rw(source)
    db.record_results(conn, [rec(f"pkg{n}", f"20240305_1000{n:02d}@", n % 2 * 4) for n in range(20)])
    conn.close()
    path = tmp_path / "trigger-index.db"
    triggerindex.refresh(source, path)
    conn = db.connect_ro(source)
    conn.execute("ATTACH DATABASE ? AS tix", (path.resolve().as_uri() + "?mode=ro",))
    traced = []
    conn.set_trace_callback(traced.append)
    rows = triggerindex.tests_page(conn, "tix", GLIB, (0, "pkg1", "amd64", "noble"), 5)
    triggerindex.page_results(conn, rows)
    triggerindex.summary(conn, "tix", GLIB)
    triggerindex.runs_of(conn, "tix", GLIB, rows[0].test_id)
    conn.set_trace_callback(None)
    for statement in traced:
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (statement, plan)
