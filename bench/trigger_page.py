#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""p95 of /trigger/<source>/<version> on a big public DB, and the cost of its sidecar index.

Usage: python bench/gen_big_db.py --scale 0.2 --out bench/out/big2m.db
       python bench/trigger_page.py --db bench/out/big2m.db

Builds (or reuses, with --index) the trigger index for the DB the way
publish-db does (triggerindex.refresh, here without a time budget) and
prints its build time and size next to the public DB's size, which the
index leaves untouched. Then browse.cgi runs in a child process under
werkzeug's threaded server, as in bench/browse_latency.py, and the script
times the JSON twin and the HTML page for the heaviest trigger of the DB
(gen_big_db puts four triggers on ~7.5% of all results each), on random
deep pages of it (keyset cursors of random rows), and for small triggers.
Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import configparser
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from browse_latency import free_port, make_site, measure, peak_rss_mb, percentile, serve, wait_for_port

from webcontrol import db, triggerindex


def build_index(db_path: str, index: Path, late: int) -> None:
    """Build the index as a first publish would, leaving the newest ``late`` rows to an incremental refresh."""
    if index.exists():
        print(f"index: reusing {index}")
    else:
        source = db.connect_ro(db_path)
        source.row_factory = None
        top = source.execute("SELECT MAX(rowid) FROM result").fetchone()[0]
        started = time.monotonic()
        count, _done = triggerindex.rebuild(source, index, top - late, float("inf"))
        source.close()
        print(f"index: full build from {count:,} results in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        summary = triggerindex.refresh(db_path, index)
        print(
            f"index: incremental refresh of the last {summary.indexed:,} results (rebuilt={summary.rebuilt})"
            f" in {time.monotonic() - started:.2f} s"
        )
    size = index.stat().st_size
    public = os.path.getsize(db_path)
    print(f"index size: {size / 1e6:.0f} MB; public DB: {public / 1e6:.0f} MB (unchanged: the index is a sidecar)")


def targets(index: Path, pages: int) -> dict[str, list[str]]:
    conn = sqlite3.connect(index)
    heavy, tests = conn.execute("SELECT trigger, tests FROM trigger_summary ORDER BY runs DESC LIMIT 1").fetchone()
    small = [row[0] for row in conn.execute("SELECT trigger FROM trigger_summary WHERE runs < 50 LIMIT 2000")]
    # Cursors of random rows: the pages a user reaches by following "next" (keyset paging).
    cursors = [
        urllib.parse.quote(f"{rank}/{package}/{arch}/{release}", safe="")
        for rank, package, arch, release in conn.execute(
            "SELECT rank, package, arch, release FROM trigger_test WHERE trigger = ? ORDER BY random() LIMIT ?",
            (heavy, pages),
        )
    ]
    conn.close()
    rng = random.Random(1)
    print(f"heaviest trigger: {heavy} ({tests:,} tests)")
    return {
        "heavy p1 json": [f"/api/v1/trigger/{heavy}"],
        "heavy p1 html": [f"/trigger/{heavy}"],
        "heavy deep json": [f"/api/v1/trigger/{heavy}?after={cursor}" for cursor in cursors],
        "heavy deep html": [f"/trigger/{heavy}?after={cursor}" for cursor in cursors],
        "small json": [f"/api/v1/trigger/{name}" for name in rng.sample(small, min(len(small), pages))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--index", help="trigger index to use or build (default <db>.trigger-index.db)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per target (default 200)")
    parser.add_argument("--late", type=int, default=2000, help="newest results left to the incremental refresh")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    index = Path(args.index or args.db + ".trigger-index.db")
    build_index(args.db, index, args.late)
    folder = Path(tempfile.mkdtemp(prefix="trigger-bench-"))
    config_path = make_site(args.db, folder)
    parser_ini = configparser.ConfigParser(interpolation=None)
    parser_ini.optionxform = str
    parser_ini.read(config_path)
    parser_ini.set("web", "trigger_index", str(index.resolve()))
    with open(config_path, "w") as handle:
        parser_ini.write(handle)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--db", args.db, "--serve", str(config_path), str(port)])
    try:
        wait_for_port(port)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.requests} requests each")
        print(f"{'target':<16} {'client median':>13} {'p95':>8} {'max':>8} {'server p95':>10} {'server CPU p95':>14}")
        worst = 0.0
        for name, paths in targets(index, 50).items():
            measure(port, paths, 10, 1)
            samples = measure(port, paths, args.requests, 1)
            client = sorted(s[0] * 1000 for s in samples)
            server_ms = sorted(s[1] for s in samples)
            cpu = sorted(s[2] for s in samples)
            p95 = percentile(client, 0.95)
            worst = max(worst, p95)
            print(
                f"{name:<16} {statistics.median(client):>13.1f} {p95:>8.1f} {client[-1]:>8.1f}"
                f" {percentile(server_ms, 0.95):>10.1f} {percentile(cpu, 0.95):>14.1f}"
            )
        print(f"worst client p95: {worst:.1f} ms; server peak RSS {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
