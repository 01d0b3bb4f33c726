# SPDX-License-Identifier: GPL-3.0-or-later
"""amqp-status-collector against the real broker: recorded samples, private runs, expiry, faults."""

from __future__ import annotations

import json
import os
import threading
import time

import pika
import pytest

from tests.live.helpers import (
    RUN_2022,
    RUN_2024,
    RunningCollector,
    browse_client,
    leaves,
    publish,
    read_file_json,
    status_bodies,
    wait_for,
)
from tests.services.rabbitmq import private_rabbitmq  # noqa: F401  (fixture)
from webcontrol import results
from webcontrol.messages import StatusMessage
from webcontrol.services import amqp_status_collector


def _collector(amqp_names, tmp_path, **kwargs):
    return RunningCollector(
        amqp_names.uri,
        tmp_path / "running.json",
        amqp_names.exchange("status"),
        amqp_names.queue("running-listener"),
        **kwargs,
    )


@pytest.mark.parametrize("sample", [RUN_2022, RUN_2024], ids=["2022", "2024"])
def test_recorded_sample_round_trips(amqp_names, tmp_path, sample):
    recorded = json.loads(sample.read_text())
    for package, key, _rel, _arch, value in leaves(recorded):
        assert results.run_key(value[0]) == key, package
    path = tmp_path / "running.json"
    with _collector(amqp_names, tmp_path) as collector:
        wait_for(lambda: read_file_json(path) == {}, what="empty start state")
        publish(amqp_names.uri, collector.exchange, status_bodies(recorded))
        wait_for(lambda: read_file_json(path) == recorded, what="running.json equal to the recording")
        # What clients download: /static/running.json served by browse.cgi.
        served = browse_client(tmp_path).get("/static/running.json")
        assert served.status_code == 200 and json.loads(served.get_data()) == recorded
        # Everything finishes: the file goes back to {} with every parent pruned.
        publish(amqp_names.uri, collector.exchange, status_bodies(recorded, running=False))
        wait_for(lambda: read_file_json(path) == {}, what="running.json empty after running:false")
    assert os.stat(path).st_mode & 0o777 == 0o644


def _status(package="hello", release="noble", arch="amd64", running=True, params=None, duration=10, uuid=None):
    params = {"triggers": ["hello/1"], "submit-time": "2024-01-01 00:00:00"} if params is None else params
    return StatusMessage(release, arch, package, running, params, duration, "log tail", uuid).serialise()


def test_private_runs_each_get_a_slot(amqp_names, tmp_path):
    path = tmp_path / "running.json"
    secret = {"ppas": ["joe:s3cret@joe/private"], "triggers": ["a/1"]}
    bodies = [
        _status("private-test", params={}, uuid="u-1"),
        _status("private-test", params={}, uuid="u-2"),
        _status("hello", params={"readable-by": "joe", "triggers": ["a/1"]}, uuid="u-3"),
        _status("hello", arch="arm64", params=secret, uuid="u-4"),
        _status("hello", params={"swiftuser": "x"}),  # no uuid: the "" slot
    ]
    with _collector(amqp_names, tmp_path) as collector:
        publish(amqp_names.uri, collector.exchange, bodies)
        wait_for(lambda: len(list(leaves(read_file_json(path) or {}))) == 5, what="5 private leaves")
        text = path.read_text()
        assert "s3cret" not in text and "joe/private" not in text and "readable-by" not in text
        tree = json.loads(text)
        assert list(tree) == ["private-test"]
        assert sorted(tree["private-test"]) == ["", "u-1", "u-2", "u-3", "u-4"]
        for _pkg, _key, _rel, _arch, value in leaves(tree):
            assert value[0] == {} and value[2] == "Running private test"
        publish(amqp_names.uri, collector.exchange, [_status("private-test", params={}, uuid="u-1", running=False)])
        wait_for(lambda: "u-1" not in (read_file_json(path) or {}).get("private-test", {}), what="u-1 removed")
        assert len(list(leaves(read_file_json(path)))) == 4


def test_run_key_over_params_as_received(amqp_names, tmp_path):
    path = tmp_path / "running.json"
    params = {"uuid": "0e6d5c1a-93b7-4d7f-b0a5-7f1c2e8d4a90", "triggers": ["b/2", "a/1"], "requester": "joe"}
    with _collector(amqp_names, tmp_path) as collector:
        publish(amqp_names.uri, collector.exchange, [_status(params=params, duration=7)])
        wait_for(lambda: bool(read_file_json(path)), what="a leaf")
        tree = read_file_json(path)
        key = "requester_joe;triggers_['b/2', 'a/1'];uuid_0e6d5c1a-93b7-4d7f-b0a5-7f1c2e8d4a90;"
        assert tree == {"hello": {key: {"noble": {"amd64": [params, 7, "log tail"]}}}}


def test_leaves_expire_without_status(amqp_names, tmp_path):
    path = tmp_path / "running.json"
    with _collector(amqp_names, tmp_path, expiry_seconds=1.5) as collector:
        publish(amqp_names.uri, collector.exchange, [_status(arch="amd64"), _status(arch="arm64")])
        wait_for(lambda: len(list(leaves(read_file_json(path) or {}))) == 2, what="2 leaves")
        # Keep one alive; the other stops reporting (a dead worker).
        for _ in range(8):
            time.sleep(0.5)
            publish(amqp_names.uri, collector.exchange, [_status(arch="arm64", duration=20)])
        tree = read_file_json(path)
        assert list(tree["hello"][next(iter(tree["hello"]))]["noble"]) == ["arm64"]


