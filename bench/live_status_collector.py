#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: amqp-status-collector absorbing status messages with many running jobs.

Pre-fills the collector's (test-unique) queue with ROUNDS × JOBS status
messages (each job reports ROUNDS times, ~2 kB log tail each, as workers
do every 10 s), then starts the collector and measures how fast it drains
them, and how often it rewrote running.json meanwhile. Targets:
>= 2,000 messages/s with 2,000 running jobs, <= 4 rewrites/s. The exchange
and queue are deleted afterwards.

    python bench/live_status_collector.py [--jobs 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webcontrol.messages import StatusMessage  # noqa: E402
from webcontrol.services.amqp_status_collector import StatusCollector  # noqa: E402

ARCHES = ["amd64", "arm64", "ppc64el", "s390x", "armhf"]


def messages(jobs: int, rounds: int) -> list[bytes]:
    tail = "".join(f"{n}s autopkgtest [10:00:00]: some output line number {n}\n" for n in range(40))[:2000]
    bodies = []
    for round_ in range(rounds):
        for job in range(jobs):
            params = {
                "requester": "bench",
                "submit-time": "2026-11-29 09:00:00+0000",
                "triggers": [f"glibc/2.40-1ubuntu{job % 5}"],
                "uuid": f"00000000-0000-4000-8000-{job:012d}",
            }
            message = StatusMessage(
                "noble", ARCHES[job % len(ARCHES)], f"pkg{job}", True, params, 10 * round_ + job % 10, tail, None
            )
            bodies.append(message.serialise())
    return bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--uri", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    name = f"bench-{secrets.token_hex(4)}"
    exchange, queue = f"{name}-status", f"{name}-running-listener"
    bodies = messages(args.jobs, args.rounds)
    connection = pika.BlockingConnection(pika.URLParameters(args.uri))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=False)
    channel.queue_declare(queue, durable=False, auto_delete=True)
    channel.queue_bind(queue, exchange)
    for body in bodies:
        channel.basic_publish(exchange, "", body)
    while channel.queue_declare(queue, passive=True).method.message_count < len(bodies):
        time.sleep(0.1)
    print(f"queued {len(bodies)} status messages for {args.jobs} jobs")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "running.json"
        collector = StatusCollector(args.uri, str(path), exchange=exchange, queue=queue)
        thread = threading.Thread(target=collector.run)
        started = time.monotonic()
        writes_before = collector.writes
        thread.start()
        while collector.messages < len(bodies):
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        writes = collector.writes - writes_before
        time.sleep(1.2)  # the last change reaches the disk
        collector.stop()
        thread.join(30)
        tree = json.loads(path.read_text())
        leaves = sum(len(a) for keys in tree.values() for rels in keys.values() for a in rels.values())
        size_mb = path.stat().st_size / 1e6
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()
    print(
        f"messages={len(bodies)} time={elapsed:.2f} s rate={len(bodies) / elapsed:.0f} msgs/s "
        f"rewrites={writes} ({writes / elapsed:.2f}/s) leaves_in_file={leaves} running.json={size_mb:.1f} MB "
        f"peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
