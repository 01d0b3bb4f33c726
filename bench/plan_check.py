#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every browse route and filter combination on a production-size DB: server time per URL, worst first.

Usage: python bench/gen_big_db.py --out /var/tmp/bench-dbs/big10m.db
       python bench/plan_check.py --db /var/tmp/bench-dbs/big10m.db [--repeat 3] [--show 15] [--build-index]

The URL list is the one tests/browse/test_route_plans.py checks the plans
of (tests/browse/combinations.py). The app runs in this process (no HTTP):
each URL is requested once to warm up, then ``--repeat`` times, and its
median server time (wall and CPU) is kept (responses of limit=10000 pages are timed to
their last byte). Live files: 50,000 queued requests and 2,000 running
jobs with their indexes, as in bench/browse_latency.py. Target: no URL
over 50 ms at 10M results, pages of 10,000 rows aside.

``/recent?classification=`` reads the classification index publish-db keeps
beside the public DB (``classification-index.db`` in the DB's folder);
``--build-index`` builds or updates it first (about 4 minutes at 10M
results on 2 CPUs, much longer when they are busy); without it a missing
index is reported and those URLs take the slower paths.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.browse_latency import make_site  # noqa: E402
from tests.browse.combinations import Names, all_urls  # noqa: E402


def names_of(db_path: str) -> Names:
    info = json.loads(Path(db_path + ".json").read_text())
    package, release, arch = info["history"]
    conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    deep = conn.execute(
        "SELECT result.run_id FROM result JOIN test ON test.id = result.test_id"
        " WHERE test.package = ? AND test.release = ? AND test.arch = ? ORDER BY result.run_id DESC LIMIT 1 OFFSET 4899",
        (package, release, arch),
    ).fetchone()[0]
    trigger = conn.execute("SELECT triggers FROM result ORDER BY rowid DESC LIMIT 1").fetchone()[0].split()[0]
    conn.close()
    return Names(package, release, arch, info["heavy_user"], "user7", deep, info["uuids"][0], trigger)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--repeat", type=int, default=3, help="timed requests per URL (default 3)")
    parser.add_argument("--show", type=int, default=15, help="print this many slowest URLs (default 15)")
    parser.add_argument("--build-index", action="store_true", help="build the classification index beside the DB")
    parser.add_argument("--only", help="time only the URLs that contain this text (e.g. classification=)")
    args = parser.parse_args()
    from webcontrol import classindex
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    index = classindex.index_path(os.path.abspath(args.db))
    if args.build_index:
        started = time.monotonic()
        done = classindex.refresh(args.db, index, budget_s=float("inf"))
        print(
            f"classification index {index}: {done.indexed:,} results classified in {time.monotonic() - started:.0f} s"
        )
    print(f"classification index {index}: {'present' if index.exists() else 'MISSING (fallback path timed)'}")
    folder = Path(tempfile.mkdtemp(prefix="plan-check-"))
    try:
        app = create_app(configmod.load(str(make_site(args.db, folder, 50_000, 2_000))))
        client = app.test_client()
        urls = [url for url in all_urls(names_of(args.db)) if not args.only or args.only in url]
        print(
            f"DB {args.db}: {len(urls)} URLs, {args.repeat} timed requests each; "
            f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        timings, statuses = [], {}
        for url in urls:
            client.get(url).get_data()
            walls, cpus = [], []
            for _n in range(args.repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(url)
                response.get_data()
                walls.append((time.perf_counter() - started) * 1000)
                cpus.append((time.process_time() - started_cpu) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            timings.append((statistics.median(walls), statistics.median(cpus), url))
        # On a busy machine wall time includes waiting for a CPU: the CPU time is this process's own work.
        timings.sort(reverse=True)
        print("     wall       cpu  url")
        for wall, cpu, url in timings[: args.show]:
            print(f"{wall:6.1f} ms {cpu:6.1f} ms  {url}")
        small = [t for t in timings if "limit=10000" not in t[2] and "/testlist" not in t[2]]
        by_cpu = sorted(small, key=lambda t: t[1], reverse=True)
        print(f"statuses: {dict(sorted(statuses.items()))}")
        print(
            f"worst: {timings[0][0]:.1f} ms ({timings[0][2]}); worst without 10,000-row pages and /testlist: "
            f"{small[0][0]:.1f} ms wall ({small[0][2]}), {by_cpu[0][1]:.1f} ms CPU ({by_cpu[0][2]}); "
            f"median of all: {statistics.median(t[0] for t in timings):.1f} ms wall"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
