#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: cache-amqp over many queued requests on the local RabbitMQ broker.

Fills 40 test-unique ``debci-*`` queues (4 contexts × 2 releases × 5 arches)
with N requests in total, then runs one cache-amqp pass in a child process
per peek method and prints its wall time, peak RSS and the longest time a
message was held unacked. Targets: < 10 s, < 300 MB. The queues
are deleted afterwards.

    python bench/live_cache_amqp.py [--requests 50000] [--uri amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webcontrol import results  # noqa: E402

RELEASES = ["jammy", "noble"]
ARCHES = ["amd64", "arm64", "ppc64el", "riscv64", "s390x"]

CHILD = """
import json, resource, sys, time
from webcontrol.services.cache_amqp import QueueCache
uri, path, prefix, method, releases, arches = sys.argv[1:7]
releases = json.loads(releases); arches = json.loads(arches)
cache = QueueCache(uri, path, releases, {r: arches for r in releases}, queue_prefix=prefix, peek_method=method)
start = time.monotonic()
doc = cache.run_once()
wall = time.monotonic() - start
total = sum(e["size"] for c in doc["queues"].values() for r in c.values() for e in r.values())
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "longest_hold_s": cache.stats.longest_hold_s, "hold_queue": cache.stats.longest_hold_queue,
                  "requests": total}))
"""


def fill(uri: str, prefix: str, total: int) -> list[str]:
    queues = [
        prefix + results.queue_name(ctx, rel, arch) for ctx in results.CONTEXTS for rel in RELEASES for arch in ARCHES
    ]
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    for queue in queues:
        channel.queue_declare(queue, durable=True)
    for i in range(total):
        params = {
            "requester": "bench",
            "submit-time": "2026-11-29 09:00:00+0000",
            "triggers": [f"glibc/2.40-{i % 7}ubuntu1", f"pkg{i}/1.0-1"],
            "uuid": f"00000000-0000-4000-8000-{i:012d}",
        }
        body = f"pkg{i}\n{json.dumps(params, sort_keys=True)}".encode()
        channel.basic_publish("", queues[i % len(queues)], body, pika.BasicProperties(delivery_mode=2))
    # Wait until the broker has them all.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = sum(channel.queue_declare(q, passive=True).method.message_count for q in queues)
        if ready == total:
            break
        time.sleep(0.2)
    connection.close()
    return queues


def cleanup(uri: str, queues: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    for queue in queues:
        channel.queue_delete(queue)
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--uri", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--methods", default="consume,get")
    args = parser.parse_args()
    prefix = f"bench-{secrets.token_hex(4)}-"
    started = time.monotonic()
    queues = fill(args.uri, prefix, args.requests)
    print(f"filled {len(queues)} queues with {args.requests} requests in {time.monotonic() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for method in args.methods.split(","):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        args.uri,
                        f"{tmp}/queued.json",
                        prefix,
                        method,
                        json.dumps(RELEASES),
                        json.dumps(ARCHES),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                ).stdout
                figures = json.loads(out.strip().splitlines()[-1])
                size_mb = Path(f"{tmp}/queued.json").stat().st_size / 1e6
                print(
                    f"peek={method:8s} requests={figures['requests']} wall={figures['wall_s']:.2f} s "
                    f"peak_rss={figures['peak_rss_mb']:.0f} MB longest_hold={figures['longest_hold_s'] * 1000:.0f} ms "
                    f"({figures['hold_queue']}) queued.json={size_mb:.1f} MB"
                )
    finally:
        cleanup(args.uri, queues)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