def test_malformed_messages_rejected_and_loop_survives(amqp_names, tmp_path, caplog):
    path = tmp_path / "running.json"
    bad = [
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b'{"release": "noble"}',
        json.dumps({"release": "noble", "architecture": "amd64", "package": "x", "running": "yes"}).encode(),
        json.dumps({"release": "", "architecture": "amd64", "package": "x", "running": True}).encode(),
    ]
    with _collector(amqp_names, tmp_path) as collector:
        publish(amqp_names.uri, collector.exchange, bad + [_status()])
        wait_for(lambda: "hello" in (read_file_json(path) or {}), what="the valid message after the bad ones")
        assert collector.rejected == len(bad)
    rejections = [r for r in caplog.records if "rejecting malformed message" in r.getMessage()]
    assert len(rejections) == len(bad)


def test_writes_are_coalesced_and_heartbeat(amqp_names, tmp_path):
    path = tmp_path / "running.json"
    with _collector(amqp_names, tmp_path, heartbeat=1.0) as collector:
        wait_for(lambda: path.exists(), what="start write")
        start_writes, start = collector.writes, time.monotonic()
        for round_ in range(10):
            publish(amqp_names.uri, collector.exchange, [_status(arch=f"a{i}", duration=round_) for i in range(200)])
            time.sleep(0.1)
        last = json.dumps(read_file_json(path))
        wait_for(lambda: collector.messages == 2000, what="all 2000 messages consumed")
        # Within 1 s of the last change the file holds it.
        wait_for(lambda: all(v[1] == 9 for *_, v in leaves(read_file_json(path))), timeout=1.5, what="last change")
        elapsed = time.monotonic() - start
        assert collector.writes - start_writes <= 2 * elapsed + 2, (collector.writes, elapsed)
        assert last  # the file was valid JSON throughout the burst
        # Nothing changes now, but the heartbeat rewrites the file.
        before = os.stat(path).st_mtime_ns
        wait_for(lambda: os.stat(path).st_mtime_ns != before, timeout=3, what="heartbeat rewrite")


def test_reader_never_sees_partial_json(tmp_path):
    """A reader parsing running.json as fast as it can while it is rewritten in a loop."""
    path = tmp_path / "running.json"
    collector = amqp_status_collector.StatusCollector("amqp://unused/", str(path), queue="unused")
    big = {"triggers": [f"pkg{i}/1.0" for i in range(50)]}
    stop = threading.Event()
    bad: list[str] = []
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                bad.append(text[-80:])
            reads[0] += 1

    collector.write()
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(120):
            message = StatusMessage("noble", f"a{i % 40}", f"p{i}", True, big, i, "x" * 2000, None)
            collector.state.apply(message, time.monotonic())
            collector.write()
    finally:
        stop.set()
        thread.join()
    assert not bad, bad[:3]
    assert reads[0] > 20


def test_survives_broker_restart(private_rabbitmq, tmp_path):  # noqa: F811
    broker = private_rabbitmq
    path = tmp_path / "running.json"
    runner = RunningCollector(broker.uri, path, "t-status", "t-running-listener")
    runner.collector.backoff_max_seconds = 1.0
    stop = threading.Event()
    invalid: list[int] = []

    def watch():
        while not stop.is_set():
            if path.exists() and read_file_json(path) is None:
                invalid.append(1)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with runner as collector:
            publish(broker.uri, collector.exchange, [_status(arch="amd64")])
            wait_for(lambda: "amd64" in json.dumps(read_file_json(path)), what="first leaf")
            broker.restart()
            # The consumer reconnects and redeclares its (auto-deleted) queue and exchange.
            wait_for(runner._queue_exists, timeout=30, what="queue redeclared after restart")
            publish(broker.uri, collector.exchange, [_status(arch="s390x")])
            wait_for(lambda: "s390x" in json.dumps(read_file_json(path)), timeout=10, what="leaf after restart")
            # State from before the restart is kept (it expires normally).
            assert "amd64" in json.dumps(read_file_json(path))
    finally:
        stop.set()
        watcher.join()
    assert not invalid


def test_help_and_missing_config(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        amqp_status_collector.main(["--help"])
    assert exit_.value.code == 0
    assert "running.json" in capsys.readouterr().out
    conf = tmp_path / "c.conf"
    conf.write_text("[web]\nrunning_cache = /tmp/x.json\n")
    assert amqp_status_collector.main(["--config", str(conf)]) == 2
    assert "[amqp] uri" in capsys.readouterr().err


def test_exchange_declared_elsewhere_with_other_flags_is_used_as_is(amqp_names, tmp_path):
    """A deployment whose teststatus.fanout is durable (406 on our declaration): we still consume it."""
    exchange = amqp_names.exchange("status")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_names.uri))
    connection.channel().exchange_declare(exchange, exchange_type="fanout", durable=True)
    connection.close()
    path = tmp_path / "running.json"
    runner = RunningCollector(amqp_names.uri, path, exchange, amqp_names.queue("running-listener"))
    with runner as collector:
        publish(amqp_names.uri, exchange, [_status()])
        wait_for(lambda: "hello" in (read_file_json(path) or {}), what="leaf via the durable exchange")
        assert not collector.exchange_durable  # we asked for non-durable and fell back to passive
