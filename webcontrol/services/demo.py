# SPDX-License-Identifier: GPL-3.0-or-later
"""autopkgtest-web-demo: the whole site on a generated local store.

The first run builds DIR through the real programs: demo results are written
into a local store as workers write them, download-all-results ingests them,
publish-db publishes against a generated ``file://`` archive, and
autopkgtest-stats and cache-ppa-containers run once. running.json and
queued.json are generated from status messages and queue bodies through the
same code the collectors use. Every run then serves browse.cgi, request.cgi
and private-results from one WSGI server on loopback, while simulated
workers (:mod:`webcontrol.demolive`) keep the queues, running jobs and
results moving, and the demo's own login service (:mod:`webcontrol.demosso`)
lets a visitor log in and submit requests to them. No network, RabbitMQ or
Swift is needed.

Ctrl-C or SIGTERM stops the demo at any point; a first run stopped while
building starts the build over next time.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from webcontrol import atomicfile, demodata, demolive, demosso
from webcontrol import config as configmod
from webcontrol.launchpad import Membership, TeamCache
from webcontrol.messages import StatusMessage, TestRequest, new_uuid, submit_time
from webcontrol.services.base import EXIT_FAILURE, ProgramError, run_program
from webcontrol.store.local import LocalStore

log = logging.getLogger(__name__)

RELEASES = ("jammy", "noble", "questing")
ARCHES = ("amd64", "arm64", "ppc64el", "s390x")
READY = ".demo-ready"
REQUEST_PATHS = ("/request.cgi", "/login", "/logout", "/github/webhook", "/retry", "/api/v1/retry")
REQUESTORS_TEAM = "autopkgtest-requestors"
#: What a build creates in DIR; removed before a build that an earlier stop left unfinished.
BUILD_ITEMS = ("data", "results", "run", "state", "archive", "alert")


def demo_config_values(root: Path, openid_provider: str | None = None) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, object]] = {
        "web": {
            "database": root / "data" / "autopkgtest.db",
            "database_public": root / "data" / "public" / "autopkgtest.db",
            "releases": " ".join(RELEASES),
            "results_store": "local",
            "results_dir": root / "results",
            "archive_url": (root / "archive").resolve().as_uri(),
            "amqp_queue_cache": root / "run" / "queued.json",
            "running_cache": root / "run" / "running.json",
            "stats_cache_dir": root / "run",
            "ppa_containers_cache_dir": root / "run",
            "indexed_packages": root / "run" / "indexed-packages.json",
            "state_dir": root / "state",
            "runtime_dir": root / "run",
            "allowed_requestors": REQUESTORS_TEAM,
            "team_cache": root / "run" / "team_cache.json",
            "alert": root / "alert",
        }
    }
    if openid_provider:
        values["web"]["openid_provider"] = openid_provider
    return values


def _run_step(name: str, main, config_path: Path, *extra: str) -> None:
    log.info("demo: running %s", name)
    code = main(["--config", str(config_path), *extra])
    if _stop_requested:
        # The program stopped early on our signal (and reported it as its own interruption).
        raise KeyboardInterrupt
    if code != 0:
        raise ProgramError(f"{name} failed with exit code {code} while building the demo")


def _running_json(runs: list[demodata.DemoRun], path: Path) -> None:
    """running.json from status messages, through the collector's own state rules."""
    from webcontrol.services.amqp_status_collector import RunningState

    rng = random.Random(7)
    state = RunningState()
    now = time.monotonic()
    for run in rng.sample(runs, 6):
        params = {"triggers": run.triggers.split(), "submit-time": submit_time(), "uuid": new_uuid()}
        if run.requester:
            params["requester"] = run.requester
        elapsed = rng.randint(30, 5000)
        tail = "".join(f"{elapsed - 40 + i * 10:>4}s autopkgtest: running test step {i}\n" for i in range(4))
        state.apply(StatusMessage(run.release, run.arch, run.package, True, params, elapsed, tail, params["uuid"]), now)
    private = StatusMessage(RELEASES[-1], "amd64", "private-test", True, {}, 120, "", new_uuid())
    state.apply(private, now)
    atomicfile.write_json_atomic(path, state.tree)


def _queued_json(runs: list[demodata.DemoRun], path: Path) -> None:
    """queued.json built by cache-amqp's own document code from generated queue bodies."""
    from webcontrol.services.cache_amqp import queue_entry, queued_document

    rng = random.Random(8)

    def entry(context: str, release: str, arch: str) -> dict:
        bodies = []
        if context in ("ubuntu", "huge"):
            for run in rng.sample(runs, rng.choice((0, 0, 1, 3))):
                params = {"triggers": run.triggers.split(), "submit-time": submit_time(), "uuid": new_uuid()}
                bodies.append(TestRequest(run.package, params).serialise())
        if context == "ppa" and arch == "amd64":
            bodies.append(b'hello\n{"ppas": ["user:secret@joe/private"], "triggers": ["hello/2.0-1"]}')
        return queue_entry(bodies)

    document = queued_document(list(RELEASES), {release: list(ARCHES) for release in RELEASES}, entry)
    atomicfile.write_json_atomic(path, document)


