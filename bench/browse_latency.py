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
            headers = [
                *headers,
                ("X-Server-Ms", f"{(time.perf_counter() - wall) * 1000:.2f}"),
                ("X-Server-Cpu-Ms", f"{(time.thread_time() - cpu) * 1000:.2f}"),
            ]
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


def live_files(db_path: str, queued: int, running: int, seed: int = 1) -> tuple[dict, dict]:
    """``(queued.json, running.json)`` with ``queued`` requests and ``running`` jobs of the DB's packages.

    Packages are drawn from the DB (``hello`` and the heavy user among them), so package,
    history and user pages find live entries as in production; ~2 kB log tails.
    """
    import random

    from webcontrol import results

    rng = random.Random(seed)
    info = json.loads(Path(db_path + ".json").read_text())
    conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    tests = conn.execute("SELECT package, release, arch FROM test WHERE id % 7 = 0 LIMIT 20000").fetchall()
    conn.close()
    hello = tuple(info["history"])
    users = [info["heavy_user"], *(f"user{n}" for n in range(50))]
    queues: dict = {}
    for n in range(queued):
        package, release, arch = hello if n % 500 == 0 else rng.choice(tests)
        ctx = rng.choice(results.CONTEXTS)
        params = {
            "requester": rng.choice(users),
            "submit-time": "2026-11-29 09:00:00+0000",
            "triggers": [f"{package}/1.{n % 9}-1", rng.choice(["glibc/2.40-1", "perl/5.40-1"])],
        }
        if n % 3 == 0:
            params["uuid"] = f"00000000-0000-4000-9000-{n:012d}"
        if n % 97 == 0:
            text = "private job"
        else:
            text = f"{package}\n{json.dumps(params, sort_keys=True)}"
        entry = queues.setdefault(ctx, {}).setdefault(release, {}).setdefault(arch, {"size": 0, "requests": []})
        entry["requests"].append(text)
        entry["size"] += 1
    tail = "".join(f"{n}s autopkgtest [10:00:00]: some output line number {n}\n" for n in range(40))[:2000]
    tree: dict = {}
    for n in range(running):
        package, release, arch = hello if n % 200 == 0 else rng.choice(tests)
        params = {
            "requester": rng.choice(users),
            "submit-time": "2026-11-29 09:00:00+0000",
            "triggers": [f"{package}/1.{n % 9}-1"],
            "uuid": f"00000000-0000-4000-8000-{n:012d}",
        }
        value = [params, rng.randint(60, 40000), tail]
        tree.setdefault(package, {}).setdefault(results.run_key(params), {}).setdefault(release, {})[arch] = value
    return {"releases": info["releases"], "arches": [], "queues": queues}, tree


