#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency and throughput of a valid request.cgi submission, end to end.

Usage: python bench/request_latency.py [--requests 400] [--clients 1 4] [--tests 20000] [--launchpad-per-request]

request.cgi runs in a child process under werkzeug's threaded WSGI server on
127.0.0.1; the fake Launchpad (tests/fakes, real HTTP on loopback) answers
the publication checks; the requester is a member of an allowed team whose
answer is already in the team cache (so no team lookup per request);
messages go to the real RabbitMQ broker on 127.0.0.1:5672 with publisher
confirms, into queues of a release name unique to this run, which are
deleted at the end. Authentication is by API key (the ``X-Api-Key`` cookie).

For each client count it prints requests/second, the median, p95 and p99
client-side latency, and checks that every request was answered 200 and
every message reached the broker. Target: p95 < 100 ms.

With ``--launchpad-per-request`` each request names a trigger version of
its own (all published in the fake), so its publication check is not in any
cache and reaches Launchpad through the web app's client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BROKER = os.environ.get("AUTOPKGTEST_WEB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
ARCHES = ("amd64", "arm64", "ppc64el", "s390x")
USER = "bench-admin"
KEY = secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(config_path: str, port: int) -> None:
    """Child process: request.cgi under werkzeug's threaded server."""
    import logging

    from werkzeug.serving import run_simple

    from webcontrol import config as configmod
    from webcontrol.web.request import create_app

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(configmod.load(config_path))
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


def build_site(root: Path, release: str, tests: int, launchpad) -> Path:
    from tests.fakes.site import ALLOWED_TEAM, make_site
    from webcontrol import config as configmod

    rows = [(f"pkg{i}", release, ARCHES[i % len(ARCHES)]) for i in range(tests)]
    rows += [("hello", release, arch) for arch in ARCHES]
    site = make_site(root, release, rows, launchpad.url, BROKER)
    site.write_api_keys({USER: KEY})
    # The team answer is cached, as it is for every active requester in production.
    (root / "team-cache.json").write_text(json.dumps({USER: int(time.time())}))
    site.set("web", "team_cache", str(root / "team-cache.json"))
    launchpad.state.teams[USER] = [ALLOWED_TEAM]
    launchpad.state.publish("hello", "2.10-3", release)
    path = root / "autopkgtest-cloud.conf"
    configmod.write(site.values, path)
    return path


def wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"request.cgi did not start on port {port}")


def client_loop(port: int, paths: list[str], latencies: list[float], failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"X-Api-Key={USER}:{KEY}", "User-Agent": "python-requests/2.31"}
    for path in paths:
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200 or b"Test request submitted." not in body:
            failures.append(f"{response.status}: {body[:200]!r}")
    conn.close()


def drain_count(queue: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    try:
        channel = connection.channel()
        count = channel.queue_declare(queue, passive=True).method.message_count
        channel.queue_purge(queue)
        return count
    finally:
        connection.close()


def delete_queues(release: str) -> None:
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    try:
        for arch in ARCHES:
            channel = connection.channel()
            try:
                channel.queue_delete(f"debci-{release}-{arch}")
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        connection.close()


def run(port: int, release: str, total: int, clients: int, versions: list[str] | None = None) -> dict:
    """``versions``: one trigger version per request, taken from the front of the list."""

    def path(version: str) -> str:
        query = {"release": release, "arch": "amd64", "package": "hello", "trigger": f"hello/{version}"}
        return f"/request.cgi?{urllib.parse.urlencode(query)}"

    latencies: list[float] = []
    failures: list[str] = []
    per_client = total // clients
    paths = []
    for _ in range(clients):
        if versions is None:
            paths.append([path("2.10-3")] * per_client)
        else:
            paths.append([path(versions.pop(0)) for _ in range(per_client)])
    threads = [threading.Thread(target=client_loop, args=(port, p, latencies, failures)) for p in paths]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    queued = drain_count(f"debci-{release}-amd64")
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "queued": queued,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per client-count run (default 400)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients (default 1 4)")
    parser.add_argument("--tests", type=int, default=20000, help="test rows in the public DB (default 20000)")
    parser.add_argument(
        "--launchpad-per-request",
        action="store_true",
        help="a new trigger version per request, so each one asks Launchpad",
    )
    args = parser.parse_args(argv)

    from tests.fakes.launchpad import FakeLaunchpad

    root = Path(tempfile.mkdtemp(prefix="request-bench-"))
    release = "b" + secrets.token_hex(5)
    launchpad = FakeLaunchpad().start()
    port = free_port()
    server = None
    try:
        config_path = build_site(root / "site", release, args.tests, launchpad)
        versions = None
        if args.launchpad_per_request:
            versions = [f"2.10-3+b{i}" for i in range(args.requests * len(args.clients))]
            for version in versions:
                launchpad.state.publish("hello", version, release)
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(str(config_path), port), daemon=True)
        server.start()
        wait_for(port)
        run(port, release, 20, 1)  # warm-up: imports, first DB open, first AMQP connection
        print(f"request.cgi submit benchmark: {args.tests} tests in the DB, release {release}, broker {BROKER}")
        print(
            f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} queued"
        )
        ok = True
        calls_before = launchpad.call_count()
        for clients in args.clients:
            figures = run(port, release, args.requests, clients, versions)
            print(
                f"{figures['clients']:>7} {figures['requests']:>8} {figures['rps']:>7.1f} {figures['p50_ms']:>7.1f}"
                f" {figures['p95_ms']:>7.1f} {figures['p99_ms']:>7.1f} {figures['max_ms']:>7.1f} {figures['queued']}"
            )
            if figures["failures"] or figures["queued"] != figures["requests"]:
                ok = False
                print(f"  FAILURES: {figures['failures']} (first: {figures['first_failure']})")
        measured = args.requests * len(args.clients)
        print(f"Launchpad calls per measured request: {(launchpad.call_count() - calls_before) / measured:.1f}")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            server.join(5)
        launchpad.stop()
        delete_queues(release)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
