# SPDX-License-Identifier: GPL-3.0-or-later
"""update-github-jobs (docs/formats.rst, update-github-jobs) against the local store and the fake GitHub."""

from __future__ import annotations

import gzip
import json
import os
import time

import pytest

from tests.fakes.site import SITE_URL
from webcontrol import config as configmod
from webcontrol import github, resulttar
from webcontrol.services import update_github_jobs
from webcontrol.store.local import LocalStore

PROJECT = "systemd-upstream"
PPA = "upstream-systemd-ci/systemd-ci"
DAY = 86400


@pytest.fixture
def env(site, fake_github):
    site.write_github({PROJECT: "x"}, [f"{PROJECT}:ci-bot:tok123"])
    return site


def statuses_url(fake_github, sha: str) -> str:
    return fake_github.statuses_url("systemd", "systemd", sha)


def add_job(site, fake_github, sha: str, arch="amd64", testname=None, created=None, **extra) -> str:
    env = ["UPSTREAM_PULL_REQUEST=7", f"GITHUB_STATUSES_URL={statuses_url(fake_github, sha)}"]
    params = {
        "release": site.release,
        "arch": arch,
        "package": PROJECT,
        "env": env,
        "ppas": [PPA],
        "build-git": "https://github.com/systemd/systemd.git#refs/pull/7/head",
        "created": time.time() - 60 if created is None else created,
        **extra,
    }
    if testname:
        params["testname"] = testname
    name = github.record_name(site.release, arch, PROJECT, testname, 7, statuses_url(fake_github, sha))
    github.PendingJobs(site.config.pending_dir).write(name, params)
    return name


def container(site) -> str:
    return f"autopkgtest-{site.release}-upstream-systemd-ci-systemd-ci"


def add_result(site, fake_github, sha, run_id, exitcode, arch="amd64", testname=None, damaged=False, mtime=None):
    store = LocalStore(site.values["web"]["results_dir"])
    run_dir = f"{site.release}/{arch}/s/{PROJECT}/{run_id}"
    env = ["ADT_TEST_TRIGGERS=", "UPSTREAM_PULL_REQUEST=7", f"GITHUB_STATUSES_URL={statuses_url(fake_github, sha)}"]
    testinfo = {"custom_environment": env, "testname": testname}
    tar = b"garbage" if damaged else resulttar.build(exitcode, PROJECT, "1", 10, testinfo)
    log = f"autopkgtest [10:00:00]: command line: autopkgtest --env={env[1]} --env={env[2]} -- lxd\n"
    store.put_object(container(site), f"{run_dir}/log.gz", gzip.compress(log.encode()))
    store.put_object(container(site), f"{run_dir}/result.tar", tar)
    if mtime is not None:
        path = os.path.join(site.values["web"]["results_dir"], container(site), run_dir, "result.tar")
        os.utime(path, (mtime, mtime))
    return run_dir


def run(site, now=None, attempts=1):
    config = site.config
    store = LocalStore(site.values["web"]["results_dir"])
    updater = update_github_jobs.GithubJobUpdater(
        config, store, github.StatusPoster.from_config(config, attempts=attempts, backoff=0.01), now=now
    )
    updater.run_once()
    return updater


def pending_names(site) -> list[str]:
    path = site.config.pending_dir
    return sorted(os.listdir(path)) if path.exists() else []


def queued_with(site, items: list[str]) -> dict:
    return {"queues": {"upstream": {site.release: {"amd64": {"size": len(items), "requests": items}}}}}


def test_success_failure_error_and_newest_wins(env, fake_github):
    site = env
    add_job(site, fake_github, "a" * 40)
    add_job(site, fake_github, "b" * 40, arch="arm64")
    add_job(site, fake_github, "c" * 40, testname="smoke")
    add_job(site, fake_github, "d" * 40)
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 4)
    newest = add_result(site, fake_github, "a" * 40, "20300102_000000_aaaaa@", 2)
    add_result(site, fake_github, "b" * 40, "20300101_000000_bbbbb@", 12, arch="arm64")
    add_result(site, fake_github, "c" * 40, "20300101_000000_ccccc@", 0)  # wrong testname: no match
    add_result(site, fake_github, "c" * 40, "20300101_000001_ccccc@", 20, testname="smoke")
    add_result(site, fake_github, "d" * 40, "20300101_000000_ddddd@", 0, damaged=True)
    run(site)
    by_sha = {s.sha: s.body for s in fake_github.statuses}
    assert by_sha["a" * 40] == {
        "state": "success",
        "context": f"{site.release}/amd64",
        "description": "autopkgtest finished (success)",
        "target_url": f"{SITE_URL}/results/{container(site)}/{newest}/log.gz",
    }
    assert by_sha["b" * 40]["state"] == "failure" and by_sha["b" * 40]["context"] == f"{site.release}/arm64"
    assert by_sha["c" * 40]["state"] == "error" and by_sha["c" * 40]["context"] == f"{site.release}/amd64 smoke"
    assert "20300101_000001_ccccc@" in by_sha["c" * 40]["target_url"]
    assert by_sha["d" * 40]["state"] == "error"  # damaged tar, matched through log.gz
    assert pending_names(site) == []
    assert all((s.user, s.token) == ("ci-bot", "tok123") for s in fake_github.statuses)


