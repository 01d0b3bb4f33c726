#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""p95 of the insight routes, and of history pages with classification, on a big public DB.

Usage: python bench/gen_big_db.py --scale 0.1 --out bench/out/big-0.1.db
       python bench/insight_publish.py --db bench/out/big-0.1.db      # adds test_flakiness
       python bench/insight_routes.py --db bench/out/insight-big-0.1/public.db

browse.cgi runs in a child process under werkzeug's threaded server on
127.0.0.1 with one keep-alive client, as in bench/browse_latency.py; a
middleware reports the server's own wall and CPU time per request, so a
busy machine shows up as client time without server CPU. In
the child, browse's classification hook (history.classify_results) is
pointed at insight.classify_rows, so history and /recent rows are measured
*with* their classification, as they will be once the hook is wired.
Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The script's own folder is on sys.path: the server, site and client are shared with browse_latency.
from browse_latency import Timed, free_port, make_site, measure, peak_rss_mb, percentile, wait_for_port

HERE = Path(__file__).resolve().parent


def serve(config_path: str, port: int, baseline: bool = False) -> None:
    """Child process: browse.cgi with the classification hook pointed at insight (or off), under werkzeug."""
    import logging

    from werkzeug.serving import run_simple

    from webcontrol import config as configmod
    from webcontrol import history, insight
    from webcontrol.web.browse import create_app, links

    def classify(conn, rows):
        return [None] * len(rows) if baseline else insight.classify_rows(conn, rows)

    history.classify_results = classify
    links.classify_results = classify
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(configmod.load(config_path))
    run_simple("127.0.0.1", port, Timed(app), threaded=True, use_reloader=False, use_debugger=False)


def p95(values: list[float]) -> float:
    return percentile(sorted(values), 0.95)


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
    parser.add_argument(
        "--baseline", action="store_true", help="classification hook off: the cost of browse's own rows, for comparison"
    )
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.baseline)
        return
    folder = Path(tempfile.mkdtemp(prefix="insight-bench-"))
    config_path = make_site(args.db, folder)
    port = free_port()
    command = [sys.executable, __file__, "--db", args.db, "--serve", str(config_path), str(port)]
    server = subprocess.Popen(command + (["--baseline"] if args.baseline else []))
    try:
        wait_for_port(port)
        print(f"server pid {server.pid}; {args.requests} requests per route after 10 warm-up; DB {args.db}")
        if args.baseline:
            print("BASELINE: classification hook returns None (rows marked +class are measured without it)")
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'route':<22} {'client med':>10} {'client p95':>10} {'server p95':>10} {'CPU p95':>8}  (ms)")
        worst = 0.0
        for name, paths in targets(args.db).items():
            if args.baseline and "+class" not in name:
                continue
            measure(port, paths, 10, 1)
            samples = measure(port, paths, args.requests, 1)
            client = [s[0] * 1000 for s in samples]
            worst = max(worst, p95(client))
            print(
                f"{name:<22} {statistics.median(client):>10.1f} {p95(client):>10.1f}"
                f" {p95([s[1] for s in samples]):>10.1f} {p95([s[2] for s in samples]):>8.1f}"
            )
        print(f"worst client p95: {worst:.1f} ms; server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
