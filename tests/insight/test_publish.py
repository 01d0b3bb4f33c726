# SPDX-License-Identifier: GPL-3.0-or-later
"""test_flakiness in the public DB, made by publish-db from results ingested by download-all-results."""

from __future__ import annotations

import logging
import random
import shutil
import sqlite3
from pathlib import Path

from tests.insight import site as sitemod
from webcontrol import db, demodata, flakiness, insight
from webcontrol.services import publish_db


def expected_rows(path):
    """Ground truth: every test's flakiness and newest classification from its whole history."""
    conn = db.connect_ro(path)
    out = {}
    for test_id, release, arch, package in conn.execute("SELECT id, release, arch, package FROM test"):
        runs = insight.runs_before(conn, test_id, None, 10_000)
        if not runs:
            continue
        value = insight.flakiness(runs)
        classes = insight.classify_history(runs, complete=True)
        out[test_id] = (
            test_id,
            release,
            arch,
            package,
            value.score,
            value.flips,
            value.pairs,
            value.runs,
            runs[0].run_id,
            classes[0],
        )
    conn.close()
    return out


def table_rows(path):
    conn = sqlite3.connect(path)
    rows = {row[0]: tuple(row) for row in conn.execute(f"SELECT {', '.join(flakiness.COLUMNS)} FROM test_flakiness")}
    watermark = conn.execute("SELECT value FROM test_flakiness_state WHERE name = 'result_rowid'").fetchone()[0]
    highest = conn.execute("SELECT MAX(rowid) FROM result").fetchone()[0]
    conn.close()
    return rows, watermark, highest


def test_publish_computes_flakiness_and_updates_it_incrementally(tmp_path, caplog):
    site = sitemod.build(tmp_path / "site", runs_per_test=4)
    rows, watermark, highest = table_rows(site.public)
    assert rows == expected_rows(site.public)
    assert watermark == highest
    hello = next(row for row in rows.values() if row[1:4] == ("noble", "amd64", "hello"))
    # Version 1.0-3 went P P F P F: 3 flips in 4 pairs; 1.0-1 and 1.0-2 add a pair each without flips.
    assert hello[4:] == (0.5, 3, 6, 9, site.hello[-1].run_id, "flaky")

    # New results: two more runs of hello, and a late run with an *old* run_id for another test
    # (download-all-results filling a gap). Both must be picked up.
    rng = random.Random(1)
    for index, spec in ((12, (0, "1.0-3", "hello/1.0-3", "", None)), (13, (0, "1.0-4", "hello/1.0-4", "", None))):
        demodata.write_run(site.store, sitemod.crafted_run("amd64", index, spec), rng)
    late = sitemod.crafted_run("arm64", 0, (4, "1.0-1", "hello/1.0-1", "", None), minutes=30)
    demodata.write_run(site.store, late, rng)
    caplog.set_level(logging.INFO, logger="webcontrol.flakiness")
    site.ingest_and_publish(full=True)
    assert "incremental, 2 tests recomputed" in caplog.text
    rows, watermark, highest = table_rows(site.public)
    assert rows == expected_rows(site.public)
    assert watermark == highest
    arm64 = next(row for row in rows.values() if row[1:4] == ("noble", "arm64", "hello"))
    # arm64 is now P F(late, same version) F: one flip on 1.0-1.
    assert arm64[5:8] == (1, 1, 3)

    # Without a previous table (first publish with insight, or a damaged copy: neither the public DB
    # nor publish-db's working copy has one) everything is recomputed.
    shutil.copy(site.public, tmp_path / "before.db")
    for leftover in ("", ".work", ".work.json"):
        Path(f"{site.public}{leftover}").unlink()
    caplog.clear()
    site.ingest_and_publish()
    assert "full recompute" in caplog.text
    assert table_rows(site.public)[0] == rows

    # A fresh snapshot of a rebuilt rw DB whose rowids are below the stored watermark also forces a
    # full recompute.
    conn = sqlite3.connect(site.public)
    conn.execute("UPDATE test_flakiness_state SET value = value + 1000")
    conn.commit()
    conn.close()
    caplog.clear()
    assert publish_db.main(["--config", site.config_path, "--full"]) == 0
    assert "full recompute" in caplog.text
    assert table_rows(site.public)[0] == rows


def test_public_db_keeps_every_contract_table_and_column(insight_site):
    conn = sqlite3.connect(insight_site.public)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
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
    # Britney's query still works on the published copy.
    assert conn.execute(
        "SELECT exitcode, version, triggers, run_id FROM test LEFT JOIN result ON test.id = result.test_id"
        " WHERE release = 'noble' AND arch = 'amd64' AND package = 'hello' ORDER BY run_id"
    ).fetchall()[0] == (0, "1.0-1", "hello/1.0-1", insight_site.hello[0].run_id)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