def build(root: Path, runs_per_test: int = 10) -> Path:
    """Build the demo folder through the real programs. Returns the config path."""
    from webcontrol.services import cache_ppa_containers, download_all_results, index_failures, publish_db, stats

    for sub in ("data/public", "results", "run", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config_path = root / "autopkgtest-cloud.conf"
    configmod.write(demo_config_values(root), config_path)
    store = LocalStore(root / "results")
    log.info("demo: writing results into %s", root / "results")
    runs = demodata.write_runs(store, demodata.plan_runs(RELEASES, ARCHES, runs_per_test=runs_per_test))
    runs += demodata.write_runs(store, demodata.plan_trigger_breakage(RELEASES[-1], ARCHES))
    for owner, ppa in (("joe", "hello-fixes"), ("ana", "glib-next")):
        demodata.write_runs(
            store, demodata.plan_ppa_runs(RELEASES[-1], "amd64", owner, ppa, demodata.DEMO_PACKAGES[:4])
        )
    newest: dict[str, dict[str, str]] = {}
    for run in runs:
        newest.setdefault(run.release, {})[run.package] = run.version
        newest.setdefault(f"{run.release}-updates", {})
    demodata.write_archive(root / "archive", newest)
    _run_step("download-all-results", download_all_results.main, config_path)
    _run_step("publish-db", publish_db.main, config_path)
    _run_step("index-failures", index_failures.main, config_path, "--backfill")
    _run_step("autopkgtest-stats", stats.main, config_path)
    _run_step("cache-ppa-containers", cache_ppa_containers.main, config_path)
    _running_json(runs, root / "run" / "running.json")
    _queued_json(runs, root / "run" / "queued.json")
    (root / "alert").write_text("info:This is a demo instance with generated data.")
    (root / READY).write_text("ok\n")
    return config_path


@dataclass
class DemoLive:
    """The demo-only parts behind the web apps: queues, Launchpad stand-in, login service."""

    queues: demolive.DemoQueues
    launchpad: demolive.DemoLaunchpad
    provider: demosso.DemoProvider

    @classmethod
    def for_server(cls, base_url: str) -> DemoLive:
        teams = (REQUESTORS_TEAM,)
        return cls(
            demolive.DemoQueues(),
            demolive.DemoLaunchpad(frozenset(demodata.DEMO_PACKAGES), demosso.DEMO_USER, teams),
            demosso.DemoProvider(base_url, list(teams)),
        )


def make_wsgi_app(config: configmod.Config, live: DemoLive | None = None):
    """One WSGI app routing paths as the Apache site does, plus the demo's login service with ``live``."""
    from webcontrol.web import browse, private, request

    browse_app = browse.create_app(config)
    # No Launchpad client is built in the background: the demo answers for Launchpad itself.
    request_app = request.create_app(config, warm_launchpad=False)
    private_app = private.create_app(config, warm_launchpad=False)
    if live is not None:
        # request.cgi's collaborators, swapped for the demo's: its queues instead of a broker,
        # its Launchpad answers instead of Launchpad's.
        services = request_app.extensions["autopkgtest-request"]
        services.publisher = live.queues
        services.launchpad = live.launchpad
        cache = TeamCache(config.get("web", "team_cache"), config.get("web", "team_cache_seconds"))
        services.membership = Membership(live.launchpad, config.get("web", "allowed_requestors"), cache)

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if live is not None and (path == demosso.PREFIX or path.startswith(demosso.PREFIX + "/")):
            return live.provider(environ, start_response)
        if path.rstrip("/") in REQUEST_PATHS:
            return request_app(environ, start_response)
        if path.startswith("/private-results"):
            return private_app(environ, start_response)
        return browse_app(environ, start_response)

    return application


_stop_requested = False


def _interrupt(signum, frame):
    global _stop_requested
    _stop_requested = True
    raise KeyboardInterrupt


def _loopback_url(host: str, port: int) -> str:
    """The URL this server reaches itself at (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _start_over(root: Path) -> None:
    """Remove what an unfinished build left, so the next build starts clean."""
    if not (root / "autopkgtest-cloud.conf").exists():
        return
    log.info("demo: %s holds an unfinished build; starting it over", root)
    for name in BUILD_ITEMS:
        item = root / name
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink(missing_ok=True)


def _run(args: argparse.Namespace, _config) -> int:
    # Ctrl-C and SIGTERM stop the demo, whether it builds or serves.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    root = Path(args.dir).resolve()
    try:
        if not (root / READY).exists():
            _start_over(root)
            log.info("demo: building %s (first run)", root)
            build(root)
    except KeyboardInterrupt:
        print(f"autopkgtest-web demo: stopped while building {root}; the next run builds it again", flush=True)
        return EXIT_FAILURE
    if args.build_only:
        return 0
    return _serve(root, args.host, args.port)


def _serve(root: Path, host: str, port: int) -> int:
    from werkzeug.serving import make_server

    from webcontrol.web import promstats

    live = DemoLive.for_server(_loopback_url(host, port))
    config_path = root / "autopkgtest-cloud.conf"
    configmod.write(demo_config_values(root, live.provider.provider_url), config_path)
    config = configmod.load(str(config_path))
    # A new server run: counters start from zero, as they do under a restarted Apache.
    promstats.prepare(promstats.metrics_dir(config), generation=f"demo {os.getpid()} {time.time()}")
    app = make_wsgi_app(config, live)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as err:
        raise ProgramError(f"cannot serve on {host}:{port}: {err.strerror or err}") from err
    workers = demolive.DemoWorkers(config, live.queues, list(RELEASES), list(ARCHES)).start()
    # Printed once the socket listens, so whoever reads it can connect at once.
    print(f"autopkgtest-web demo: http://{host}:{port}/  (data in {root}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        workers.stop()
    print("autopkgtest-web demo: stopped", flush=True)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default="autopkgtest-web-demo", help="demo folder, built on first run (default %(default)s)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    parser.add_argument("--build-only", action="store_true", help="build the demo folder and exit")


def main(argv=None) -> int:
    return run_program(
        "Serve the autopkgtest-web site on generated demo data (no RabbitMQ or Swift needed).",
        _run,
        _arguments,
        argv,
        needs_config=False,
    )


if __name__ == "__main__":
    raise SystemExit(main())
