# SPDX-License-Identifier: GPL-3.0-or-later
"""cache-amqp under faults: poison requests, SIGKILL while it holds messages unacked, a broker restart.

The real CLI (``--loop``) peeks a ``debci-*`` queue of a private node that
holds good requests interleaved with malformed ones. It is SIGKILLed at
random moments — some of them while it holds the messages unacked — and the
node is restarted once. After every fault the queue must still hold every
message, in the original order (the broker requeues what a dead reader
held), queued.json must list each of them (malformed ones as ``malformed
request``), and the loop must survive the restart.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import pika

from tests.faults.conftest import program, size, wait_for
from tests.faults.test_poison import _bad_bodies
from tests.faults.workload import stop_process
from webcontrol import amqp, db
from webcontrol import config as configmod
from webcontrol.livestate import MALFORMED_REQUEST

RELEASE, ARCH = "noble", "amd64"


def _peek_all(broker, queue: str) -> list[bytes]:
    """The queue's bodies in order, without consuming (basic_get without ack, then close)."""
    connection = broker.connection()
    bodies = []
    try:
        channel = connection.channel()
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return bodies
            bodies.append(body)
    finally:
        connection.close()


def _request(i: int) -> bytes:
    params = {
        "requester": "joe",
        "submit-time": "2024-02-22 01:56:14+0000",
        "triggers": [f"pkg{i}/1.{i}"],
        "uuid": f"00000000-0000-4000-8000-{i:012x}",
    }
    return f"pkg{i}\n{json.dumps(params, sort_keys=True)}".encode()


def test_cache_amqp_loses_nothing_when_killed_mid_peek_and_survives_a_restart(policy_broker, tmp_path, figures):
    good_count = size("peek_good", 500, 5000)
    bad_count = size("peek_bad", 100, 1000)
    kills = size("peek_kills", 3, 10)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    queue = f"debci-{RELEASE}-{ARCH}"
    example = {"requester": "joe", "triggers": ["hello/1"]}
    bad = [body for _k, body in _bad_bodies(bad_count, example, ["requester"], big=0)]
    bodies = [_request(i) for i in range(good_count)] + bad
    rng.shuffle(bodies)

    public = tmp_path / "public.db"
    conn = db.connect_rw(public)
    db.record_results(
        conn,
        [db.ResultRecord(RELEASE, ARCH, "hello", "20240101_000000_aaaaa@", "1", "hello/1", 1, 0)],
    )
    conn.close()
    queued_path = tmp_path / "queued.json"
    conf = tmp_path / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {"database_public": public, "amqp_queue_cache": queued_path, "releases": RELEASE},
            "amqp": {"uri": policy_broker.uri},
        },
        conf,
    )
    connection = policy_broker.connection()
    channel = connection.channel()
    channel.queue_delete(queue)
    channel.confirm_delivery()
    amqp.declare_request_queue(channel, queue)
    for body in bodies:
        channel.basic_publish("", queue, body, amqp.PERSISTENT)
    connection.close()

    command = program("cache_amqp", "--config", str(conf), "--loop", "0.05")
    log_path = tmp_path / "cache-amqp.log"

    def start():
        with open(log_path, "ab") as log:
            return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)

    def listed() -> list[str] | None:
        try:
            data = json.loads(queued_path.read_text())
            return data["queues"]["ubuntu"][RELEASE][ARCH]["requests"]
        except (OSError, ValueError, KeyError):
            return None

    expected_listing = []
    for body in bodies:
        try:
            text = body.decode("utf-8")
            parts = text.split(None, 1)
            if len(parts) == 1:
                expected_listing.append(f"{parts[0]}\n{{}}")  # a bare package (docs/formats.rst, queued.json)
                continue
            params = json.loads(parts[1]) if parts else None
            expected_listing.append(text if isinstance(params, dict) else None)
        except (UnicodeDecodeError, ValueError, RecursionError):
            expected_listing.append(None)

    held_at_kill, order_kept = [], 0
    process = start()
    try:
        assert wait_for(lambda: listed() is not None and len(listed()) == len(bodies), timeout=60)
        for _ in range(kills):
            # Every other kill lands while the reader holds messages unacked; the others at random.
            time.sleep(rng.uniform(0.01, 0.3))
            if len(held_at_kill) % 2 == 0:
                wait_for(lambda: _unacked(policy_broker, queue, len(bodies)) > 0, timeout=5, interval=0.001)
            unacked = _unacked(policy_broker, queue, len(bodies))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            held_at_kill.append(unacked)
            remaining = _peek_all(policy_broker, queue)
            assert remaining == bodies, "messages lost or reordered after a SIGKILL"
            order_kept += 1
            process = start()
        before = time.monotonic()
        policy_broker.restart()
        restart_seconds = time.monotonic() - before
        queued_path.unlink()
        assert wait_for(lambda: listed() is not None, timeout=60), log_path.read_text()[-3000:]
        alive_after_restart = process.poll() is None
        listing = listed()
    finally:
        exit_code = stop_process(process)
    remaining = _peek_all(policy_broker, queue)
    log_text = log_path.read_text(errors="replace")
    malformed = sum(1 for item in listing if item == MALFORMED_REQUEST)
    figures.update(
        messages=len(bodies),
        good=good_count,
        bad=bad_count,
        kills=kills,
        kills_while_messages_unacked=sum(1 for n in held_at_kill if n),
        order_kept_after_kills=order_kept,
        broker_restart_seconds=round(restart_seconds, 1),
        alive_after_restart=alive_after_restart,
        listed_after_restart=len(listing),
        listed_as_malformed=malformed,
        lost=len(bodies) - len(remaining),
        seed=seed,
    )
    assert remaining == bodies
    assert alive_after_restart and exit_code == 0, log_text[-3000:]
    assert "Traceback" not in log_text, log_text[-3000:]
    assert [None if item == MALFORMED_REQUEST else item for item in listing] == expected_listing


def _unacked(broker, queue: str, total: int) -> int:
    """How many of the queue's ``total`` messages are held unacked right now (not ready)."""
    try:
        return max(0, total - broker.message_count(queue))
    except pika.exceptions.AMQPError:
        return 0
