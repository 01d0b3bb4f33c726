# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the ingestion programs: configs, demo runs, a running recorder."""

from __future__ import annotations

import threading
import time

import pytest

from webcontrol import config as configmod
from webcontrol import demodata, results
from webcontrol.services.download_results import ResultRecorder


@pytest.fixture
def make_config(tmp_path):
    """Write an autopkgtest-cloud.conf under tmp_path and load it."""

    def make(**sections):
        values = {
            "web": {
                "database": tmp_path / "rw.db",
                "database_public": tmp_path / "public" / "autopkgtest.db",
                "state_dir": tmp_path / "state",
                "releases": "jammy noble",
                "archive_url": "file:///nonexistent",
            }
        }
        for section, keys in sections.items():
            values.setdefault(section, {}).update(keys)
        (tmp_path / "public").mkdir(exist_ok=True)
        path = tmp_path / "autopkgtest-cloud.conf"
        configmod.write(values, path)
        return configmod.load(str(path))

    return make


def rows(conn):
    """Every stored result as comparable tuples (without the surrogate test id)."""
    return sorted(
        conn.execute(
            "SELECT test.release, test.arch, test.package, run_id, version, triggers, duration, exitcode,"
            " requester, env, uuid FROM result JOIN test ON test.id = result.test_id"
        ).fetchall()
    )


def expected_row(run: demodata.DemoRun):
    env = results.env_string(run.all_proposed, run.testname)
    return (
        run.release,
        run.arch,
        run.package,
        run.run_id,
        run.version,
        run.triggers,
        run.duration,
        run.exitcode,
        run.requester,
        env,
        run.uuid,
    )


def wait_for(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def recorder_factory(amqp_uri, amqp_names):
    """Start ResultRecorder threads on a test exchange; stopped at teardown."""
    started = []
    exchange = amqp_names.exchange("complete")
    queue = amqp_names.queue("complete-listener")

    def start(db_path):
        recorder = ResultRecorder(amqp_uri, str(db_path), exchange=exchange, queue=queue)
        thread = threading.Thread(target=recorder.run_forever, daemon=True)
        thread.start()
        started.append((recorder, thread))
        return recorder

    start.exchange = exchange
    start.queue = queue
    yield start
    for recorder, thread in started:
        recorder.stop()
        thread.join(10)
