#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: download-results end to end on the local RabbitMQ broker.

Publishes N completion messages to a private fanout exchange, starts the
real ``download-results`` command, and measures from its start until the
last row is committed. Target: >= 500 messages/s.

    python bench/ingest_download_results.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webcontrol import demodata  # noqa: E402

URI = "amqp://guest:guest@127.0.0.1:5672/"


def count(path: Path) -> int:
    try:
        return sqlite3.connect(path).execute("SELECT COUNT(*) FROM result").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    prefix = f"bench-{secrets.token_hex(3)}"
    exchange, queue = f"{prefix}-complete", f"{prefix}-listener"
    packages = [f"pkg{i:04d}" for i in range(max(1, args.messages // 40))]
    runs = list(demodata.plan_runs(["noble"], ["amd64", "arm64", "s390x", "ppc64el"], packages, runs_per_test=10))[
        : args.messages
    ]
    connection = pika.BlockingConnection(pika.URLParameters(URI))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange)
    for run in runs:
        channel.basic_publish(exchange, "", run.completion_message().serialise(), pika.BasicProperties(delivery_mode=2))
    work = Path(tempfile.mkdtemp(prefix="bench-dr-"))
    conf = work / "c.conf"
    conf.write_text(f"[web]\ndatabase = {work / 'rw.db'}\n[amqp]\nuri = {URI}\n")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webcontrol.services.download_results",
            "--config",
            str(conf),
            "--exchange",
            exchange,
            "--queue",
            queue,
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        while count(work / "rw.db") < len(runs):
            time.sleep(0.05)
            if time.monotonic() - started > 600:
                print("timed out")
                return 1
        elapsed = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(10)
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        connection.close()
    print(
        f"download-results: {len(runs)} messages recorded in {elapsed:.2f} s = {len(runs) / elapsed:.0f} messages/s "
        "(including process start-up)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
