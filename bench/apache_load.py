#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Requests per second of browse.cgi under a real Apache + mod_wsgi, loaded by wrk.

Usage: AUTOPKGTEST_WEB_APACHE_VENV=/var/cache/autopkgtest-web/apache-venv-<branch> \\
       python bench/apache_load.py --db /var/tmp/bench-dbs/big2m.db [--duration 20] [--only home,running]

Apache runs on 127.0.0.1 with the shipped site (deploy/apache2/autopkgtest-web.conf),
set up by tests/deploy/apache.py, with the deployment's pool (``processes=4
threads=8`` unless told otherwise) and Apache's environment from the shipped
systemd drop-in (deploy/apache2/apache2.service.d/), over the DB and live files of ``--queued``
requests and ``--running`` jobs as bench/browse_latency.py builds them (each
with the index its writer makes). For each route, ``wrk`` with
``--connections`` connections for ``--duration`` seconds; printed per route:
requests per second, wrk's latency median and p99, non-2xx answers and socket
errors, the WSGI daemons' total RSS after the route and their CPU time per
request (user + system, over the wrk run; it includes the /running samples
below, about one a second).

Features must not be dropped under load: while each route is loaded, a
separate client fetches ``/running`` once a second and counts the stuck-job
hints on it (the same count as on an idle server is expected), and at the end
the lines "no average durations for the stuck-job hints" in Apache's error
logs are counted (0 expected).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import browse_latency  # noqa: E402

from tests.deploy import apache  # noqa: E402

DEFAULT_ROUTES = (
    "home",
    "package",
    "package/release",
    "history p1",
    "run/<uuid>",
    "recent",
    "recent.json legacy",
    "user (heavy)",
    "release",
    "statistics",
    "testlist",
    "running",
    "running json",
    "admin",
)
HINT = 'class="hint"'
DROPPED_HINTS = "no average durations for the stuck-job hints"


def _children(parent: int) -> list[tuple[int, bool]]:
    """``(pid, is a mod_wsgi daemon)`` of the processes whose parent is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                name = handle.read().split(b"\0")[0]
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append((int(entry), name.startswith(b"(wsgi:")))
    return sorted(found)


def daemon_pids(parent: int) -> list[int]:
    """The mod_wsgi daemon processes of the Apache started as ``parent`` (named ``(wsgi:<group>)``)."""
    return [pid for pid, daemon in _children(parent) if daemon]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (from /proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def apache_pids(parent: int) -> list[int]:
    """Apache itself: the parent and its worker children (not the WSGI daemons)."""
    return [parent] + [pid for pid, daemon in _children(parent) if not daemon]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def anon_mb(pid: int) -> float:
    """The process's anonymous (heap) memory: RSS less the mapped files shared with the other daemons."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def fetch(port: int, path: str, timeout: float = 120) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def lua_script(paths: list[str], folder: Path) -> Path:
    """A wrk script that cycles through ``paths``."""
    quoted = ", ".join(json.dumps(path) for path in paths)
    script = folder / f"paths-{abs(hash(tuple(paths)))}.lua"
    script.write_text(
        f"local paths = {{{quoted}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n  return wrk.format('GET', paths[(n % #paths) + 1])\nend\n"
    )
    return script


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, paths: list[str], connections: int, duration: int, folder: Path) -> dict:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "30s"]
    if len(paths) > 1:
        argv += ["-s", str(lua_script(paths, folder))]
    done = subprocess.run([*argv, f"http://127.0.0.1:{port}{paths[0]}"], capture_output=True, text=True)
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(out)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rate": float(rate.group(1)) if rate else float("nan"),
        "requests": int(count.group(1)) if count else 0,
        "p50": latency.get("50", float("nan")),
        "p99": latency.get("99", float("nan")),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "raw": out if not rate else "",
    }


