#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start-up cost of browse.cgi: a fresh interpreter imports the app and serves its first request.

Usage: python bench/start_time.py --db /var/tmp/bench-dbs/big10m.db [--runs 20]

Apache recycles its WSGI daemon processes, and each new one pays the imports,
the app factory and whatever its first request builds (templates, caches)
before it answers. For each path (``/`` and a package page by default) this
runs ``--runs`` fresh ``python`` processes that load ``browse.cgi`` by path as
mod_wsgi does (``runpy.run_path``), call its ``application`` once with a
plain WSGI environ (config from ``AUTOPKGTEST_CLOUD_CONF``, as Apache's
``SetEnv`` gives it) and exit. The site is the one bench/browse_latency.py
builds: the DB plus live files of ``--queued`` requests and ``--running`` jobs.

Printed per path: median and p95 of the whole process's wall time and CPU
time (user + system of the child), and the child's own split: loading browse.cgi
(wall and CPU) and the first request (wall and CPU), whose sum is the
figure the target is about (the interpreter's own start-up comes on top). One untimed
process first fills the Jinja bytecode cache, as the first daemon of a
deployment does, and the modules' .pyc files (pip writes them at install time).
Target: under 300 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = r"""
import json, os, resource, sys, time
wall0, cpu0 = time.perf_counter(), time.process_time()
import runpy
namespace = runpy.run_path(sys.argv[1])
application = namespace["application"]
wall1, cpu1 = time.perf_counter(), time.process_time()
environ = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": sys.argv[2], "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": sys.stdin.buffer, "wsgi.errors": sys.stderr,
    "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    "AUTOPKGTEST_CLOUD_CONF": os.environ["AUTOPKGTEST_CLOUD_CONF"],
}
status = []
body = application(environ, lambda s, h, e=None: status.append(s))
size = sum(len(chunk) for chunk in body)
getattr(body, "close", lambda: None)()
wall2, cpu2 = time.perf_counter(), time.process_time()
print(json.dumps({"status": status[0], "bytes": size, "import_wall": wall1 - wall0, "import_cpu": cpu1 - cpu0,
                  "request_wall": wall2 - wall1, "request_cpu": cpu2 - cpu1,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_one(script: str, path: str, env: dict) -> dict:
    """One fresh process: its output, exit code and wall seconds (CPU: children_cpu() around it)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, script, path],
        env=env,
        cwd=ROOT,  # this checkout's webcontrol, whatever the interpreter has installed
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    return {"out": out, "err": err, "code": proc.returncode, "wall": wall}


def percentile(values: list[float], fraction: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--runs", type=int, default=20, help="fresh processes per path (default 20)")
    parser.add_argument("--path", action="append", help="request path (repeatable; default / and a package page)")
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json (default 50,000)")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json (default 2,000)")
    parser.add_argument("--importtime", action="store_true", help="print the 15 slowest imports of one process")
    args = parser.parse_args()

    import browse_latency

    info = json.loads(Path(args.db + ".json").read_text())
    paths = args.path or ["/", f"/packages/{info['history'][0]}"]
    folder = Path(tempfile.mkdtemp(prefix="start-bench-"))
    try:
        config = browse_latency.make_site(args.db, folder, args.queued, args.running)
        script = str(ROOT / "webcontrol" / "browse.cgi")
        env = {**os.environ, "AUTOPKGTEST_CLOUD_CONF": str(config)}
        # Deployed code has its .pyc files (pip compiles them at install time): the untimed first
        # process writes them here, as it fills the template cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(
            f"DB {args.db}; {args.queued:,} queued, {args.running:,} running; {args.runs} processes per path; "
            f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        if args.importtime:
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", CHILD, script, paths[0]],
                env=env,
                cwd=ROOT,
                capture_output=True,
            )
            rows = []
            for line in done.stderr.decode().splitlines():
                # "import time:  <own us> | <cumulative us> | <module>"
                fields = line.removeprefix("import time:").split("|")
                if len(fields) == 3 and fields[0].strip().isdigit():
                    rows.append((int(fields[1]), int(fields[0]), fields[2].rstrip()))
            print("slowest imports (cumulative us, own us, module):")
            for total, own, name in sorted(rows, reverse=True)[:15]:
                print(f"  {total:>9} {own:>8} {name}")
        print(
            f"{'path':<28} {'wall med':>9} {'wall p95':>9} {'CPU med':>8} {'CPU p95':>8}"
            f" {'import':>7} {'imp CPU':>8} {'request':>8} {'req CPU':>8} {'imp+req CPU':>12} {'RSS':>5} {'bytes':>9}"
            "  (ms, MB)"
        )
        for path in paths:
            run_one(script, path, env)  # fills the Jinja bytecode cache, as the first daemon does
            walls, cpus, imports, import_cpus, requests, request_cpus, rss = [], [], [], [], [], [], []
            size = 0
            for _n in range(args.runs):
                before = children_cpu()
                done = run_one(script, path, env)
                cpus.append((children_cpu() - before) * 1000)
                if done["code"] != 0:
                    raise SystemExit(f"child failed ({done['code']}): {done['err'].decode()[-2000:]}")
                figures = json.load(io.BytesIO(done["out"].splitlines()[-1]))
                if not figures["status"].startswith("200"):
                    print(f"    {path}: {figures['status']}")
                walls.append(done["wall"] * 1000)
                imports.append(figures["import_wall"] * 1000)
                import_cpus.append(figures["import_cpu"] * 1000)
                requests.append(figures["request_wall"] * 1000)
                request_cpus.append(figures["request_cpu"] * 1000)
                rss.append(figures["rss_mb"])
                size = figures["bytes"]
            print(
                f"{path:<28} {statistics.median(walls):>9.0f} {percentile(walls, 0.95):>9.0f}"
                f" {statistics.median(cpus):>8.0f} {percentile(cpus, 0.95):>8.0f}"
                f" {statistics.median(imports):>7.0f} {statistics.median(import_cpus):>8.0f}"
                f" {statistics.median(requests):>8.0f} {statistics.median(request_cpus):>8.0f}"
                f" {statistics.median([a + b for a, b in zip(import_cpus, request_cpus, strict=True)]):>12.0f}"
                f" {statistics.median(rss):>5.0f} {size:>9,}"
            )
        print(
            "wall/CPU: whole process (interpreter start to exit); import: loading browse.cgi (wall, CPU);"
            " request: the first request (wall, CPU); imp+req CPU: the two together."
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
