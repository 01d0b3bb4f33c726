#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a browse request's CPU goes: one route, many requests, straight through the WSGI app.

Usage: python bench/route_profile.py --db /var/tmp/bench-dbs/big10m-pub.db --route home [--route /no-such-page]
       [--requests 2000] [--top 25]

The app is called as mod_wsgi calls it (``app(environ, start_response)``,
body iterated and closed), with an environ made once per URL and copied per
request, so neither a test client nor a server adds to the figures. The site
and live files are those of bench/browse_latency.py (``--queued`` requests,
``--running`` jobs). A route is a name of bench/browse_latency.py (``home``,
``run/<uuid>``, ``package`` ...) or a path; ``run first views`` asks for the
pages of ``--requests`` uuids never asked before (nothing kept yet), newest
first, and prints the median and p95 of passing and of failing runs apart
(a failing run's page also compares its testbed with the last pass). Printed per route:

- thread CPU per request (median of 5 rounds of ``--requests``/5), with no profiler;
- ``os.stat`` calls per request (every file-version check is one);
- the top functions by own time and the project's functions by cumulative
  time under cProfile (thread CPU), which inflates small functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import browse_latency  # noqa: E402


def environ_for(path: str) -> dict:
    """The WSGI environ of a GET of ``path`` from 127.0.0.1, as a server hands it over."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path=path.split("?", 1)[0],
        query_string=path.split("?", 1)[1] if "?" in path else "",
        base_url="http://127.0.0.1/",
        headers={"User-Agent": "route_profile", "Accept": "*/*"},
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    return environ


class Caller:
    """Calls the WSGI app on copies of prepared environs; counts os.stat calls."""

    def __init__(self, app) -> None:
        self.app = app
        self.environs: dict[str, dict] = {}
        self.status = ""
        self.stats = 0
        real_stat = os.stat

        def counted_stat(*args, **kwargs):
            self.stats += 1
            return real_stat(*args, **kwargs)

        os.stat = counted_stat

    def start_response(self, status, headers, exc_info=None):
        self.status = status
        return lambda data: None

    def get(self, path: str) -> int:
        if path not in self.environs:
            self.environs[path] = environ_for(path)
        environ = dict(self.environs[path])
        environ["wsgi.input"] = io.BytesIO()
        body = self.app(environ, self.start_response)
        size = 0
        try:
            for chunk in body:
                size += len(chunk)
        finally:
            if hasattr(body, "close"):
                body.close()
        return size


def profile_route(caller: Caller, name: str, paths: list[str], requests: int, top: int) -> None:
    for path in paths[:3] * 3:
        caller.get(path)
    rounds = []
    per_round = max(1, requests // 5)
    stats_before = caller.stats
    for _round in range(5):
        started = time.thread_time()
        for n in range(per_round):
            caller.get(paths[n % len(paths)])
        rounds.append((time.thread_time() - started) * 1000 / per_round)
    stats = (caller.stats - stats_before) / (5 * per_round)
    size = caller.get(paths[0])
    print(
        f"\n== {name} ({paths[0]}{' ...' if len(paths) > 1 else ''}): {caller.status}, {size:,} bytes;"
        f" CPU {statistics.median(rounds):.3f} ms/request (rounds {', '.join(f'{r:.3f}' for r in rounds)});"
        f" os.stat {stats:.1f}/request; load {os.getloadavg()[0]:.1f}"
    )
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for n in range(requests):
        caller.get(paths[n % len(paths)])
    profiler.disable()
    out = io.StringIO()
    report = pstats.Stats(profiler, stream=out)
    report.sort_stats("tottime").print_stats(top)
    report.sort_stats("cumtime").print_stats("webcontrol/|templates/", top)
    for line in out.getvalue().splitlines():
        if line.strip() and not line.startswith(("   Ordered by", "   List reduced")):
            print(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/", "")[:170])


def first_views(caller: Caller, db_path: str, requests: int, top: int) -> None:
    """Pages of runs never asked for before, by verdict, then a profile of as many others."""
    import sqlite3

    from webcontrol import results

    conn = sqlite3.connect(f"file:{os.path.abspath(db_path)}?mode=ro", uri=True)
    found = conn.execute(
        "SELECT uuid, exitcode FROM result WHERE uuid IS NOT NULL AND uuid != '' ORDER BY run_id DESC LIMIT ?",
        (2 * requests + 50,),
    ).fetchall()
    conn.close()
    for uuid, _code in found[:50]:
        caller.get(f"/run/{uuid}")
    times: dict[str, list[float]] = {}
    for uuid, code in found[50 : 50 + requests]:
        started = time.thread_time()
        caller.get(f"/run/{uuid}")
        times.setdefault(results.verdict(code), []).append((time.thread_time() - started) * 1000)
    print(f"\n== run first views ({requests} uuids, each asked once); load {os.getloadavg()[0]:.1f}")
    for verdict, values in sorted(times.items()):
        values.sort()
        print(
            f"  {verdict:8} n={len(values):5}  CPU median {statistics.median(values):.3f} ms,"
            f" p95 {browse_latency.percentile(values, 0.95):.3f} ms"
        )
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for uuid, _code in found[50 + requests :]:
        caller.get(f"/run/{uuid}")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    for line in out.getvalue().splitlines():
        if line.strip() and not line.startswith(("   Ordered by", "   List reduced")):
            print(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/", "")[:170])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json)")
    parser.add_argument("--route", action="append", required=True, help="route name or path (repeatable)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per route, timed and profiled")
    parser.add_argument("--top", type=int, default=20, help="functions shown per table")
    parser.add_argument("--queued", type=int, default=50_000, help="queued requests in queued.json")
    parser.add_argument("--running", type=int, default=2_000, help="running jobs in running.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="route-profile-"))
    try:
        config_path = browse_latency.make_site(args.db, folder, args.queued, args.running)
        from webcontrol import config as configmod
        from webcontrol.web.browse import create_app

        caller = Caller(create_app(configmod.load(str(config_path))))
        known = browse_latency.pages(args.db)
        print(f"DB {args.db}; {args.queued:,} queued, {args.running:,} running; load {os.getloadavg()[0]:.1f}")
        for route in args.route:
            if route == "run first views":
                first_views(caller, args.db, args.requests, args.top)
            else:
                profile_route(caller, route, known.get(route, [route]), args.requests, args.top)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
