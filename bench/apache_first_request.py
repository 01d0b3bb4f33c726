#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a new WSGI daemon's first request costs under Apache, with and without preloading the apps.

Usage: AUTOPKGTEST_WEB_APACHE_VENV=/var/cache/autopkgtest-web/apache-venv-<branch> \\
       python bench/apache_first_request.py --db /var/tmp/bench-dbs/big10m-pub.db [--rounds 5]

Apache recycles mod_wsgi daemon processes. The shipped site
(deploy/apache2/autopkgtest-web.conf) has each daemon load browse.cgi and
request.cgi when it starts (``WSGIImportScript``); ``without`` is the same
site with those lines taken out, so the first request a daemon takes pays
the imports. Each round starts Apache (one daemon, one thread) once per
variant, turn about, on the site of bench/apache_load.py (``--queued``
requests, ``--running`` jobs), lets the daemon settle (its CPU time stays put
for ``--settle`` seconds, after it logged loading both apps with the
preload), then times one request of ``--path`` and reads the daemon's CPU time before and after.

Printed per variant: median and range of the first request's wall time
and of the daemon's CPU for it, and the daemon's CPU before any request
(what the preload moved out of the request).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import apache_load  # noqa: E402
import browse_latency  # noqa: E402

from tests.deploy import apache  # noqa: E402

PRELOAD = re.compile(r"^\s*WSGIImportScript\b.*$", re.M)
LOADED = re.compile(r"Loading Python script file '[^']*/(browse|request)\.cgi'")


def site_config_without_preload(folder: Path) -> Path:
    text = apache.SITE_CONFIG.read_text()
    if not PRELOAD.search(text):
        raise SystemExit(f"{apache.SITE_CONFIG} has no WSGIImportScript line to take out")
    path = folder / "autopkgtest-web-without-preload.conf"
    path.write_text(PRELOAD.sub("", text))
    return path


def loads_logged(base: Path) -> int:
    return sum(
        len(LOADED.findall(path.read_text(errors="replace"))) for path in (base / "logs").glob("*.log") if path.exists()
    )


def settle_until_idle(server: apache.ApacheServer, quiet: float, deadline: float) -> None:
    """Wait until the daemons' CPU time has not moved for ``quiet`` seconds."""
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        used = apache_load.cpu_seconds(apache_load.daemon_pids(server.proc.pid))
        if used != last:
            last, since = used, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)
    raise SystemExit(f"the daemons did not settle:\n{server.log_tail()}")


def one_start(variant: str, site_config: Path, venv: Path, code: Path, defines: dict, path: str, settle: float):
    """Start Apache, wait until the daemon is idle and ready, time one request: (wall ms, CPU ms, CPU ms idle)."""
    base = apache.make_shared_tmpdir(f"apache-first-{variant}-")
    apache.SITE_CONFIG = site_config
    server = apache.ApacheServer(base, venv, code, {**defines, "PROCESSES": "1", "THREADS": "1"})
    try:
        server.start()
        deadline = time.monotonic() + 60
        if variant == "preload":
            # mod_wsgi logs a load when it starts it: then the daemon is busy until its CPU time stays put.
            while loads_logged(base) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            if loads_logged(base) < 2:
                raise SystemExit(f"the daemon did not log loading both apps:\n{server.log_tail()}")
        settle_until_idle(server, settle, deadline)
        pids = apache_load.daemon_pids(server.proc.pid)
        idle = apache_load.cpu_seconds(pids)
        started = time.perf_counter()
        status, body = apache_load.fetch(server.port, path)
        wall = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"{path} answered {status}:\n{server.log_tail()}")
        used = apache_load.cpu_seconds(pids) - idle
        return wall * 1000, used * 1000, idle * 1000
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--rounds", type=int, default=5, help="Apache starts per variant (default 5)")
    parser.add_argument("--path", default="/", help="the first request's path (default /)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds the daemon's CPU time must stay put before the request"
    )
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json (default 50,000)")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json (default 2,000)")
    args = parser.parse_args()
    apache_load.check_tools()
    work = apache.make_shared_tmpdir("apache-first-request-")
    shipped = apache.SITE_CONFIG
    try:
        config = browse_latency.make_site(args.db, work / "site", args.queued, args.running)
        without = site_config_without_preload(work)
        if os.geteuid() == 0:
            for item in (work, *work.rglob("*")):
                shutil.chown(item, user=apache.APACHE_USER, group=apache.APACHE_GROUP)
        defines = {
            "CONF": str(config),
            "PUBLIC_DB": os.path.abspath(args.db),
            "RUNNING_JSON": str(work / "site" / "cache" / "running.json"),
        }
        figures = {"preload": [], "without": []}
        with apache.venv_lock() as venv:
            apache.prepare_locked(venv)
            code = apache.install_project(venv)
            for round_number in range(args.rounds):
                for variant, site_config in (("preload", shipped), ("without", without)):
                    figures[variant].append(
                        one_start(variant, site_config, venv, code, defines, args.path, args.settle)
                    )
                print(f"round {round_number + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", flush=True)
        print(
            f"DB {args.db}; first request {args.path}; {args.rounds} Apache starts per variant;"
            f" load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"{'variant':<9} {'wall ms median (min..max)':>28} {'CPU ms median (min..max)':>28} {'CPU ms at start':>16}"
        )
        for variant, rows in figures.items():
            walls, cpus, idles = zip(*rows, strict=True)
            print(
                f"{variant:<9} {statistics.median(walls):>10.0f} ({min(walls):.0f}..{max(walls):.0f})".ljust(38)
                + f" {statistics.median(cpus):>10.0f} ({min(cpus):.0f}..{max(cpus):.0f})".ljust(29)
                + f" {statistics.median(idles):>10.0f}"
            )
    finally:
        apache.SITE_CONFIG = shipped
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
