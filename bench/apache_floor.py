#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor of the stack: requests per second of trivial apps under the same Apache + mod_wsgi as browse.cgi.

Usage: AUTOPKGTEST_WEB_APACHE_VENV=/var/cache/autopkgtest-web/apache-venv-<branch> \\
       python bench/apache_floor.py --db /var/tmp/<branch>/big2m.db [--duration 15] [--apps raw,flask,ours]

Each app is served in turn by the shipped site (deploy/apache2/autopkgtest-web.conf,
set up by tests/deploy/apache.py, ``processes=4 threads=8`` unless told
otherwise): the floor apps stand in for ``browse.cgi`` in a code folder of
their own, so Apache, mod_wsgi, mod_deflate, the daemon pool and the
virtualenv are the very ones the site uses. Apps:

- ``raw``: a bare WSGI callable returning a small static HTML body;
- ``raw-home``: the same with a body as long as the home page's (what Apache,
  mod_wsgi and mod_deflate cost for that many bytes);
- ``flask``: a minimal Flask app, one route returning the small body;
- ``ours``: browse.cgi itself on the bench site of bench/apache_load.py, its
  cheapest answers (an HTML 404 and a JSON 404) and ``/``.

For each, wrk with ``--connections`` connections for ``--duration`` seconds;
printed: requests per second, wrk's latency median and p99, and CPU time per
request of the WSGI daemons and of Apache's own processes (user + system, from
/proc, over the wrk run: less moved by other load on the machine than req/s).
The floor apps are bench code, never part of the package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import apache_load  # noqa: E402
import browse_latency  # noqa: E402

from tests.deploy import apache  # noqa: E402

SMALL_BODY = "<!DOCTYPE html><html><head><title>floor</title></head><body><p>Hello from the floor.</p></body></html>\n"

RAW_APP = """# A bare WSGI app: the floor of Apache + mod_wsgi (bench/apache_floor.py).
BODY = {body!r}.encode()
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
"""

FLASK_APP = """# A minimal Flask app: the floor of Flask under Apache + mod_wsgi (bench/apache_floor.py).
import flask

application = flask.Flask(__name__)


@application.route("/")
def home():
    return {body!r}
"""

APPS = ("raw", "raw-home", "flask", "ours")


def home_body(db: str) -> str:
    """A body as long as the home page's, of text like it (so mod_deflate has as much to do)."""
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    folder = apache.make_shared_tmpdir("apache-floor-home-")
    try:
        config = browse_latency.make_site(db, folder / "site", 100, 10)
        return create_app(configmod.load(str(config))).test_client().get("/").get_data(as_text=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def floor_code(base: Path, source: str) -> Path:
    """A code folder standing in for the installed webcontrol one: browse.cgi is ``source``."""
    code = base / "code"
    (code / "web" / "static").mkdir(parents=True)
    (code / "browse.cgi").write_text(source)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py (with its .json), for 'ours'")
    apache_load.add_load_options(parser, duration=15)  # --queued and --running: for "ours"
    parser.add_argument("--apps", default=",".join(APPS), help=f"comma-separated, of {', '.join(APPS)}")
    args = parser.parse_args()
    apache_load.check_tools()
    apps = args.apps.split(",")
    unknown = [app for app in apps if app not in APPS]
    if unknown:
        raise SystemExit(f"unknown apps: {', '.join(unknown)} (known: {', '.join(APPS)})")
    print(
        f"Apache mod_wsgi processes={args.processes} threads={args.threads}; wrk {args.connections} connections,"
        f" {args.duration} s per URL; load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'app':<10} {'URL':<22} {'bytes':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8}"
        f" {'WSGI CPU ms/req':>16} {'Apache CPU ms/req':>18} {'load':>5}"
    )
    with apache.venv_lock() as venv:
        apache.prepare_locked(venv)
        installed = apache.install_project(venv) if "ours" in apps else None
        for app in apps:
            base = apache.make_shared_tmpdir(f"apache-floor-{app}-")
            try:
                defines = {"PROCESSES": str(args.processes), "THREADS": str(args.threads)}
                if app == "ours":
                    config = browse_latency.make_site(args.db, base / "site", args.queued, args.running)
                    defines.update(CONF=str(config), PUBLIC_DB=os.path.abspath(args.db))
                    code, urls = installed, ["/no-such-page", "/api/v1/no-such-page", "/"]
                else:
                    body = home_body(args.db) if app == "raw-home" else SMALL_BODY
                    template = FLASK_APP if app == "flask" else RAW_APP
                    code, urls = floor_code(base, template.format(body=body)), ["/"]
                apache.give_to_apache_user(apache.tree(base))
                server = apache.ApacheServer(base, venv, code, defines)
                server.start()
                try:
                    for url in urls:
                        measure(server, app, url, args, base)
                finally:
                    server.stop()
            finally:
                shutil.rmtree(base, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def measure(server: apache.ApacheServer, app: str, url: str, args, base: Path) -> None:
    # Every daemon loads the app on its first request: spread a few requests so that all do.
    for _n in range(args.processes * 4):
        _status, body = apache_load.fetch(server.port, url)
    daemons = apache_load.daemon_pids(server.proc.pid)
    own = apache_load.apache_pids(server.proc.pid)
    before = apache_load.cpu_seconds(daemons), apache_load.cpu_seconds(own)
    found = apache_load.run_wrk(server.port, [url], args.connections, args.duration, base)
    # Apache's event MPM may start workers during the run: count the ones alive at the end too.
    own_after = sorted(set(own) | set(apache_load.apache_pids(server.proc.pid)))
    requests = max(1, found["requests"])
    wsgi_ms = (apache_load.cpu_seconds(daemons) - before[0]) * 1000 / requests
    apache_ms = (apache_load.cpu_seconds(own_after) - before[1]) * 1000 / requests
    print(
        f"{app:<10} {url:<22} {len(body):>7} {found['rate']:>8.1f} {found['p50']:>7.1f} {found['p99']:>7.1f}"
        f" {found['non_2xx']:>8} {wsgi_ms:>16.3f} {apache_ms:>18.3f} {os.getloadavg()[0]:>5.1f}"
    )
    if found["raw"]:
        print(found["raw"])


if __name__ == "__main__":
    main()
