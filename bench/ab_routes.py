# SPDX-License-Identifier: GPL-3.0-or-later
"""CPU time of browse routes in two source trees, measured turn about on the same site and DB.

On a shared, loaded machine the CPU time of a request drifts with what else
runs (a busy sibling hyper-thread slows it by a third); timing one tree
after the other compares two different machines. Here each tree serves the
routes in its own process (``webcontrol`` imported from that tree), and the
requests alternate A B B A ..., so both see the same load. Prints per route
and tree the median and best CPU and wall ms, time to first byte, peak RSS
and body bytes.

Example: ``bench/ab_routes.py --db big10m.db --tree /tmp/old --tree . --only "user 10000"``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import browse_latency


def worker(config_path: str) -> None:
    """Serve ``path`` lines from stdin: one request each, answering ``cpu_ms wall_ms ttfb_ms bytes rss_mb sha256``."""
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    app = create_app(configmod.load(config_path))
    client = app.test_client()
    for line in sys.stdin:
        path = line.strip()
        if path == "reset":
            browse_latency.reset_peak_rss()
            print("ok", flush=True)
            continue
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(path, buffered=False)
        first, size, digest = None, 0, hashlib.sha256()
        for chunk in response.response:
            if first is None:
                first = (time.perf_counter() - started) * 1000
            size += len(chunk)
            digest.update(chunk if isinstance(chunk, bytes) else chunk.encode())
        response.close()
        wall, cpu = (time.perf_counter() - started) * 1000, (time.thread_time() - started_cpu) * 1000
        if response.status_code != 200:
            size = -response.status_code
        rss = browse_latency.peak_rss_mb(os.getpid())
        print(f"{cpu} {wall} {first or wall} {size} {rss} {digest.hexdigest()}", flush=True)


class Tree:
    def __init__(self, tree: str, config_path: Path) -> None:
        self.name = tree
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(config_path)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.abspath(tree),
        )

    def ask(self, line: str) -> list:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().split()
        if not answer:
            raise SystemExit(f"worker of {self.name} stopped")
        return [] if answer == ["ok"] else [*(float(value) for value in answer[:5]), answer[5]]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--tree", action="append", default=[], help="a source tree (twice: A and B)")
    parser.add_argument("--requests", type=int, default=10, help="measured requests per route and tree")
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json")
    parser.add_argument("--only", help="comma-separated route names of bench/browse_latency.py")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if not args.db or len(args.tree) != 2:
        parser.error("give --db, and --tree twice")
    folder = Path(tempfile.mkdtemp(prefix="ab-routes-"))
    try:
        config_path = browse_latency.make_site(args.db, folder, args.queued, args.running)
        targets = browse_latency.pages(args.db)
        if args.only:
            targets = {name: paths for name, paths in targets.items() if name in args.only.split(",")}
        trees = [Tree(tree, config_path) for tree in args.tree]
        print(
            f"DB {args.db}; {args.queued:,} queued, {args.running:,} running; {args.requests} requests per route"
            f" and tree, turn about; load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"{'route':<20} {'tree':<24} {'CPU med':>8} {'CPU min':>8} {'wall med':>9} {'TTFB':>6}"
            f" {'peak RSS':>9} {'bytes':>11}  (ms, MB)"
        )
        for name, paths in targets.items():
            samples: list[list[list]] = [[], []]
            for tree in trees:
                for path in paths[:2]:
                    tree.ask(path)
                tree.ask("reset")
            for n in range(args.requests):
                order = (0, 1) if n % 2 == 0 else (1, 0)
                for index in order:
                    samples[index].append(trees[index].ask(paths[n % len(paths)]))
            for tree, runs in zip(trees, samples, strict=True):
                cpu = [run[0] for run in runs]
                print(
                    f"{name:<20} {tree.name[-24:]:<24} {statistics.median(cpu):>8.1f} {min(cpu):>8.1f}"
                    f" {statistics.median(run[1] for run in runs):>9.1f}"
                    f" {statistics.median(run[2] for run in runs):>6.1f} {max(run[4] for run in runs):>9.0f}"
                    f" {int(runs[-1][3]):>11,}"
                )
            same = all(a[5] == b[5] for a, b in zip(*samples, strict=True))
            print(f"{name:<20} {'same bytes' if same else 'BYTES DIFFER'}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        for tree in trees:
            tree.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