def test_queued_and_running_jobs_are_left_alone(env, fake_github):
    site = env
    queued_job = add_job(site, fake_github, "a" * 40)
    running_job = add_job(site, fake_github, "b" * 40)
    url_a = statuses_url(fake_github, "a" * 40)
    url_b = statuses_url(fake_github, "b" * 40)
    item = f"{PROJECT}\n{json.dumps({'env': [f'GITHUB_STATUSES_URL={url_a}'], 'ppas': [PPA]})}"
    site.write_queued(queued_with(site, [item]))
    site.write_running({PROJECT: {"k": {site.release: {"amd64": [{"env": [f"GITHUB_STATUSES_URL={url_b}"]}, 5, ""]}}}})
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 0)
    add_result(site, fake_github, "b" * 40, "20300101_000000_bbbbb@", 0)
    run(site)
    assert fake_github.statuses == []
    saved = {n: json.loads((site.config.pending_dir / n).read_text()) for n in pending_names(site)}
    assert "left-queue" not in saved[queued_job]
    assert "left-queue" in saved[running_job]


def test_age_counts_from_leaving_the_queue(env, fake_github):
    site = env
    now = time.time()
    # Created 20 days ago but only left the queue now: not expired.
    add_job(site, fake_github, "a" * 40, created=now - 20 * DAY)
    run(site, now=now)
    assert fake_github.statuses == []
    # 8 days later, still no result: error, and the record is gone.
    run(site, now=now + 8 * DAY)
    (status,) = fake_github.statuses
    assert status.body["state"] == "error"
    assert status.body["description"] == "autopkgtest result not found"
    assert pending_names(site) == []


def test_results_outside_the_time_window_are_ignored(env, fake_github):
    site = env
    created = time.time()
    add_job(site, fake_github, "a" * 40, created=created)
    add_result(site, fake_github, "a" * 40, "20200101_000000_aaaaa@", 0, mtime=created - 3600)
    run(site)
    assert fake_github.statuses == []
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 4, mtime=created - 60)  # within skew
    run(site)
    assert fake_github.states() == ["failure"]


def test_undeliverable_status_keeps_the_record(env, fake_github):
    site = env
    name = add_job(site, fake_github, "a" * 40)
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 0)
    fake_github.fail_next = 3
    run(site, attempts=2)
    assert pending_names(site) == [name]
    run(site, attempts=2)
    assert fake_github.states() == ["success"]
    assert pending_names(site) == []


def test_listing_cached_per_container_and_prefix(env, fake_github, monkeypatch):
    """Jobs of two projects each find their own result (one listing per container+prefix)."""
    site = env
    add_job(site, fake_github, "a" * 40)
    add_job(site, fake_github, "b" * 40)
    other = add_job(site, fake_github, "e" * 40, ppas=["other/ppa"])
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 0)
    add_result(site, fake_github, "b" * 40, "20300101_000000_bbbbb@", 4)
    store = LocalStore(site.values["web"]["results_dir"])
    env_items = ["UPSTREAM_PULL_REQUEST=7", f"GITHUB_STATUSES_URL={statuses_url(fake_github, 'e' * 40)}"]
    store.put_object(
        f"autopkgtest-{site.release}-other-ppa",
        f"{site.release}/amd64/s/{PROJECT}/20300101_000000_eeeee@/result.tar",
        resulttar.build(6, PROJECT, "1", 1, {"custom_environment": env_items}),
    )
    calls = []
    real = LocalStore.list_objects

    def counting(self, container, prefix=None, *args, **kwargs):
        calls.append((container, prefix))
        return real(self, container, prefix, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "list_objects", counting)
    run(site)
    assert sorted(fake_github.states()) == ["failure", "failure", "success"]
    assert len(calls) == len(set(calls)) == 2
    assert other not in pending_names(site)


def test_command_line(env, fake_github, tmp_path):
    site = env
    add_job(site, fake_github, "a" * 40)
    add_result(site, fake_github, "a" * 40, "20300101_000000_aaaaa@", 0)
    path = tmp_path / "autopkgtest-cloud.conf"
    configmod.write(site.values, path)
    assert update_github_jobs.main(["--config", str(path)]) == 0
    assert fake_github.states() == ["success"]


def test_github_down_stops_posting_for_this_run(env, fake_github):
    site = env
    for index in range(6):
        sha = f"{index}" * 40
        add_job(site, fake_github, sha)
        add_result(site, fake_github, sha, f"20300101_00000{index}_aaaaa@", 0)
    fake_github.fail_next = 1000
    updater = run(site)
    assert fake_github.fail_next == 1000 - 3  # three attempts, then the run gave up on GitHub
    assert len(pending_names(site)) == 6
    fake_github.fail_next = 0
    run(site)
    assert fake_github.states() == ["success"] * 6
    assert pending_names(site) == [] and updater.failures == 0
