# SPDX-License-Identifier: GPL-3.0-or-later
"""The real amqp-status-collector program against the real broker: poison numbers and restarts.

One status message must never stop the collector, and a collector that
restarts must not publish an emptier running.json than the one it left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.faults.workload import stop_process
from tests.live.helpers import leaves, publish, read_file_json, wait_for
from webcontrol import config as configmod
from webcontrol.messages import StatusMessage


def _status(arch: str, running: bool = True, duration: int = 10) -> bytes:
    params = {"triggers": ["hello/1"], "submit-time": "2024-01-01 00:00:00"}
    return StatusMessage("noble", arch, "hello", running, params, duration, "log tail").serialise()


def _arches(path) -> set[str]:
    return {arch for *_, arch, _value in leaves(read_file_json(path) or {})}


class Collector:
    """amqp-status-collector in a subprocess on a test-unique exchange and queue."""

    def __init__(self, amqp_names, tmp_path, expiry: int = 300):
        self.path = tmp_path / "running.json"
        self.conf = tmp_path / "collector.conf"
        self.log = tmp_path / "collector.log"
        self.uri = amqp_names.uri
        self.exchange = amqp_names.exchange("status")
        self.queue = amqp_names.queue("running-listener")
        values = {"amqp": {"uri": self.uri}, "web": {"running_cache": self.path, "running_expiry_seconds": expiry}}
        configmod.write(values, self.conf)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["--config", str(self.conf), "--exchange", self.exchange, "--queue", self.queue]
        # The log is appended to across restarts: wait for this start's own "consuming" line.
        started = self._consuming_lines()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webcontrol.services.amqp_status_collector", *args], stderr=log
            )
        wait_for(lambda: self._consuming_lines() > started, timeout=20, what="collector consuming")

    def _consuming_lines(self) -> int:
        try:
            return self.log.read_text().count("consuming")
        except FileNotFoundError:
            return 0

    def stop(self) -> int:
        return stop_process(self.process)


@pytest.fixture
def collector(amqp_names, tmp_path):
    running = Collector(amqp_names, tmp_path)
    yield running
    if running.process is not None:
        running.stop()


def test_out_of_range_number_is_rejected_and_the_collector_keeps_running(collector):
    collector.start()
    publish(collector.uri, collector.exchange, [_status("amd64"), _status("arm64")])
    wait_for(lambda: _arches(collector.path) == {"amd64", "arm64"}, what="two leaves")
    poison = _status("s390x").replace(b'"duration": 10', b'"duration": 1e400')
    assert b"1e400" in poison
    publish(collector.uri, collector.exchange, [poison, _status("riscv64")])
    wait_for(
        lambda: collector.process.poll() is not None or "riscv64" in _arches(collector.path),
        what="the good message after the poison",
    )
    assert collector.process.poll() is None, f"collector exited with {collector.process.returncode}"
    assert _arches(collector.path) == {"amd64", "arm64", "riscv64"}
    log = collector.log.read_text()
    assert log.count("rejecting malformed message, delivery tag") == 1 and "log tail" not in log


def test_restart_keeps_the_last_running_json(collector):
    collector.start()
    publish(collector.uri, collector.exchange, [_status("amd64"), _status("arm64")])
    wait_for(lambda: _arches(collector.path) == {"amd64", "arm64"}, what="two leaves")
    assert collector.stop() == 0
    before = read_file_json(collector.path)
    seen: list[set[str]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(_arches(collector.path))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        collector.start()
        time.sleep(1.5)  # the start write and at least one periodic flush
    finally:
        stop.set()
        watcher.join()
    assert read_file_json(collector.path) == before
    assert all(arches == {"amd64", "arm64"} for arches in seen), [a for a in seen if a != {"amd64", "arm64"}][:3]
    # The first real update applies on top of what was kept.
    publish(collector.uri, collector.exchange, [_status("amd64", running=False), _status("s390x")])
    wait_for(lambda: _arches(collector.path) == {"arm64", "s390x"}, what="updates after the restart")


def test_kept_entries_expire_when_no_status_confirms_them(amqp_names, tmp_path):
    running = Collector(amqp_names, tmp_path, expiry=2)
    try:
        running.start()
        publish(running.uri, running.exchange, [_status("amd64")])
        wait_for(lambda: _arches(running.path) == {"amd64"}, what="one leaf")
        assert running.stop() == 0
        running.start()
        assert _arches(running.path) == {"amd64"}
        # Its worker is gone: no status confirms the leaf, so it expires like any other.
        wait_for(lambda: _arches(running.path) == set(), timeout=10, what="the kept leaf expired")
    finally:
        running.stop()


def test_kept_file_that_is_not_a_running_tree_is_ignored(collector):
    collector.path.write_text(json.dumps({"hello": ["not", "a", "tree"]}))
    collector.start()
    wait_for(lambda: read_file_json(collector.path) == {}, what="an empty start state")
