# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped units, tmpfiles, sysusers and Apache site under real systemd (PID 1 of a container).

One container per module, installed by the operator guide's steps (see
systemd_site.py). Every check goes through systemd itself (systemctl,
list-timers, the units' own sandboxes) or through what users see (the rw and
public DBs, Apache's pages). The last test stops the target and reboots.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import sqlite3
import tempfile
import time

import pytest

from tests.deploy import nspawn
from tests.deploy.systemd_site import (
    DAEMONS,
    PUBLIC_DB,
    RELEASE,
    RUNTIME,
    STATE,
    TARGET,
    TIMED,
    running_site,
    seed_runs,
    sha256,
    unit,
    wait_for,
)
from webcontrol import demodata

pytestmark = pytest.mark.skipif(nspawn.nspawn_available() is not None, reason=str(nspawn.nspawn_available()))

SEEDED = seed_runs(3)
SERVICE_USER = "autopkgtest-web"


@pytest.fixture(scope="module")
def site():
    with running_site(SEEDED) as site:
        yield site


def test_first_population_then_every_service_active_and_timer_scheduled(site):
    # docs/operating.rst's first population: download-all-results and publish-db ran once, by hand, successfully.
    for stem in ("download-all-results", "publish-db"):
        assert "Deactivated successfully" in site.journal(unit(stem)), site.journal(unit(stem))
    assert sorted(site.uuids()) == sorted(run.uuid for run in SEEDED)
    assert sorted(site.uuids(PUBLIC_DB)) == sorted(run.uuid for run in SEEDED)

    for stem in DAEMONS:
        state = site.show(unit(stem), "ActiveState", "SubState")
        assert (state["ActiveState"], state["SubState"]) == ("active", "running"), site.journal(unit(stem))
    timers = site.systemctl("list-timers", "--all", "--no-legend", "autopkgtest-web-*")
    for stem in TIMED:
        state = site.show(unit(stem, "timer"), "ActiveState", "SubState", "NextElapseUSecRealtime")
        assert (state["ActiveState"], state["SubState"]) == ("active", "waiting"), stem
        assert state["NextElapseUSecRealtime"], f"{stem} timer has no next elapse"
        assert re.search(rf"\s{re.escape(unit(stem, 'timer'))}\s+{re.escape(unit(stem))}$", timers, re.M), timers
    # The target stops whatever it groups: every service and timer, the oneshots included.
    grouped = set(site.show(TARGET, "ConsistsOf")["ConsistsOf"].split())
    expected = {unit(s) for s in DAEMONS + TIMED} | {unit(s, "timer") for s in TIMED}
    assert expected <= grouped, f"not stopped with the target: {sorted(expected - grouped)}"
    assert site.systemctl("is-active", "apache2").strip() == "active"
    assert not site.systemctl("list-units", "--state=failed", "--no-legend", "autopkgtest-web*").strip()
    # systemd had nothing to say about our units (unknown keys, unsupported sandboxing, ...).
    warnings = site.container.run(["journalctl", "-b", "-p", "warning", "_PID=1", "-o", "cat", "--no-pager"])
    assert "autopkgtest-web" not in warnings, warnings


def test_completion_is_recorded_published_by_the_timer_and_served(site):
    runs = site.write_results(seed_runs(1, packages=["systemd-probe"], seed=11))
    before = site.show(unit("publish-db", "timer"), "LastTriggerUSec")["LastTriggerUSec"]
    site.publish(runs)
    wait_for(lambda: runs[0].uuid in site.uuids(), 30, "download-results to record the completion")

    # publish-db runs only from its timer now: at most a minute later the public DB has the result.
    wait_for(lambda: runs[0].uuid in site.uuids(PUBLIC_DB), 90, "the publish-db timer to publish the result")
    after = site.show(unit("publish-db", "timer"), "LastTriggerUSec")["LastTriggerUSec"]
    assert after and after != before, "publish-db.timer has not fired since the completion was published"
    assert site.show(unit("publish-db"), "Result")["Result"] == "success"

    status, _, body = site.http("/")
    assert status == 200, site.apache_log()
    status, _, body = site.http("/packages/systemd-probe")
    assert status == 200, site.apache_log()
    history = f"/packages/s/systemd-probe/{RELEASE}/amd64"
    assert b"no previous results" not in body and history.encode() in body
    status, _, body = site.http(history)
    assert status == 200 and runs[0].version.encode() in body, site.apache_log()
    status, headers, db_bytes = site.http("/static/autopkgtest.db")
    assert status == 200 and headers["Content-Type"] == "application/vnd.sqlite3", site.apache_log()
    status, _, digest = site.http("/static/autopkgtest.db.sha256")
    assert status == 200 and digest.split()[0].decode() == sha256(db_bytes)
    with tempfile.NamedTemporaryFile(suffix=".db") as copy:
        copy.write(db_bytes)
        copy.flush()
        conn = sqlite3.connect(f"file:{copy.name}?mode=ro", uri=True)
        served = {row[0] for row in conn.execute("SELECT uuid FROM result")}
        conn.close()
    assert {run.uuid for run in SEEDED + runs} <= served


def test_every_program_succeeds_in_its_sandbox_and_apache_serves_what_they_write(site):
    # By now (after the publish-db timer fired) the 30 s and one-minute timers have fired too.
    for stem in ("cache-amqp", "cache-ppa-containers", "update-github-jobs"):
        assert "Deactivated successfully" in site.journal(unit(stem)), site.journal(unit(stem))
    # The hourly and daily ones, started by hand as an operator would.
    site.systemctl("start", unit("stats"), unit("db-backup"))
    for stem in ("stats", "db-backup"):
        assert site.show(unit(stem), "Result")["Result"] == "success", site.journal(unit(stem))
    assert site.swift_objects("db-backups"), site.journal(unit("db-backup"))
    assert not site.systemctl("list-units", "--state=failed", "--no-legend", "autopkgtest-web*").strip()
    # Written by the services with UMask=0027, read by Apache's www-data through the group.
    status, _, body = site.http("/static/running.json")
    assert status == 200 and isinstance(json.loads(body), dict), site.apache_log()
    status, _, body = site.http("/queued.json")
    assert status == 200 and isinstance(json.loads(body), dict), site.apache_log()


def process_ids(site, pid: str) -> tuple[str, str]:
    status = site.container.run(["cat", f"/proc/{pid}/status"])
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M)[1]
    gid = re.search(r"^Gid:\s+(\d+)", status, re.M)[1]
    return uid, gid


