#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: download-all-results from a real local Swift.

Writes N runs (result.tar + log.gz each, as workers do) into a fresh Swift
All-In-One, then runs the real ``download-all-results`` command on an empty
DB and prints results/second and the command's peak RSS. Target:
>= 200 results/s on 2 cores, peak RSS < 200 MB independent of container size.

    python bench/ingest_download_all.py [--runs 20000] [--workers 8]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.swift import start_swift  # noqa: E402
from webcontrol import config as configmod  # noqa: E402
from webcontrol import demodata
from webcontrol.store.swift import SwiftStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    swift = start_swift()
    try:
        section = swift.config_section()
        packages = [f"pkg{i:04d}" for i in range(max(1, args.runs // 40))]
        runs = list(demodata.plan_runs(["noble"], ["amd64", "arm64", "s390x", "ppc64el"], packages, runs_per_test=10))[
            : args.runs
        ]
        started = time.monotonic()
        import threading

        local = threading.local()

        def write(run):
            if not hasattr(local, "store"):
                local.store = SwiftStore.from_config(configmod.from_dict({"swift": section}))
                local.rng = random.Random(id(local))
            demodata.write_run(local.store, run, local.rng)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(write, runs))
        print(f"generated {len(runs)} runs ({len(runs) * 3} objects) in Swift in {time.monotonic() - started:.1f} s")

        work = Path(tempfile.mkdtemp(prefix="bench-dar-"))
        conf = work / "c.conf"
        configmod.write(
            {"web": {"database": work / "rw.db", "releases": "noble", "state_dir": work}, "swift": section}, conf
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "webcontrol.services.download_all_results",
                "--config",
                str(conf),
                "--workers",
                str(args.workers),
            ],
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            print(done.stderr[-3000:])
            return 1
        import sqlite3

        stored = sqlite3.connect(work / "rw.db").execute("SELECT COUNT(*) FROM result").fetchone()[0]
        print(
            f"download-all-results: {stored} results in {elapsed:.1f} s = {stored / elapsed:.0f} results/s "
            f"(workers {args.workers}); peak RSS {max(peak_kb, before) / 1024:.0f} MB"
        )
        # A second, incremental sweep: nothing new to download, only listing and DB lookups.
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "webcontrol.services.download_all_results", "--config", str(conf)],
            capture_output=True,
            check=True,
        )
        print(f"incremental sweep with nothing new: {time.monotonic() - started:.1f} s")
    finally:
        swift.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
