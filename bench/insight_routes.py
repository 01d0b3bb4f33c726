#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""p95 of the insight routes, and of history pages with classification, on a big public DB.

Usage: python bench/gen_big_db.py --scale 0.1 --out bench/out/big-0.1.db
       python bench/insight_publish.py --db bench/out/big-0.1.db      # adds test_flakiness
       python bench/insight_routes.py --db bench/out/insight-big-0.1/public.db

Same harness as bench/browse_latency.py (browse.cgi in a child process
under werkzeug's threaded server on 127.0.0.1, one keep-alive client). In
the child, browse's classification hook (history.classify_results) is
pointed at insight.classify_rows, so history and /recent rows are measured
*with* their classification, as they will be once the hook is wired.
Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _browse_bench():
    spec = importlib.util.spec_from_file_location("browse_latency", HERE / "browse_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(config_path: str, port: int) -> None:
    from webcontrol import history, insight
    from webcontrol.web.browse import links

    def classify(conn, rows):
        return insight.classify_rows(conn, rows)

    history.classify_results = classify
    links.classify_results = classify
    _browse_bench().serve(config_path, port)


def targets(db_path: str) -> dict[str, list[str]]:
    info = json.loads(Path(db_path + ".json").read_text())
    package, release, arch = info["history"]
    conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    deep = conn.execute(
        "SELECT result.run_id FROM result JOIN test ON test.id = result.test_id"
        " WHERE test.package = ? AND test.release = ? AND test.arch = ? ORDER BY result.run_id DESC LIMIT 1 OFFSET 4899",
        (package, release, arch),
    ).fetchone()[0]
    # Packages for badges/feeds: hello and a sample of others with many tests.
    others = [
        row[0] for row in conn.execute("SELECT package FROM test WHERE arch = 'amd64' AND release = 'noble' LIMIT 50")
    ]
    conn.close()
    history = f"/packages/{info['prefix']}/{package}/{release}/{arch}"
    return {
        "history p1 (+class)": [history],
        "history p50 (+class)": [f"{history}?before={deep}"],
        "history json (+class)": [f"/api/v1/packages/{package}/{release}/{arch}"],
        "recent (+class)": ["/recent"],
        "flaky": ["/flaky"],
        "flaky json": ["/api/v1/flaky"],
        "badge package": [f"/packages/{p}/badge.svg" for p in [package, *others]],
        "badge test": [f"/packages/{p}/noble/amd64/badge.svg" for p in [package, *others]],
        "feed test": [f"/packages/{package}/{release}/{arch}/feed.atom"],
        "feed package": [f"/packages/{p}/feed.atom" for p in [package, *others[:10]]],
        "history.svg": [f"/packages/{package}/{release}/{arch}/history.svg"],
        "metrics": ["/metrics"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="public DB with test_flakiness (and the generator's .json)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per route (default 200)")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    bench = _browse_bench()
    folder = Path(tempfile.mkdtemp(prefix="insight-bench-"))
    config_path = bench.make_site(args.db, folder)
    port = bench.free_port()
    server = subprocess.Popen([sys.executable, __file__, "--db", args.db, "--serve", str(config_path), str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        print(f"server pid {server.pid}; {args.requests} requests per route after 10 warm-up; DB {args.db}")
        print(f"{'route':<22} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        worst = 0.0
        for name, paths in targets(args.db).items():
            bench.measure(port, paths, 10, 1)
            times = sorted(bench.measure(port, paths, args.requests, 1))
            p95 = times[int(0.95 * (len(times) - 1))] * 1000
            worst = max(worst, p95)
            print(f"{name:<22} {statistics.median(times) * 1000:>10.1f} {p95:>8.1f} {times[-1] * 1000:>8.1f}")
        print(f"worst p95: {worst:.1f} ms; server peak RSS: {bench.peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