def write_as(site, pid: str | None, uid: str, gid: str, folder: str) -> str:
    """Try to create a file in ``folder`` as uid:gid, inside the mount namespace of ``pid`` (None: the plain
    container); '' on success, else the error."""
    enter = ["nsenter", "-t", pid, "-m", "--"] if pid else []
    probe = f"{folder}/.write-probe"
    argv = [
        *enter,
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        f"touch {probe} && rm {probe}",
    ]
    try:
        site.container.run(argv)
    except nspawn.NspawnError as err:
        return str(err)
    return ""


def test_services_run_as_their_user_and_write_only_their_folders(site):
    uid = site.container.run(["id", "-u", SERVICE_USER]).strip()
    gid = site.container.run(["id", "-g", SERVICE_USER]).strip()
    assert uid != "0"
    # A folder the service user owns outside its state and runtime folders: writable for the
    # user as such, so only the units' sandbox can make it read-only.
    site.container.sh(f"install -d -o {SERVICE_USER} -g {SERVICE_USER} /srv/owned-by-service-user")
    assert write_as(site, None, uid, gid, "/srv/owned-by-service-user") == ""
    # The web apps run in Apache's mod_wsgi daemons, as the service user too.
    wsgi = site.container.run(["sh", "-c", "grep -l '^(wsgi:autopkgtest' /proc/[0-9]*/cmdline || true"]).split()
    assert wsgi, "no mod_wsgi daemon process"
    for cmdline in wsgi:
        assert process_ids(site, cmdline.split("/")[2]) == (uid, gid), cmdline
    for stem in DAEMONS:
        pid = site.show(unit(stem), "MainPID")["MainPID"]
        assert pid != "0", site.journal(unit(stem))
        assert process_ids(site, pid) == (uid, gid), stem
        for folder in (STATE, f"{STATE}/public", RUNTIME):
            assert write_as(site, pid, uid, gid, folder) == "", f"{stem} cannot write {folder}"
        for folder in ("/srv/owned-by-service-user", "/etc", "/var/log", "/opt/autopkgtest-web", "/usr/local"):
            error = write_as(site, pid, uid, gid, folder)
            assert "Read-only file system" in error, f"{stem} can write {folder}: {error!r}"


