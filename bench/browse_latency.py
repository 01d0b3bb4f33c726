#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency of browse.cgi pages on a big public DB, served by a real WSGI server on 127.0.0.1.

Usage: python bench/gen_big_db.py --scale 0.1 --out bench/out/big-0.1.db
       python bench/browse_latency.py --db bench/out/big-0.1.db

The app runs in a child process under werkzeug's threaded server
(``run_simple(threaded=True)``); this process is the load generator (one
keep-alive connection per client thread). For each page it prints the
median and p95 of the request time seen by the client, and at the end the
server's peak RSS (VmHWM). Target: p95 < 50 ms for every page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "client-data"


class Timed:
    """WSGI middleware: the server's own wall and thread CPU time per request, in response headers."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        # Flask calls start_response once the page is built: time and thread CPU up to then.
        wall, cpu = time.perf_counter(), time.thread_time()

        def start(status, headers, exc_info=None):
            headers = [*headers, ("X-Server-Ms", f"{(time.perf_counter() - wall) * 1000:.2f}"),
                       ("X-Server-Cpu-Ms", f"{(time.thread_time() - cpu) * 1000:.2f}")]  # fmt: skip
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def serve(config_path: str, port: int) -> None:
    """Child process: the browse app under werkzeug's threaded server."""
    import logging

    from werkzeug.serving import run_simple

    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(configmod.load(config_path))
    run_simple("127.0.0.1", port, Timed(app), threaded=True, use_reloader=False, use_debugger=False)


def wait_for_port(port: int, seconds: float = 30) -> None:
    """Until the child server accepts connections. Raises SystemExit."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("server did not start") from None
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_site(db_path: str, folder: Path) -> Path:
    from webcontrol import config as configmod

    cache = folder / "cache"
    cache.mkdir(parents=True)
    shutil.copyfile(DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.RUN_DATA.json", cache / "running.json")
    queues = json.loads((DATA / "ppa-dev-tools" / "queues-20220822.json").read_text())
    queued = {
        "releases": [],
        "arches": [],
        "queues": {
            ctx: {rel: {arch: {"size": len(items), "requests": items} for arch, items in arches.items()}
                  for rel, arches in rels.items()}
            for ctx, rels in queues.items()
        },
    }  # fmt: skip
    (cache / "queued.json").write_text(json.dumps(queued))
    info = json.loads(Path(db_path + ".json").read_text())
    stats = {
        rel: {arch: {"numpkgs": 5000, "numpkgspass": 4000, "passruns": 100000, "failruns": 20000} for arch in
              ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"]}
        for rel in info["releases"]
    }  # fmt: skip
    (cache / "stats.json").write_text(json.dumps(stats))
    values = {
        "web": {
            "database_public": os.path.abspath(db_path),
            "state_dir": str(folder / "state"),
            "releases": " ".join(info["releases"]),
            "site_url": "http://127.0.0.1",
            "results_store": "local",
            "results_dir": str(folder / "results"),
            "running_cache": str(cache / "running.json"),
            "amqp_queue_cache": str(cache / "queued.json"),
            "stats_cache_dir": str(cache),
        }
    }
    path = folder / "autopkgtest-cloud.conf"
    configmod.write(values, path)
    return path


def pages(db_path: str) -> dict[str, list[str]]:
    info = json.loads(Path(db_path + ".json").read_text())
    package, release, arch = info["history"]
    conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    row = conn.execute(
        "SELECT result.run_id FROM result JOIN test ON test.id = result.test_id"
        " WHERE test.package = ? AND test.release = ? AND test.arch = ? ORDER BY result.run_id DESC LIMIT 1 OFFSET 4899",
        (package, release, arch),
    ).fetchone()
    conn.close()
    history = f"/packages/{info['prefix']}/{package}/{release}/{arch}"
    return {
        "home": ["/"],
        "package": [f"/packages/{package}"],
        "history p1": [history],
        "history p50": [f"{history}?before={row[0]}"],
        "recent": ["/recent"],
        "user (heavy)": [f"/user/{info['heavy_user']}/"],
        "run/<uuid>": [f"/run/{uuid}" for uuid in info["uuids"]],
        "statistics": ["/statistics"],
    }


def measure(port: int, paths: list[str], count: int, clients: int) -> list[tuple[float, float, float]]:
    """(client seconds, server ms, server CPU ms) per request."""
    times: list[tuple[float, float, float]] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for n in range(offset, count, clients):
            path = paths[n % len(paths)]
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            mine.append(
                (
                    time.perf_counter() - started,
                    float(response.headers.get("X-Server-Ms", "nan")),
                    float(response.headers.get("X-Server-Cpu-Ms", "nan")),
                )
            )
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}: {body[:200]!r}")
        conn.close()
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page (default 200)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent client connections (default 1)")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    folder = Path(tempfile.mkdtemp(prefix="browse-bench-"))
    config_path = make_site(args.db, folder)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--db", args.db, "--serve", str(config_path), str(port)])
    try:
        wait_for_port(port)
        targets = pages(args.db)
        print(f"server: werkzeug run_simple(threaded=True), pid {server.pid}; {args.clients} client(s); "
              f"{args.requests} requests per page after 10 warm-up")  # fmt: skip
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'':<14} {'client wall ms':^26} {'server wall ms':^17} {'server CPU ms':^17}")
        print(f"{'page':<14} {'median':>8} {'p95':>8} {'max':>8} {'median':>8} {'p95':>8} {'median':>8} {'p95':>8}")
        worst = 0.0
        for name, paths in targets.items():
            measure(port, paths, 10, 1)
            samples = measure(port, paths, args.requests, args.clients)
            row = []
            for column in range(3):
                values = sorted(sample[column] * (1000 if column == 0 else 1) for sample in samples)
                row.append((statistics.median(values), percentile(values, 0.95), values[-1]))
            worst = max(worst, row[0][1])
            print(f"{name:<14} {row[0][0]:>8.1f} {row[0][1]:>8.1f} {row[0][2]:>8.1f} {row[1][0]:>8.1f} {row[1][1]:>8.1f}"
                  f" {row[2][0]:>8.1f} {row[2][1]:>8.1f}")  # fmt: skip
        print(f"worst client p95: {worst:.1f} ms; server peak RSS: {peak_rss_mb(server.pid):.0f} MB; "
              f"load average after: {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
