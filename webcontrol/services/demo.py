# SPDX-License-Identifier: GPL-3.0-or-later
"""autopkgtest-web-demo: the whole site on a generated local store (CONTRACT §12.3).

The first run builds DIR through the real programs: demo results are written
into a local store as workers write them, download-all-results ingests them,
publish-db publishes against a generated ``file://`` archive, and
autopkgtest-stats and cache-ppa-containers run once. running.json and
queued.json are generated from status messages and queue bodies through the
same code the collectors use. Every run then serves browse.cgi, request.cgi
and private-results from one WSGI server on loopback. No network, RabbitMQ
or Swift is needed.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

from webcontrol import atomicfile, demodata
from webcontrol import config as configmod
from webcontrol.messages import StatusMessage, TestRequest, new_uuid, submit_time
from webcontrol.services.base import ProgramError, run_program
from webcontrol.store.local import LocalStore

log = logging.getLogger(__name__)

RELEASES = ("jammy", "noble", "questing")
ARCHES = ("amd64", "arm64", "ppc64el", "s390x")
READY = ".demo-ready"
REQUEST_PATHS = ("/request.cgi", "/login", "/logout", "/github/webhook", "/retry", "/api/v1/retry")


def demo_config_values(root: Path) -> dict[str, dict[str, object]]:
    return {
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
            "allowed_requestors": "autopkgtest-requestors",
            "team_cache": root / "run" / "team_cache.json",
            "alert": root / "alert",
        }
    }


def _run_step(name: str, main, config_path: Path, *extra: str) -> None:
    log.info("demo: running %s", name)
    code = main(["--config", str(config_path), *extra])
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


def make_wsgi_app(config: configmod.Config):
    """One WSGI app routing paths to browse.cgi, request.cgi and private-results (CONTRACT §12.1)."""
    from webcontrol.web import browse, private, request

    browse_app = browse.create_app(config)
    request_app = request.create_app(config)
    private_app = private.create_app(config)

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/") in REQUEST_PATHS:
            return request_app(environ, start_response)
        if path.startswith("/private-results"):
            return private_app(environ, start_response)
        return browse_app(environ, start_response)

    return application


def _run(args: argparse.Namespace, _config) -> int:
    from werkzeug.serving import run_simple

    root = Path(args.dir).resolve()
    if not (root / READY).exists():
        log.info("demo: building %s (first run)", root)
        build(root)
    config = configmod.load(str(root / "autopkgtest-cloud.conf"))
    if args.build_only:
        return 0
    app = make_wsgi_app(config)
    print(f"autopkgtest-web demo: http://{args.host}:{args.port}/  (data in {root}; Ctrl-C stops)", flush=True)
    try:
        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    except OSError as err:
        raise ProgramError(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}") from err
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