class HintSampler(threading.Thread):
    """Fetches /running once a second while a route is loaded; records the stuck-job hints on each answer."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.counts: list[int] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                status, body = fetch(self.port, "/running")
            except OSError:
                self.failures += 1
                continue
            if status != 200:
                self.failures += 1
                continue
            self.counts.append(body.count(HINT.encode()))


def dropped_hint_lines(logs: Path) -> int:
    count = 0
    for path in logs.glob("*.log"):
        count += path.read_text(errors="replace").count(DROPPED_HINTS)
    return count


def check_tools() -> None:
    """Exit with the reason when Apache with mod_wsgi or wrk is missing."""
    reason = apache.apache_available()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")


def add_load_options(parser: argparse.ArgumentParser, duration: int) -> None:
    """The options of the load and of the pool, shared with bench/apache_floor.py."""
    parser.add_argument("--duration", type=int, default=duration, help=f"seconds of wrk per URL (default {duration})")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--processes", type=int, default=4, help="WSGI daemon processes (default 4)")
    parser.add_argument("--threads", type=int, default=8, help="threads per daemon process (default 8)")
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json (default 50,000)")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json (default 2,000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    add_load_options(parser, duration=20)
    parser.add_argument("--only", help=f"comma-separated route names (default: {', '.join(DEFAULT_ROUTES)})")
    parser.add_argument("--keep", action="store_true", help="keep the site folder and Apache's logs")
    args = parser.parse_args()
    check_tools()
    every = browse_latency.pages(args.db)
    names = args.only.split(",") if args.only else list(DEFAULT_ROUTES)
    unknown = [name for name in names if name not in every]
    if unknown:
        raise SystemExit(f"unknown routes: {', '.join(unknown)} (known: {', '.join(every)})")
    base = apache.make_shared_tmpdir("apache-load-")
    try:
        config = browse_latency.make_site(args.db, base / "site", args.queued, args.running)
        if os.geteuid() == 0:
            # The WSGI daemons run as www-data: they write the state folder (session key) and read the rest.
            for path in (base, *base.rglob("*")):
                shutil.chown(path, user=apache.APACHE_USER, group=apache.APACHE_GROUP)
        cache = base / "site" / "cache"
        with apache.venv_lock() as venv:
            apache.prepare_locked(venv)
            code = apache.install_project(venv)
            server = apache.ApacheServer(
                base,
                venv,
                code,
                {
                    "CONF": str(config),
                    "PUBLIC_DB": os.path.abspath(args.db),
                    "RUNNING_JSON": str(cache / "running.json"),
                    "PROCESSES": str(args.processes),
                    "THREADS": str(args.threads),
                },
            )
            server.start()
            try:
                measure(server, every, names, args, base)
            finally:
                server.stop()
                if args.keep:
                    print(f"kept {base}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def measure(server: apache.ApacheServer, every: dict, names: list[str], args, base: Path) -> None:
    port = server.port
    # Every daemon loads the app on its first request: spread a few requests so that all do.
    for _n in range(args.processes * 4):
        fetch(port, "/")
    pids = daemon_pids(server.proc.pid)
    start_rss = rss_mb(pids)
    status, body = fetch(port, "/running")
    idle_hints = body.count(HINT.encode()) if status == 200 else -1
    print(
        f"DB {args.db}; {args.queued:,} queued, {args.running:,} running; Apache mod_wsgi processes={args.processes}"
        f" threads={args.threads}; wrk {args.connections} connections, {args.duration} s per route;"
        f" load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"WSGI daemons {pids}: {start_rss:.0f} MB RSS after start-up; /running idle shows {idle_hints} hints")
    print(
        f"{'route':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>7}"
        f" {'RSS MB':>7} {'CPU ms/req':>10} {'/running hints under load (min..max, n)':>40}"
    )
    rates = {}
    for name in names:
        paths = every[name]
        for path in paths[:3]:
            fetch(port, path)  # warm: per-process caches, as in production
        sampler = HintSampler(port)
        serving = daemon_pids(server.proc.pid)
        cpu_before = cpu_seconds(serving)
        sampler.start()
        found = run_wrk(port, paths, args.connections, args.duration, base)
        sampler.stop.set()
        sampler.join(150)
        # The WSGI daemons' CPU per request: unlike req/s, hardly moved by what else loads the machine.
        cpu_ms = (cpu_seconds(serving) - cpu_before) * 1000 / max(1, found["requests"])
        counts = sampler.counts
        hints = f"{min(counts)}..{max(counts)}, n={len(counts)}" if counts else "none answered"
        if sampler.failures:
            hints += f", {sampler.failures} failed"
        rates[name] = found["rate"]
        print(
            f"{name:<20} {found['rate']:>8.1f} {found['p50']:>8.1f} {found['p99']:>8.1f} {found['non_2xx']:>8}"
            f" {found['errors']:>7} {rss_mb(daemon_pids(server.proc.pid)):>7.0f} {cpu_ms:>10.2f} {hints:>40}"
        )
        if found["raw"]:
            print(found["raw"])
    end_pids = daemon_pids(server.proc.pid)
    print(
        f"WSGI daemons {end_pids}: {start_rss:.0f} MB at start, {rss_mb(end_pids):.0f} MB at the end;"
        f" median req/s over routes {statistics.median(rates.values()):.1f}"
    )
    print(
        "per daemon at the end, MB RSS (anonymous):",
        ", ".join(f"{pid} {rss_mb([pid]):.0f} ({anon_mb(pid):.0f})" for pid in end_pids),
    )
    print(f'error log lines "{DROPPED_HINTS}": {dropped_hint_lines(base / "logs")}')
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
