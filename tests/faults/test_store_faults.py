# SPDX-License-Identifier: GPL-3.0-or-later
"""Swift stopped under the batch programs: clear error, non-zero exit, nothing half-done; rerun completes.

download-all-results (a subprocess with small pages) is stopped in its tracks
when the real Swift goes down after it has committed some pages;
update-github-jobs runs while Swift is down. Both must exit non-zero with a
one-line reason (no traceback), download-all-results must keep exactly the
rows of the pages it committed (with their marker), and update-github-jobs
must neither post a status nor drop its pending record. Once Swift is back,
a rerun of each completes.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

from tests.fakes.fixtures import fake_github, fake_github_server  # noqa: F401 - fixtures
from tests.faults.conftest import program, swift_conf, wait_for
from tests.faults.workload import saved_marker
from webcontrol import config as configmod
from webcontrol import github, resulttar
from webcontrol.store.swift import SwiftStore

PROJECT = "systemd-upstream"
PPA = "upstream-systemd-ci/systemd-ci"


def _github_job(tmp_path, swift_server, release: str, fake) -> tuple:
    """A pending GitHub job whose result is in Swift; returns (config path, record dir, sha)."""
    sha = "f315d476c60ca7e5458a8db995cb8a4094569893"
    statuses_url = fake.statuses_url("systemd", "systemd", sha)
    env = ["UPSTREAM_PULL_REQUEST=7", f"GITHUB_STATUSES_URL={statuses_url}"]
    pending = tmp_path / "github-pending"
    params = {
        "release": release,
        "arch": "amd64",
        "package": PROJECT,
        "env": env,
        "ppas": [PPA],
        "build-git": "https://github.com/systemd/systemd.git#refs/pull/7/head",
        "created": time.time() - 60,
    }
    github.PendingJobs(pending).write(github.record_name(release, "amd64", PROJECT, None, 7, statuses_url), params)
    store = SwiftStore.from_config(configmod.from_dict({"swift": swift_server.config_section()}))
    container = f"autopkgtest-{release}-upstream-systemd-ci-systemd-ci"
    run_dir = f"{release}/amd64/s/{PROJECT}/20300101_000000_aaaaa@"
    testinfo = {"custom_environment": ["ADT_TEST_TRIGGERS=", *env]}
    store.put_object(container, f"{run_dir}/result.tar", resulttar.build(4, PROJECT, "1", 10, testinfo))
    store.close()
    (tmp_path / "gh").mkdir()
    (tmp_path / "gh" / "credentials").write_text(f"{PROJECT}:ci-bot:tok123\n")
    conf = tmp_path / "gh" / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {
                "results_store": "swift",
                "state_dir": tmp_path / "state",
                "site_url": "https://autopkgtest.example.com",
                "running_cache": tmp_path / "running.json",
                "amqp_queue_cache": tmp_path / "queued.json",
            },
            "swift": swift_server.config_section(),
            "github": {
                "pending_dir": pending,
                "status_credentials": tmp_path / "gh" / "credentials",
                "api_url": fake.url + "/",
            },
        },
        conf,
    )
    return conf, pending, sha


def _run(command, timeout=180) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr, time.monotonic() - started


def test_swift_down_during_batch_programs_then_rerun(swift_server, swift_runs, tmp_path, fake_github, figures):  # noqa: F811
    conf = swift_conf(tmp_path, swift_server, releases=swift_runs.release)
    db_path = tmp_path / "rw.db"
    container = swift_runs.container
    gh_conf, pending, sha = _github_job(tmp_path, swift_server, swift_runs.release, fake_github)
    ingest = program("download_all_results", "--config", str(conf), "--page-size", "10", "--workers", "4")
    updater = program("update_github_jobs", "--config", str(gh_conf))

    process = subprocess.Popen(ingest, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: process.poll() is not None or bool(saved_marker(db_path, container)), 60, 0.005)
        assert process.poll() is None, "download-all-results finished before Swift could be stopped"
        swift_server.stop()
        stopped = time.monotonic()
        update_code, update_err, _ = _run(updater)
        ingest_err = process.communicate(timeout=180)[1]
        ingest_code = process.returncode
        ingest_seconds = time.monotonic() - stopped
        marker = saved_marker(db_path, container)
        conn = sqlite3.connect(db_path)
        stored = set(
            conn.execute(
                "SELECT test.release, test.arch, test.package, result.run_id"
                " FROM result JOIN test ON test.id = result.test_id"
            ).fetchall()
        )
        conn.close()
        # Exactly the runs of the committed pages: every result.tar up to the marker, nothing after it.
        committed = {
            (r.release, r.arch, r.package, r.run_id) for r in swift_runs.runs if f"{r.swift_dir}/result.tar" <= marker
        }
        records_while_down = sorted(p.name for p in pending.iterdir())
        statuses_while_down = len(fake_github.statuses)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if not swift_server.running:
            swift_server.start()

    rerun_code, rerun_err, _ = _run(ingest)
    update_rerun_code, update_rerun_err, _ = _run(updater)
    conn = sqlite3.connect(db_path)
    final = conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
    figures.update(
        download_all_results_exit=ingest_code,
        download_all_results_seconds_to_fail=round(ingest_seconds, 1),
        download_all_results_error=[line for line in ingest_err.splitlines() if "download-all-results:" in line],
        rows_when_failed=len(stored),
        rows_of_committed_pages=len(committed),
        update_github_jobs_exit=update_code,
        update_github_jobs_error_lines=[line for line in update_err.splitlines() if "ERROR" in line][:3],
        rerun_exits=[rerun_code, update_rerun_code],
        rows_after_rerun=final,
        runs=len(swift_runs.runs),
    )
    assert ingest_code == 1
    assert "Traceback" not in ingest_err, ingest_err[-3000:]
    assert any(line.startswith("download-all-results: Swift") for line in ingest_err.splitlines()), ingest_err
    assert stored == committed and 0 < len(stored) < len(swift_runs.runs)
    assert update_code == 1 and "Traceback" not in update_err, update_err[-3000:]
    assert "cannot reach" in update_err
    assert statuses_while_down == 0 and len(records_while_down) == 1

    assert rerun_code == 0, rerun_err[-3000:]
    assert final == len(swift_runs.runs)
    assert update_rerun_code == 0, update_rerun_err[-3000:]
    assert [s.body["state"] for s in fake_github.statuses] == ["failure"] and fake_github.statuses[0].sha == sha
    assert list(pending.iterdir()) == []