def test_sigkilled_daemons_restart_and_record_each_result_once(site):
    runs = list(
        demodata.plan_runs(
            [RELEASE], ["amd64", "arm64", "s390x"], demodata.DEMO_PACKAGES[:5], runs_per_test=100, seed=5
        )
    )
    ours = {run.uuid for run in runs}
    before = {stem: site.show(unit(stem), "MainPID", "NRestarts") for stem in DAEMONS}
    # Published while download-results ingests (one confirmed message at a time), so the kill
    # lands mid-stream however fast the consumer is.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as publisher:
        sent = publisher.submit(site.publish, runs)
        wait_for(lambda: len(ours & set(site.uuids())) >= len(runs) // 10, 60, "download-results to start")
        for stem in DAEMONS:
            site.systemctl("kill", "--kill-who=main", "--signal=SIGKILL", unit(stem))
        recorded_at_kill = len(ours & set(site.uuids()))
        sent.result(timeout=120)
    assert recorded_at_kill < len(runs), "the batch was done before the kill; use more messages"

    def restarted(stem: str) -> bool:
        state = site.show(unit(stem), "ActiveState", "MainPID", "NRestarts")
        return (
            state["ActiveState"] == "active"
            and state["MainPID"] not in ("0", before[stem]["MainPID"])
            and int(state["NRestarts"]) == int(before[stem]["NRestarts"]) + 1
        )

    for stem in DAEMONS:
        # RestartSec=10s, plus the time to start again.
        wait_for(lambda s=stem: restarted(s), 40, f"{stem} to be restarted after SIGKILL")
    site.wait_consuming()
    wait_for(lambda: ours <= set(site.uuids()), 60, "every completion to be recorded")
    counts = collections.Counter(site.uuids())
    assert {uuid: counts[uuid] for uuid in ours if counts[uuid] != 1} == {}
    assert "status=9/KILL" in site.journal(unit("download-results"), 80)


@contextlib.contextmanager
def swift_frozen(site):
    """Swift's proxy stopped (SIGSTOP): its clients hang mid-request, as with a stuck store."""
    pid = site.swift.pids["proxy"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def unit_states(site) -> tuple[str, dict[str, str]]:
    units = site.systemctl("list-units", "--all", "--no-legend", "--plain", "autopkgtest-web*")
    return units, {line.split()[0]: line.split()[2] for line in units.splitlines() if line.strip()}


def test_target_stops_cleanly_and_a_reboot_brings_everything_back(site):
    # A run stopped while Python is still starting (before the program's SIGTERM handler).
    site.systemctl("start", "--no-block", unit("publish-db"))
    wait_for(lambda: site.show(unit("publish-db"), "ActiveState")["ActiveState"] != "inactive", 30, "publish-db")
    site.systemctl("stop", unit("publish-db"))
    state = site.show(unit("publish-db"), "ActiveState", "Result")
    assert (state["ActiveState"], state["Result"]) == ("inactive", "success"), site.journal(unit("publish-db"))

    # A download-all-results run in progress, waiting on a slow store, when the operator stops the site.
    job = unit("download-all-results")
    with swift_frozen(site):
        site.systemctl("start", "--no-block", job)

        def logging_run() -> bool:
            pid = site.show(job, "MainPID")["MainPID"]
            # Its first line comes after the program's stop handler is in place.
            return pid != "0" and bool(site.container.run(["journalctl", f"_PID={pid}", "-o", "cat"]).strip())

        wait_for(logging_run, 30, "download-all-results to be running")
        started = time.monotonic()
        site.systemctl("stop", "--no-block", TARGET)
        wait_for(lambda: site.show(job, "ActiveState")["ActiveState"] == "deactivating", 30, "the stop to reach it")
    # The store answers again: the run finishes its request, sees the stop and exits.
    wait_for(lambda: set(unit_states(site)[1].values()) <= {"inactive", "failed"}, 90, "every unit to stop")
    took = time.monotonic() - started
    units, states = unit_states(site)
    # Each stopped on SIGTERM, well within its 90 s stop timeout (no SIGKILL needed).
    assert took < 30, f"stopping the target took {took:.1f} s"
    left = {name: state for name, state in states.items() if state != "inactive"}
    assert left == {}, "\n".join([units, *(site.journal(name) for name in left)])
    for stem in DAEMONS + TIMED:
        assert site.show(unit(stem), "Result")["Result"] == "success", site.journal(unit(stem))
    assert "received signal 15, stopping" in site.journal(job)

    site.container.reboot()
    for stem in DAEMONS:
        wait_for(lambda s=stem: site.show(unit(s), "SubState")["SubState"] == "running", 30, f"{stem} after reboot")
    for stem in TIMED:
        assert site.show(unit(stem, "timer"), "SubState")["SubState"] == "waiting", stem
    site.wait_consuming()
    runtime = site.container.run(["stat", "-c", "%U:%G %a", RUNTIME]).strip()
    assert runtime == f"{SERVICE_USER}:{SERVICE_USER} 750"
    runs = seed_runs(1, packages=["after-reboot"], seed=13)
    site.publish(runs)
    wait_for(lambda: runs[0].uuid in site.uuids(), 30, "download-results to record after the reboot")
    status, _, db_bytes = site.http("/static/autopkgtest.db")
    assert status == 200 and sha256(db_bytes) == site.http("/static/autopkgtest.db.sha256")[2].split()[0].decode()
    assert site.http("/packages/systemd-probe")[0] == 200, site.apache_log()
