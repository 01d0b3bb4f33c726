#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency of live and cheap pages while the collector rewrites running.json, under a real threaded server.

Usage: python bench/live_rewrites.py --db /var/tmp/bench-dbs/big10m-pub.db [--seconds 30]
       python bench/live_rewrites.py --db ... --tree /tmp/old --tree .   (both at once, same load)
       python bench/live_rewrites.py --db ... --profile   (where a new version's rebuild spends its CPU)

The browse app runs in a child process under werkzeug's threaded server
(one thread per connection, one GIL, as in one mod_wsgi daemon process).
Several clients ask for ``/running`` (``--clients``), one for ``/`` and one
for ``/api/v1/running``, each pausing ``--think`` seconds between requests.
With ``--tree`` given more than once, each tree serves its own copy of
the site at the same time, with the same clients and writers: on a
shared, loaded machine both see the same load. The same load runs three times: with the live files left alone, then while a writer rewrites a copy no server reads (control: the
writer's own CPU), then while a writer process rewrites running.json every ``--interval`` seconds as
amqp-status-collector does (file and index, renamed into place), with a
tenth of the jobs (``--churn``) reporting a new duration and log line per
write. A request that waits for the GIL while the process rebuilds a new
version shows here as server wall time far above its CPU time.

Times are the server's own, from the request's arrival to the last byte of
the body handed to the server (a streamed page included), per request:
wall p50/p95/p99 and thread CPU median/p95; then the server process's CPU
use over the phase and the load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.browse_latency import free_port, make_site, percentile, wait_for_port  # noqa: E402

TIMINGS = "/__bench/timings"


class FullTimed:
    """WSGI middleware: per request, the wall and thread CPU time up to the body's close().

    Kept in memory and answered (then cleared) at TIMINGS as JSON.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.samples: list[tuple[str, float, float]] = []

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == TIMINGS:
            with self.lock:
                samples, self.samples = self.samples, []
            body = json.dumps(samples).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self._timed(environ, start_response)

    def _timed(self, environ, start_response):
        wall, cpu = time.perf_counter(), time.thread_time()
        body = self.app(environ, start_response)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            took = ((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000)
            with self.lock:
                self.samples.append((environ.get("PATH_INFO", ""), *took))


def serve(config_path: str, port: int) -> None:
    """Child process: the browse app under werkzeug's threaded server."""
    import logging

    from werkzeug.serving import run_simple

    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(configmod.load(config_path))
    timed = FullTimed(app)
    watch_gc(timed)
    watch_rebuilds(timed)
    run_simple("127.0.0.1", port, timed, threaded=True, use_reloader=False, use_debugger=False)


def watch_gc(timed: FullTimed) -> None:
    """Each garbage collection's pause (every thread waits for it) as a sample ``gc<generation>``."""
    import gc

    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            with timed.lock:
                timed.samples.append((f"gc{info['generation']}", (time.perf_counter() - started[0]) * 1000, 0.0))

    gc.callbacks.append(callback)


def watch_rebuilds(timed: FullTimed) -> None:
    """Each background rebuild of a live page (live_cache.Derived) as a sample ``rebuild``: wall and CPU."""
    from webcontrol.web.browse import live_cache

    start = live_cache.Derived._start_refresh

    def timed_start(self, scope, key, compute):
        def measured():
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return compute()
            finally:
                took = ((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000)
                with timed.lock:
                    timed.samples.append((f"rebuild {getattr(compute, '__qualname__', '?')}", *took))

        return start(self, scope, key, measured)

    live_cache.Derived._start_refresh = timed_start


# The collector ------------------------------------------------------------------------------------


def leaves(tree: dict) -> list[list]:
    """Every leaf value ``[params, duration, logtail]`` of a running.json tree."""
    return [
        value
        for keys in tree.values()
        for releases in keys.values()
        for arches in releases.values()
        for value in arches.values()
    ]


def report(leaf: list, seconds: int) -> None:
    """A job's next status message: longer, with one more log line (the tail kept at ~2 kB)."""
    leaf[1] += seconds
    tail = leaf[2] + f"{leaf[1]:>5}s autopkgtest [10:00:00]: another line of output\n"
    if len(tail) > 2000:
        tail = tail[tail.index("\n", len(tail) - 2000) + 1 :]
    leaf[2] = tail


def write_running(path: Path, tree: dict) -> None:
    """As amqp-status-collector writes: the file and its index, renamed into place."""
    from webcontrol import liveindex
    from webcontrol.atomicfile import write_atomic

    data = json.dumps(tree, ensure_ascii=False, separators=(",", ":"))
    write_atomic(path, data, before_replace=lambda tmp: liveindex.write_running_index(tmp, path, tree))


def collector(path: str, interval: float, churn: int) -> None:
    """Child process: rewrite running.json every ``interval`` s, 1/``churn`` of the jobs changed each time."""
    target = Path(path)
    tree = json.loads(target.read_text())
    values = leaves(tree)
    turn = 0
    while True:
        started = time.monotonic()
        turn += 1
        for value in values[turn % churn :: churn]:
            report(value, int(interval * churn))
        write_running(target, tree)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


# Load ---------------------------------------------------------------------------------------------


def client(port: int, path: str, think: float, stop: threading.Event, seed: int, walls: list[float]) -> None:
    """One keep-alive connection asking for ``path`` until ``stop``; client wall times into ``walls``."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        walls.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            print(f"    {path}: HTTP {response.status}")
        stop.wait(think * rng.uniform(0.5, 1.5))
    conn.close()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_timings(port: int) -> list[tuple[str, float, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", TIMINGS)
    samples = json.loads(conn.getresponse().read())
    conn.close()
    return samples


class Site:
    """One tree's server (and its collector) over its own copy of the site."""

    def __init__(self, tree: Path, folder: Path, config_path: Path, db: str) -> None:
        self.tree, self.folder, self.db = tree, folder, db
        self.script = str(tree / "bench" / "live_rewrites.py")
        self.port = free_port()
        self.server = subprocess.Popen(
            [sys.executable, self.script, "--db", db, "--serve", str(config_path), str(self.port)]
        )
        self.writer: subprocess.Popen | None = None

    def collect(self, target: Path, interval: float, churn: int) -> None:
        """Start this tree's writer on ``target`` (with that tree's index writer, as its collector would)."""
        self.writer = subprocess.Popen(
            [sys.executable, self.script, "--db", self.db, "--collect", str(target)]
            + ["--interval", str(interval), "--churn", str(churn)]
        )

    def stop_collecting(self) -> None:
        if self.writer is not None:
            self.writer.terminate()
            self.writer.wait(10)
            self.writer = None

    def stop(self) -> None:
        self.stop_collecting()
        self.server.terminate()
        self.server.wait(10)


def phase(label: str, sites: list[Site], routes: list[tuple[str, int]], seconds: float, think: float) -> None:
    """The same clients on every site at once, so each sees the same load from the rest of the machine."""
    stop = threading.Event()
    walls: dict[tuple[int, str], list[float]] = {}
    threads = []
    for site in sites:
        fetch_timings(site.port)  # drop what came before
        for n, (path, count) in enumerate(routes):
            walls[(site.port, path)] = []
            for k in range(count):
                seed = n * 100 + k
                args = (site.port, path, think, stop, seed, walls[(site.port, path)])
                threads.append(threading.Thread(target=client, args=args))
    cpu_before = [process_cpu_s(site.server.pid) for site in sites]
    load_before = os.getloadavg()[0]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    print(
        f"{label}: {seconds:.0f} s; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    for site, before in zip(sites, cpu_before, strict=True):
        cpu = process_cpu_s(site.server.pid) - before
        samples = fetch_timings(site.port)
        print(f" tree {site.tree}:")
        print(
            f"  {'route':<18} {'n':>5} {'wall p50':>9} {'p95':>7} {'p99':>7} {'max':>7} {'CPU p50':>8} {'p95':>6}"
            f" {'client p95':>10}  (ms)"
        )
        for path, _n in routes:
            wall = sorted(w for p, w, _c in samples if p == path)
            cpu_ms = sorted(c for p, _w, c in samples if p == path)
            if not wall:
                continue
            print(
                f"  {path:<18} {len(wall):>5} {statistics.median(wall):>9.1f} {percentile(wall, 0.95):>7.1f}"
                f" {percentile(wall, 0.99):>7.1f} {wall[-1]:>7.1f} {statistics.median(cpu_ms):>8.1f}"
                f" {percentile(cpu_ms, 0.95):>6.1f} {percentile(sorted(walls[(site.port, path)]), 0.95):>10.1f}"
            )
        rebuilds = sorted({p for p, _w, _c in samples if p.startswith("rebuild")})
        for kind in (*rebuilds, "gc0", "gc1", "gc2"):
            took = sorted(w for p, w, _c in samples if p == kind)
            if took:
                cpu_total = sum(c for p, _w, c in samples if p == kind)
                print(
                    f"  {kind:<40} n={len(took):<4} wall total {sum(took):7.1f} ms,"
                    f" median {statistics.median(took):6.1f} max {took[-1]:6.1f}"
                    + (f"; CPU total {cpu_total:7.1f} ms" if kind.startswith("rebuild") else "")
                )
        in_requests = sum(c for p, _w, c in samples if p.startswith("/")) / 1000
        print(
            f"  server process CPU: {cpu:.1f} s over {seconds:.0f} s ({cpu / seconds:.0%} of one core),"
            f" {in_requests:.1f} s of it in request threads, {cpu - in_requests:.1f} s elsewhere (rebuilds, server)"
        )


# Where a rebuild's time goes ------------------------------------------------------------------------


def profile(config_path: Path, rebuilds: int) -> None:
    """In this process: CPU of the rebuild of each live route for a new version, and its top functions.

    REFRESH_MIN_S is set to 0 so the rebuild runs in the request that finds the
    new version, where cProfile sees it (in a server it runs in a thread).
    """
    import cProfile
    import io
    import pstats

    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app, live_data

    cache = config_path.parent / "cache"
    tree = json.loads((cache / "running.json").read_text())
    values = leaves(tree)
    client_app = create_app(configmod.load(str(config_path))).test_client()
    urls = ["/running", "/api/v1/running", "/admin", "/api/v1/admin", "/api/v1/running/status"]
    for url in urls:
        client_app.get(url).get_data()
    live_data.REFRESH_MIN_S = 0.0
    profiler = cProfile.Profile(time.thread_time)
    cpu: dict[str, list[float]] = {url: [] for url in urls}
    for turn in range(1, rebuilds + 1):
        for value in values[turn % 10 :: 10]:
            report(value, 5)
        write_running(cache / "running.json", tree)
        for url in urls:
            started = time.thread_time()
            client_app.get(url).get_data()
            cpu[url].append((time.thread_time() - started) * 1000)
        started = time.thread_time()
        profiler.enable()
        for url in urls:
            client_app.get(url).get_data()  # cached now: only what a request itself costs
        profiler.disable()
    for turn in range(rebuilds + 1, 2 * rebuilds + 1):
        for value in values[turn % 10 :: 10]:
            report(value, 5)
        write_running(cache / "running.json", tree)
        profiler.enable()
        for url in urls:
            client_app.get(url).get_data()
        profiler.disable()
    print(f"CPU of the first request after a rewrite (1/10 of {len(values):,} jobs changed), {rebuilds} rewrites:")
    for url, values_ms in cpu.items():
        values_ms.sort()
        print(f"  {url:<24} median {statistics.median(values_ms):6.1f} ms  max {values_ms[-1]:6.1f} ms")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"webcontrol|orjson|json|jinja|gc", 25)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--queued", type=int, default=50_000)
    parser.add_argument("--running", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of /running (default 4)")
    parser.add_argument("--think", type=float, default=0.1, help="seconds each client waits between requests")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two rewrites of running.json")
    parser.add_argument("--churn", type=int, default=10, help="1/N of the jobs change per rewrite (default 10)")
    parser.add_argument("--profile", action="store_true", help="profile rebuilds in this process instead")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        help="serve this source tree (with this script copied into its bench/); repeat to compare trees side by side",
    )
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--collect", metavar="RUNNING_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.collect:
        collector(args.collect, args.interval, args.churn)
        return
    trees = [Path(tree).resolve() for tree in args.tree] or [Path(__file__).resolve().parents[1]]
    folders = [Path(tempfile.mkdtemp(prefix="live-rewrites-")) for _tree in trees]
    sites: list[Site] = []
    try:
        configs = [make_site(args.db, folder, args.queued, args.running) for folder in folders]
        print(f"DB {args.db}; {args.queued:,} queued, {args.running:,} running")
        if args.profile:
            profile(configs[0], 10)
            return
        for tree, folder, config_path in zip(trees, folders, configs, strict=True):
            sites.append(Site(tree, folder, config_path, args.db))
        for site in sites:
            wait_for_port(site.port)
        routes = [("/running", args.clients), ("/api/v1/running", 1), ("/", 1)]
        print(
            f"{len(sites)} server(s), werkzeug threaded; clients per server: {args.clients} on /running, 1 on"
            f" /api/v1/running, 1 on /; think {args.think} s"
        )
        phase("warm-up", sites, routes, 5, args.think)
        phase("quiet (no rewrites)", sites, routes, args.seconds, args.think)
        # The same writers on copies the servers do not read: what the writers' own CPU costs the
        # machine, without a rebuild in the servers.
        for site in sites:
            elsewhere = site.folder / "elsewhere"
            elsewhere.mkdir()
            shutil.copyfile(site.folder / "cache" / "running.json", elsewhere / "running.json")
        for label, name in (
            ("control (the same rewrites of a file the server does not read)", "elsewhere"),
            (f"rewrites (running.json every {args.interval} s, 1/{args.churn} of jobs changed)", "cache"),
        ):
            try:
                for site in sites:
                    site.collect(site.folder / name / "running.json", args.interval, args.churn)
                time.sleep(1)
                phase(label, sites, routes, args.seconds, args.think)
            finally:
                for site in sites:
                    site.stop_collecting()
    finally:
        for site in sites:
            site.stop()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
