# SPDX-License-Identifier: GPL-3.0-or-later
"""Poison messages on both consumed exchanges, dead-lettered by a broker policy.

Malformed bodies of every kind are interleaved with good ones. The consumer
(the real CLI, in a subprocess) must record every good one, reject every bad
one without requeue — the private node's policy, set with ``rabbitmqctl
set_policy`` as an operator would, routes each to a dead-letter queue — log
each exactly once (without its body), and keep running.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import sqlite3
import subprocess
import time

import pika
import pytest

from tests.faults.conftest import program, size, wait_for
from tests.faults.workload import ReliablePublisher, completion_messages, expected_keys, stop_process, stored_keys
from tests.services.amqp import drain
from webcontrol import amqp
from webcontrol import config as configmod

BIG = 10 * 1024 * 1024


def _bad_bodies(count: int, good_example: dict, required: list[str], big: int) -> list[tuple[str, bytes]]:
    """``count`` malformed bodies, cycling through the kinds; ``big`` of them are 10 MB."""
    strings = [key for key in required if isinstance(good_example[key], str)]
    kinds = [
        ("bad-json", lambda i: b'{"not json %d' % i),
        ("bad-json-trailing", lambda i: json.dumps(good_example).encode() + b" garbage %d" % i),
        ("not-an-object", lambda i: json.dumps([i, good_example]).encode()),
        ("null", lambda i: b"null" if i % 2 else b'"%d"' % i),
        ("empty", lambda i: b"" if i % 2 else b"   \n"),
        ("invalid-utf8", lambda i: b'{"package": "\xff\xfe%d"}' % i),
        ("invalid-utf8-in-good", lambda i: json.dumps(good_example).encode().replace(b"amd64", b"amd\xc3(%d" % i)),
        (
            "missing-key",
            lambda i: json.dumps(
                {k: v for k, v in good_example.items() if k != required[i % len(required)]} | {"n": i}
            ).encode(),
        ),  # noqa: E501
        (
            "wrong-type-str-as-int",
            lambda i: json.dumps(good_example | {"n": i} | _wrong_type(good_example, i)).encode(),
        ),
        ("wrong-type-list", lambda i: json.dumps(good_example | {required[i % len(required)]: [i]}).encode()),
        ("wrong-type-bool", lambda i: json.dumps(good_example | {strings[i % len(strings)]: True, "n": i}).encode()),
        ("deep-nesting", lambda i: b"[" * 100000 + b"%d" % i),
        ("huge-int", lambda i: json.dumps(good_example | _huge(good_example, i)).encode()),
        (
            "lone-surrogate",
            lambda i: json.dumps(good_example | {"package": f"p\ud800{i}", "logtail": "\udfff"}).encode(),
        ),  # noqa: E501
        ("nan", lambda i: json.dumps(good_example | _nan(good_example), allow_nan=True).encode() + b" " * (i % 3)),
    ]
    bodies = []
    for i in range(count):
        if i < big:
            bodies.append(("10MB", json.dumps(good_example | {"pad": "x" * BIG, "n": i}).encode()))
            continue
        name, make = kinds[i % len(kinds)]
        bodies.append((name, make(i)))
    return bodies


def _wrong_type(example: dict, i: int) -> dict:
    if "exitcode" in example:
        return {"exitcode": str(i)}
    return {"running": "yes"}


def _huge(example: dict, i: int) -> dict:
    key = "exitcode" if "exitcode" in example else "duration"
    return {key: 10**30 + i}


def _nan(example: dict) -> dict:
    key = "exitcode" if "exitcode" in example else "duration"
    return {key: float("nan") if key == "exitcode" else float("inf")}


def _completion_example() -> dict:
    return json.loads(completion_messages(1, seed="example")[0].serialise())


def _status_example() -> dict:
    return {
        "release": "noble",
        "architecture": "amd64",
        "package": "hello",
        "running": True,
        "params": {"triggers": ["hello/1"], "submit-time": "2024-02-21 11:00:51+0000"},
        "duration": 30,
        "logtail": "line\n",
        "uuid": "84661c0e-2b8f-4a0e-9c55-3f7d1e2a6b48",
    }


def _status_bodies(count: int) -> list[bytes]:
    bodies = []
    for i in range(count):
        message = _status_example() | {"package": f"pkg{i}", "uuid": None, "duration": i}
        message["params"] = {"triggers": [f"pkg{i}/1.{i}"], "submit-time": "2024-02-21 11:00:51+0000"}
        bodies.append(json.dumps(message).encode())
    return bodies


def _interleave(good: list[bytes], bad: list[bytes], rng: random.Random) -> list[bytes]:
    tagged = [(0, b) for b in good] + [(1, b) for b in bad]
    rng.shuffle(tagged)
    return [b for _t, b in tagged]


def _digests(bodies) -> collections.Counter:
    return collections.Counter(hashlib.sha256(b).hexdigest() for b in bodies)


def _leaves(path) -> int:
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    return sum(len(arches) for keys in tree.values() for rels in keys.values() for arches in rels.values())


@pytest.mark.parametrize("kind", ["testcomplete", "teststatus"])
def test_poison_messages_dead_lettered_by_policy_and_logged_once(policy_broker, tmp_path, figures, kind):
    good_count = size("poison_good", 200, 1000)
    bad_count = size("poison_bad", 200, 1000)
    big = size("poison_big", 3, 20)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    prefix = f"poison-{seed}"
    exchange, dlx, dead = f"{prefix}-{kind}", f"{prefix}-dlx", f"{prefix}-dead"
    conf = tmp_path / "autopkgtest-cloud.conf"
    running = tmp_path / "running.json"
    configmod.write(
        {"web": {"database": tmp_path / "rw.db", "running_cache": running}, "amqp": {"uri": policy_broker.uri}}, conf
    )
    if kind == "testcomplete":
        queue = f"{prefix}-complete-listener"
        command = program("download_results", "--config", str(conf), "--exchange", exchange, "--queue", queue)
        messages = completion_messages(good_count, seed=str(seed))
        good = [m.serialise() for m in messages]
        example = _completion_example()
        required = ["architecture", "container", "exitcode", "package", "release", "swift_dir"]
    else:
        # amqp-status-collector's queue is running-listener-<fqdn>, auto-delete: made when it starts.
        queue = amqp.host_queue_name("running-listener")
        command = program("amqp_status_collector", "--config", str(conf), "--exchange", exchange)
        good = _status_bodies(good_count)
        example = _status_example()
        required = ["release", "architecture", "package", "running"]
    bad_kinds = _bad_bodies(bad_count, example, required, big)
    bad = [body for _kind, body in bad_kinds]

    # The operator's dead-letter setup: an exchange, a queue, and a policy on our queue's name.
    connection = policy_broker.connection()
    channel = connection.channel()
    channel.exchange_declare(dlx, exchange_type="fanout", durable=True)
    channel.queue_declare(dead, durable=True)
    channel.queue_bind(dead, dlx)
    if kind == "testcomplete":
        channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange)
    connection.close()
    policy_broker.set_dead_letter_policy(f"{prefix}-dlx", f"^({queue})$", dlx)

    log_path = tmp_path / f"{kind}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        if kind == "teststatus":

            def queue_exists() -> bool:
                try:
                    policy_broker.message_count(queue)
                    return True
                except pika.exceptions.ChannelClosedByBroker:
                    return False

            assert wait_for(queue_exists, timeout=30, interval=0.1)
        started = time.monotonic()
        publisher = ReliablePublisher(policy_broker.uri, exchange, _interleave(good, bad, rng))
        publisher.start()
        assert publisher.done.wait(300) and publisher.error is None, publisher.error
        if kind == "testcomplete":
            db_path = tmp_path / "rw.db"

            def recorded() -> int:
                try:
                    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                    try:
                        return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
                    finally:
                        conn.close()
                except sqlite3.Error:
                    return 0
        else:

            def recorded() -> int:
                return _leaves(running)

        wait_for(lambda: recorded() >= good_count and policy_broker.message_count(dead) >= bad_count, timeout=60)
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        alive = process.poll() is None
        assert policy_broker.message_count(queue) == 0
    finally:
        exit_code = stop_process(process)
    dead_bodies = drain(policy_broker.uri, dead)
    log_text = log_path.read_text(errors="replace")
    reject_lines = [line for line in log_text.splitlines() if "rejecting malformed message" in line]
    if kind == "testcomplete":
        conn = sqlite3.connect(tmp_path / "rw.db")
        stored = stored_keys(conn)
        good_recorded = len(set(stored) & expected_keys(messages))
        extra = len(stored) - good_recorded
    else:
        good_recorded = _leaves(running)
        extra = 0
    figures.update(
        exchange=kind,
        good=good_count,
        bad=bad_count,
        bad_10mb=min(big, bad_count),
        bad_kinds=sorted({k for k, _b in bad_kinds}),
        good_recorded=good_recorded,
        extra_rows=extra,
        dead_lettered=len(dead_bodies),
        rejections_logged=len(reject_lines),
        log_bytes=len(log_text),
        process_alive_at_end=alive,
        seconds=round(elapsed, 1),
        seed=seed,
    )
    assert alive, log_text[-3000:]
    assert exit_code == 0
    assert "Traceback" not in log_text, log_text[-3000:]
    assert (good_recorded, extra) == (good_count, 0)
    assert _digests(dead_bodies) == _digests(bad)  # every bad one dead-lettered, each once
    assert len(reject_lines) == bad_count  # logged once each
    assert len(log_text) < 4096 * bad_count + 200_000  # bodies (10 MB ones) are not logged
