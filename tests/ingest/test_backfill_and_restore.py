# SPDX-License-Identifier: GPL-3.0-or-later
"""Sequences an operator meets: results back-filled after a publish, a unit restored from a public copy.

download-all-results, publish-db and browse.cgi run for real against a local
result store; what is checked is what a user sees on /testlist and what the
programs leave in the DB.
"""

from __future__ import annotations

import datetime
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.ingest.conftest import expected_row, rows
from webcontrol import config as configmod
from webcontrol import db, demodata
from webcontrol.services import download_all_results, publish_db
from webcontrol.store.local import LocalStore
from webcontrol.web.browse import create_app

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def site(tmp_path, make_config):
    """A unit with a local result store, an rw DB, a public DB and the indexed-packages JSON."""
    store_dir = tmp_path / "results"
    store_dir.mkdir()
    config = make_config(
        web={
            "results_store": "local",
            "results_dir": store_dir,
            "releases": "noble",
            "indexed_packages": tmp_path / "indexed-packages.json",
        }
    )
    return config, LocalStore(store_dir)


def _runs(packages, end, runs_per_test=3, seed=1):
    return list(demodata.plan_runs(["noble"], ["amd64"], packages, runs_per_test=runs_per_test, seed=seed, end=end))


def _testlist(config) -> dict[str, str]:
    """package → version as /api/v1/testlist shows them (and the HTML page links them)."""
    client = create_app(config).test_client()
    groups = client.get("/api/v1/testlist").get_json()["groups"]
    listed = {entry["package"]: entry["version"] for group in groups for entry in group["packages"]}
    page = client.get("/testlist").get_data(as_text=True)
    for package, version in listed.items():
        assert package in page
        if version:
            assert f"+files/{package}_{version}.dsc" in page
    return listed


def test_backfilled_results_reach_the_testlist(site):
    config, store = site
    recent = demodata.write_runs(store, _runs(["hello", "six"], NOW))
    assert download_all_results.main(["--config", config.path]) == 0
    assert publish_db.main(["--config", config.path]) == 0
    before = _testlist(config)
    assert set(before) == {"hello", "six"}

    # Back-filled a year earlier: a package seen for the first time, and a hello built from a
    # later upstream (3.x, as in a rebuild of an old series) under older run ids.
    old = NOW - datetime.timedelta(days=365)
    backfill = demodata.write_runs(store, _runs(["zlib"], old, seed=2))
    higher = [run for run in _runs(["hello"], old, runs_per_test=9, seed=3) if run.version.startswith("3.")]
    assert higher and max(r.run_id for r in higher) < min(r.run_id for r in recent)
    demodata.write_runs(store, higher)
    assert download_all_results.main(["--config", config.path]) == 0
    assert publish_db.main(["--config", config.path]) == 0

    after = _testlist(config)
    assert set(after) == {"hello", "six", "zlib"}
    assert after["zlib"] == max((run.version for run in backfill), key=demodata_version)
    assert after["hello"] == max((run.version for run in recent + higher), key=demodata_version)
    assert after["hello"].startswith("3.")
    assert after["six"] == before["six"]


def demodata_version(version: str):
    from debian.debian_support import Version

    return Version(version)


def test_db_fallback_lists_the_same_latest_versions_as_the_json(site):
    config, store = site
    store_runs = _runs(["hello", "libpng1.6", "six"], NOW, runs_per_test=5)
    demodata.write_runs(store, store_runs)
    assert download_all_results.main(["--config", config.path]) == 0
    # One result whose version the worker could not tell, and one with an epoch.
    conn = db.connect_rw(config.get("web", "database"))
    db.record_results(
        conn,
        [
            db.ResultRecord("noble", "amd64", "six", "20200101_000000_aaaaa@", "unknown", "six/1", 1, 12),
            db.ResultRecord("noble", "arm64", "zlib", "20200101_000000_aaaaa@", "unknown", "zlib/1", 1, 12),
            db.ResultRecord("noble", "arm64", "libpng1.6", "20200101_000000_aaaaa@", "1:0.1-1", "libpng1.6/1", 1, 0),
        ],
    )
    conn.close()
    assert publish_db.main(["--config", config.path]) == 0
    from_json = _testlist(config)
    Path(config.get("web", "indexed_packages")).unlink()
    from_db = _testlist(config)
    assert from_db == from_json
    assert from_json["libpng1.6"] == "0.1-1"  # the epoch wins, then is stripped
    assert from_json["zlib"] == ""  # tested, but never with a known version


def test_download_all_results_on_a_copy_of_the_public_db(site, tmp_path):
    """Restoring a unit from another unit's public DB: the copy has no ingest marker table."""
    config, store = site
    first = demodata.write_runs(store, _runs(["hello", "six"], NOW))
    assert download_all_results.main(["--config", config.path]) == 0
    assert publish_db.main(["--config", config.path]) == 0
    restored = tmp_path / "restored.db"
    shutil.copy(config.get("web", "database_public"), restored)
    copy = sqlite3.connect(restored)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    assert not copy.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (db.MARKER_TABLE,)).fetchone()
    copy.close()

    restored_conf = tmp_path / "restored.conf"
    text = Path(config.path).read_text()
    restored_conf.write_text(text.replace(f"database = {config.get('web', 'database')}\n", f"database = {restored}\n"))
    assert configmod.load(str(restored_conf)).get("web", "database") == str(restored)
    later = demodata.write_runs(store, _runs(["libpng1.6"], NOW + datetime.timedelta(days=1), seed=4))
    assert download_all_results.main(["--config", str(restored_conf)]) == 0
    conn = db.connect_rw(restored)
    assert rows(conn) == sorted(expected_row(run) for run in first + later)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (db.MARKER_TABLE,)).fetchone()
    # And the restored unit publishes again.
    assert publish_db.main(["--config", str(restored_conf)]) == 0


def test_a_rebuilt_results_db_is_read_whole(site):
    """Fewer results than the watermark counted: the DB was rebuilt, so nothing carried over is trusted."""
    config, store = site
    demodata.write_runs(store, _runs(["hello", "six", "libpng1.6"], NOW, runs_per_test=4))
    assert download_all_results.main(["--config", config.path]) == 0
    assert publish_db.main(["--config", config.path]) == 0
    assert set(_testlist(config)) == {"hello", "six", "libpng1.6"}
    Path(config.get("web", "database")).unlink()
    conn = db.connect_rw(config.get("web", "database"))
    db.record_results(
        conn, [db.ResultRecord("noble", "amd64", "zlib", "20250101_000000_aaaaa@", "1.3-1", "zlib/1", 1, 0)]
    )
    conn.close()
    assert publish_db.main(["--config", config.path]) == 0
    assert _testlist(config) == {"zlib": "1.3-1"}
