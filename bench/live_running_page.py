#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: /running server time with many running jobs and a long queue.

Writes a running.json with JOBS leaves (~2 kB log tails) and a queued.json
with QUEUED requests over 40 queues, builds the browse app, and times
REQUESTS requests of each live route through WSGI (server time: routing,
file cache, DB hints, rendering). Target: /running p95 < 200 ms
with 2,000 jobs and 50,000 queued. The files change between some requests,
so re-parsing after a collector/cache-amqp rewrite is measured too.

    python bench/live_running_page.py [--jobs 2000] [--queued 50000] [--requests 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live.test_cache_amqp import make_public_db  # noqa: E402
from webcontrol import config, results  # noqa: E402
from webcontrol.atomicfile import write_json_atomic  # noqa: E402
from webcontrol.web.browse import create_app, live_data  # noqa: E402

RELEASES = ["jammy", "noble"]
ARCHES = ["amd64", "arm64", "ppc64el", "riscv64", "s390x"]


def running_tree(jobs: int, bump: int = 0, churn: int = 1) -> dict:
    """``churn``: 1 changes every job per bump; 10 changes one job in ten (about what happens
    between two collector writes, with status messages every 10 s and writes every 0.5 s)."""
    tail = "".join(f"{n}s autopkgtest [10:00:00]: some output line number {n}\n" for n in range(40))[:2000]
    tree: dict = {}
    for job in range(jobs):
        params = {
            "requester": "bench",
            "submit-time": "2026-11-29 09:00:00+0000",
            "triggers": [f"glibc/2.40-1ubuntu{job % 5}", f"pkg{job}/1.0"],
            "uuid": f"00000000-0000-4000-8000-{job:012d}",
        }
        release, arch = RELEASES[job % 2], ARCHES[job % len(ARCHES)]
        value = [params, 100 + job + (bump if job % churn == bump % churn else 0), tail]
        tree.setdefault(f"pkg{job % 700}", {}).setdefault(results.run_key(params), {}).setdefault(release, {})[arch] = (
            value
        )
    return tree


def queued_doc(total: int) -> dict:
    queues: dict = {}
    names = [(c, r, a) for c in results.CONTEXTS for r in RELEASES for a in ARCHES]
    for i in range(total):
        ctx, rel, arch = names[i % len(names)]
        params = {"requester": "bench", "submit-time": "2026-11-29 09:00:00+0000", "triggers": [f"pkg{i}/1.0"]}
        entry = queues.setdefault(ctx, {}).setdefault(rel, {}).setdefault(arch, {"size": 0, "requests": []})
        entry["requests"].append(f"pkg{i}\n{json.dumps(params, sort_keys=True)}")
        entry["size"] += 1
    return {"releases": RELEASES, "arches": ARCHES, "queues": queues, "generated": "2026-11-29T09:00:00Z"}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--queued", type=int, default=50000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of requests during rewrites")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        make_public_db(tmp_path / "public.db", {r: ARCHES for r in RELEASES})
        write_json_atomic(tmp_path / "running.json", running_tree(args.jobs))
        write_json_atomic(tmp_path / "queued.json", queued_doc(args.queued))
        cfg = config.from_dict(
            {
                "web": {
                    "database_public": tmp_path / "public.db",
                    "running_cache": tmp_path / "running.json",
                    "amqp_queue_cache": tmp_path / "queued.json",
                    "releases": " ".join(RELEASES),
                    "state_dir": tmp_path / "state",
                    "site_url": "https://autopkgtest.example.com",
                }
            }
        )
        client = create_app(cfg).test_client()
        for url in ("/running", "/api/v1/running", "/api/v1/running/status", "/admin"):
            client.get(url)  # warm up (templates compiled, files parsed)
            times, cpu, size = [], [], 0
            for _i in range(args.requests):
                started, started_cpu = time.perf_counter(), time.thread_time()
                response = client.get(url)
                body = response.get_data()
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
                size = len(body)
                assert response.status_code == 200, (url, response.status_code)
            print(
                f"{url:26s} p50={statistics.median(times):6.1f} ms p95={percentile(times, 95):6.1f} ms "
                f"max={max(times):6.1f} ms | cpu p50={statistics.median(cpu):6.1f} p95={percentile(cpu, 95):6.1f} ms"
                f" | body={size / 1e6:.1f} MB"
            )
        # While the collector rewrites running.json twice a second (a tenth of the jobs changed
        # each time), requests arrive back to back for DURATION seconds.
        stop = threading.Event()

        def collector():
            bump = 0
            while not stop.is_set():
                bump += 1
                write_json_atomic(tmp_path / "running.json", running_tree(args.jobs, bump=bump, churn=10))
                stop.wait(0.5)

        writer = threading.Thread(target=collector)
        writer.start()
        times, cpu = [], []
        deadline = time.monotonic() + args.duration
        try:
            while time.monotonic() < deadline:
                started, started_cpu = time.perf_counter(), time.thread_time()
                client.get("/running").get_data()
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
                time.sleep(0.05)
        finally:
            stop.set()
            writer.join()
        print(
            f"/running during rewrites   p50={statistics.median(times):6.1f} ms p95={percentile(times, 95):6.1f} ms "
            f"max={max(times):6.1f} ms | cpu p50={statistics.median(cpu):6.1f} p95={percentile(cpu, 95):6.1f} ms "
            f"| {len(times)} requests"
        )
        # The cost of one re-render, paid at most every live_data.REFRESH_MIN_S seconds.
        live_data.REFRESH_MIN_S = 0.0
        for label, churn in (("1/10 of jobs changed", 10), ("all jobs changed", 1)):
            times, cpu = [], []
            for i in range(10):
                write_json_atomic(tmp_path / "running.json", running_tree(args.jobs, bump=i + 1, churn=churn))
                started, started_cpu = time.perf_counter(), time.thread_time()
                client.get("/running").get_data()
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
            print(
                f"re-render, {label:20s} p50={statistics.median(times):6.1f} ms max={max(times):6.1f} ms "
                f"| cpu p50={statistics.median(cpu):6.1f} max={max(cpu):6.1f} ms"
            )
        print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