def make_site(db_path: str, folder: Path, queued: int = 0, running: int = 0, no_index: bool = False) -> Path:
    """A site folder and config for the DB; with ``queued``/``running``, synthetic live files of that size
    (else the recorded ones)."""
    from webcontrol import config as configmod

    cache = folder / "cache"
    cache.mkdir(parents=True)
    # An empty local result store: pages that read it find nothing, as for a run whose files are gone
    # (without the folder, each such read is a store failure logged on every request).
    (folder / "results").mkdir()
    if queued or running:
        queued_doc, running_doc = live_files(db_path, queued, running)
        for name, doc in (("queued.json", queued_doc), ("running.json", running_doc)):
            (cache / name).write_text(json.dumps(doc))
            if not no_index:
                write_derived(cache / name, doc)
    else:
        shutil.copyfile(DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.RUN_DATA.json", cache / "running.json")
        queues = json.loads((DATA / "ppa-dev-tools" / "queues-20220822.json").read_text())
        queued_doc = {
            "releases": [],
            "arches": [],
            "queues": {
                ctx: {
                    rel: {arch: {"size": len(items), "requests": items} for arch, items in arches.items()}
                    for rel, arches in rels.items()
                }
                for ctx, rels in queues.items()
            },
        }
        (cache / "queued.json").write_text(json.dumps(queued_doc))
    info = json.loads(Path(db_path + ".json").read_text())
    stats = {
        rel: {
            arch: {"numpkgs": 5000, "numpkgspass": 4000, "passruns": 100000, "failruns": 20000}
            for arch in ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"]
        }
        for rel in info["releases"]
    }
    (cache / "stats.json").write_text(json.dumps(stats))
    indexed = indexed_packages(db_path)
    values = {
        "web": {
            "indexed_packages": str(indexed),
            "database_public": os.path.abspath(db_path),
            "state_dir": str(folder / "state"),
            "runtime_dir": str(folder / "runtime"),
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


def write_derived(path: Path, doc: dict, tmp: Path | None = None) -> None:
    """What cache-amqp and the collector write next to their files: the lookup index (and, from
    cache-amqp, queues.json and queue_size.json). ``tmp``: the new file, not yet renamed to ``path``."""
    from webcontrol import liveindex

    if path.name == "running.json":
        liveindex.write_running_index(tmp or path, path, doc)
    elif hasattr(liveindex, "write_queue_listings"):
        listings = liveindex.write_queue_listings(path, doc)
        liveindex.write_queued_index(tmp or path, path, doc, listings)
    else:  # an older tree (the "before" of a comparison): index only
        liveindex.write_queued_index(tmp or path, path, doc)


def indexed_packages(db_path: str) -> Path:
    """The indexed-packages JSON publish-db writes beside a published DB (/testlist reads it).

    The generated DBs have no tested_version table, so the index is computed from every result
    (a full scan: ~30 s at 10M results); it is kept in the temp folder per DB version.
    """
    from webcontrol import tested_versions

    stat = os.stat(db_path)
    name = f"browse-bench-indexed-{Path(db_path).name}-{stat.st_mtime_ns}-{stat.st_size}.json"
    path = Path(tempfile.gettempdir()) / name
    if not path.exists():
        conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
        try:
            tested_versions.write_json(conn, path)
        finally:
            conn.close()
        os.chmod(path, 0o644)
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
    light = conn.execute("SELECT requester FROM result WHERE requester LIKE 'user%' LIMIT 1").fetchone()
    conn.close()
    prefix = info["prefix"]
    history = f"/packages/{prefix}/{package}/{release}/{arch}"
    user = f"/user/{info['heavy_user']}/"
    return {
        "home": ["/"],
        "package": [f"/packages/{package}"],
        "package/release": [f"/packages/{prefix}/{package}/{release}"],
        "package json": [f"/api/v1/packages/{package}"],
        "history p1": [history],
        "history p50": [f"{history}?before={row[0]}"],
        "history json": [f"/api/v1{history}"],
        "history 10000": [f"{history}?limit=10000"],
        "history 10000 json": [f"/api/v1{history}?limit=10000"],
        "recent": ["/recent"],
        "recent json": ["/api/v1/recent"],
        "recent.json legacy": ["/api/experimental/recent.json"],
        "recent 10000": ["/recent?limit=10000"],
        "recent 10000 json": ["/api/v1/recent?limit=10000"],
        "recent.json 10000": ["/api/experimental/recent.json?limit=10000"],
        "recent arch": [f"/recent?arch={arch}&limit=10"],
        "recent offset": ["/recent?offset=1000000&limit=10"],
        "user (heavy)": [user],
        "user (light)": [f"/user/{light[0] if light else 'user1'}/"],
        "user 10000": [f"{user}?limit=10000"],
        "user 10000 json": [f"/api/v1{user}?limit=10000"],
        "run/<uuid>": [f"/run/{uuid}" for uuid in info["uuids"]],
        "statistics": ["/statistics"],
        "testlist": ["/testlist"],
        "release": [f"/releases/{release}"],
        "running": ["/running"],
        "running json": ["/api/v1/running"],
        "running status": ["/api/v1/running/status"],
        "admin": ["/admin"],
        "admin json": ["/api/v1/admin"],
        "queue page": [f"/running/queue/ubuntu/{release}/{arch}"],
        "queues.json": ["/queues.json"],
        "queue_size.json": ["/queue_size.json"],
    }


#: Body size of the last response per path (measure()).
samples_bytes: dict[str, int] = {}


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
            samples_bytes[path] = len(body)
            mine.append(
                (
                    time.perf_counter() - started,
                    float(response.headers.get("X-Server-Ms", "nan")),
                    float(response.headers.get("X-Server-Cpu-Ms", "nan")),
                )
            )
            if response.status != 200:
                print(f"    {path}: HTTP {response.status}: {body[:100]!r}")
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


def _status_mb(pid: int, field: str) -> float:
    """A kB field of /proc/<pid>/status, in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def reset_peak_rss(pid: int | str = "self") -> None:
    """Start a new VmHWM window for a process (Linux clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass


def rewrite_live_files(cache: Path) -> None:
    """Rewrite queued.json and running.json (same content) as cache-amqp and the collector do."""
    from webcontrol import atomicfile

    for name in ("queued.json", "running.json"):
        target = cache / name
        if not (cache / (name + ".index")).exists():
            os.utime(target, ns=(time.time_ns(), time.time_ns()))  # an old writer: no index
            continue
        doc = json.loads(target.read_text())
        atomicfile.write_atomic(
            target, json.dumps(doc), before_replace=lambda tmp, t=target, d=doc: write_derived(t, d, Path(tmp))
        )


def in_process(config_path: Path, targets: dict[str, list[str]], count: int, profile: int, touch: bool) -> None:
    """Time each route through the WSGI app in this process: server time, peak RSS and body bytes.

    With ``touch``, the live files are rewritten as their writers do (with their
    indexes, untimed) before every request, so each request is the first one after
    cache-amqp or the collector wrote.
    """
    import cProfile
    import io
    import pstats

    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    app = create_app(configmod.load(str(config_path)))
    client = app.test_client()
    cache = config_path.parent / "cache"
    print(
        f"{'route':<20} {'median':>8} {'p95':>8} {'max':>8} {'TTFB':>7} {'CPU med':>8} {'CPU p95':>8}"
        f" {'peak RSS':>9} {'bytes':>11}  (ms, MB)"
    )
    slowest = []
    for name, paths in targets.items():
        for path in paths[:3]:
            client.get(path).close()
        times, first, cpu = [], [], []
        reset_peak_rss()
        size = 0
        for n in range(count):
            if touch:
                rewrite_live_files(cache)
            path = paths[n % len(paths)]
            started, started_cpu = time.perf_counter(), time.thread_time()
            response = client.get(path, buffered=False)
            chunks = iter(response.response)
            size = 0
            for number, chunk in enumerate(chunks):
                if number == 0:
                    first.append((time.perf_counter() - started) * 1000)
                size += len(chunk)
            response.close()
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            if response.status_code != 200:
                print(f"    {path}: HTTP {response.status_code}")
        times.sort()
        first.sort()
        cpu.sort()
        print(
            f"{name:<20} {statistics.median(times):>8.1f} {percentile(times, 0.95):>8.1f} {times[-1]:>8.1f}"
            f" {statistics.median(first) if first else float('nan'):>7.1f} {statistics.median(cpu):>8.1f}"
            f" {percentile(cpu, 0.95):>8.1f} {peak_rss_mb(os.getpid()):>9.0f}"
            f" {size:>11,}"
        )
        slowest.append((statistics.median(times), name, paths[0]))
    for _median, name, path in sorted(slowest, reverse=True)[:profile]:
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        for _n in range(5):
            client.get(path).get_data()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(5)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"profile of {name} ({path}), 5 requests, top 5 by own CPU time:")
        for line in lines[start : start + 6]:
            print("   ", line[:150])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page (default 200)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent client connections (default 1)")
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json (default 50,000)")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json (default 2,000)")
    parser.add_argument("--in-process", action="store_true", help="time the WSGI app in this process, no server")
    parser.add_argument("--touch", action="store_true", help="(in-process) rewrite the live files before each request")
    parser.add_argument("--profile", type=int, default=0, help="(in-process) cProfile the N slowest routes")
    parser.add_argument("--no-index", action="store_true", help="live files without their index (old writers)")
    parser.add_argument("--only", help="comma-separated route names to run")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    folder = Path(tempfile.mkdtemp(prefix="browse-bench-"))
    config_path = make_site(args.db, folder, args.queued, args.running, args.no_index)
    targets = pages(args.db)
    if args.only:
        targets = {name: paths for name, paths in targets.items() if name in args.only.split(",")}
    print(
        f"DB {args.db}; {args.queued:,} queued, {args.running:,} running; "
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if args.in_process:
        try:
            in_process(config_path, targets, args.requests, args.profile, args.touch)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--db", args.db, "--serve", str(config_path), str(port)])
    try:
        wait_for_port(port)
        print(
            f"server: werkzeug run_simple(threaded=True), pid {server.pid}; {args.clients} client(s); "
            f"{args.requests} requests per page after 10 warm-up"
        )
        print(f"{'':<20} {'client wall ms':^26} {'server wall ms':^17} {'server CPU ms':^17}")
        print(
            f"{'page':<20} {'median':>8} {'p95':>8} {'max':>8} {'median':>8} {'p95':>8} {'median':>8} {'p95':>8}"
            f" {'peak RSS':>9} {'bytes':>11}"
        )
        worst = 0.0
        for name, paths in targets.items():
            measure(port, paths, 10, 1)
            reset_peak_rss(server.pid)
            samples = measure(port, paths, args.requests, args.clients)
            row = []
            for column in range(3):
                values = sorted(sample[column] * (1000 if column == 0 else 1) for sample in samples)
                row.append((statistics.median(values), percentile(values, 0.95), values[-1]))
            worst = max(worst, row[0][1])
            print(
                f"{name:<20} {row[0][0]:>8.1f} {row[0][1]:>8.1f} {row[0][2]:>8.1f} {row[1][0]:>8.1f} {row[1][1]:>8.1f}"
                f" {row[2][0]:>8.1f} {row[2][1]:>8.1f} {peak_rss_mb(server.pid):>9.0f}"
                f" {samples_bytes.get(paths[0], 0):>11,}"
            )
        print(
            f"worst client p95: {worst:.1f} ms; server peak RSS: {peak_rss_mb(server.pid):.0f} MB "
            f"(since the last page's start), RSS now: {rss_mb(server.pid):.0f} MB; "
            f"load average after: {os.getloadavg()[0]:.1f}"
        )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
