#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drill: two web units on a three-node RabbitMQ cluster behind HAProxy, under faults.

Hosts are network namespaces on one bridge (10.231.15.0/24, never routed
outside): three RabbitMQ nodes clustered with quorum queues, two web units
(each with its own host name, so its own ``complete-listener-<fqdn>`` quorum
queue, its own download-results, amqp-status-collector and a real Apache
with mod_wsgi serving the shipped site), and Debian's HAProxy in front of
both Apaches health-checking ``/health``. Then it checks and prints:

1. ``--completions`` results published (with publisher confirms, failing
   over between the nodes) while the first broker node is stopped and
   restarted and unit 1's download-results is SIGKILLed twice (and restarted,
   as systemd would): both units' DBs must hold every result exactly once;
2. a client fetching pages through HAProxy in a loop while unit 1's Apache
   is stopped: the failed requests, against HAProxy's detection window;
3. a test request published from each unit (request.cgi's publisher) lands
   in the same cluster queue, and cache-amqp on both units writes the same
   queued.json.

Needs root, ``iproute2``, ``haproxy``, ``apache2`` + ``libapache2-mod-wsgi-py3``
and ``rabbitmq-server`` (not started). It takes three to five minutes and three
RabbitMQ nodes' worth of memory, so it is a drill, not a CI test; the
failover logic itself is tested in tests/faults/test_broker_failover.py.

    python bench/cluster_drill.py [--completions 5000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AUTOPKGTEST_WEB_APACHE_VENV", "/var/cache/autopkgtest-web/apache-venv-cluster-drill")

from cluster_hosts import Network, RabbitCluster  # noqa: E402 - next to this script

from tests.deploy import apache  # noqa: E402
from tests.faults.workload import completion_messages, expected_keys, stored_keys  # noqa: E402
from webcontrol import config as configmod  # noqa: E402

LB = "10.231.15.30"
UNITS = {"unit1": "10.231.15.21", "unit2": "10.231.15.22"}
WEB_PORT = 8080
CHECK_INTER_MS = 500
CHECK_FALL = 2
RELEASE, ARCH = "noble", "amd64"


class Unit:
    """One web unit: its namespace, host name, config, programs and Apache."""

    def __init__(self, name: str, address: str, network: Network, base: Path, uri: str):
        self.name, self.address, self.network = name, address, network
        self.fqdn = f"{name}.drill"
        self.base = base / name
        self.runtime = self.base / "run-state"
        for folder in (self.base / "public", self.base / "state", self.runtime):
            folder.mkdir(parents=True)
        self.conf = self.base / "autopkgtest-cloud.conf"
        configmod.write(
            {
                "web": {
                    "database": self.base / "rw.db",
                    "database_public": self.base / "public" / "autopkgtest.db",
                    "running_cache": self.runtime / "running.json",
                    "amqp_queue_cache": self.runtime / "queued.json",
                    "stats_cache_dir": self.runtime,
                    "ppa_containers_cache_dir": self.runtime,
                    "indexed_packages": self.runtime / "indexed-packages.json",
                    "state_dir": self.base / "state",
                    "runtime_dir": self.runtime,
                    "releases": RELEASE,
                    "archive_url": "file:///nonexistent",
                },
                "amqp": {"uri": uri, "queue_type": "quorum"},
            },
            self.conf,
        )
        self.daemons: dict[str, subprocess.Popen] = {}
        self.apache: apache.ApacheServer | None = None

    def command(self, module: str, *args: str) -> list[str]:
        """A program of ours inside the unit's namespace, under the unit's own host name."""
        program = " ".join([sys.executable, "-m", f"webcontrol.services.{module}", "--config", str(self.conf), *args])
        return self.network.wrap(self.name, ["unshare", "--uts", "sh", "-c", f"hostname {self.fqdn} && exec {program}"])

    def start_daemon(self, module: str) -> None:
        log = open(self.base / f"{module}.log", "ab")
        self.daemons[module] = subprocess.Popen(self.command(module), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()

    def run(self, module: str, *args: str) -> None:
        done = subprocess.run(self.command(module, *args), capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: {module} failed: {done.stderr[-2000:]}")

    def kill(self, module: str) -> None:
        process = self.daemons.pop(module)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.daemons.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.daemons.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.apache:
            self.apache.stop()

    def start_apache(self, venv: Path, code: Path) -> None:
        for path in [self.base, *self.base.rglob("*")]:
            shutil.chown(path, user=apache.APACHE_USER, group=apache.APACHE_GROUP)
        listen = f"{self.address}:{WEB_PORT}"
        server = NamespacedApache(
            self.base / "apache",
            venv,
            code,
            {
                "CONF": str(self.conf),
                "PUBLIC_DB": str(self.base / "public" / "autopkgtest.db"),
                "RUNNING_JSON": str(self.runtime / "running.json"),
                "LISTEN": listen,
                "VHOST": listen,
            },
        )
        server.network, server.host, server.address = self.network, self.name, self.address
        (self.base / "apache").mkdir(exist_ok=True)
        os.chmod(self.base / "apache", 0o755)
        server.start()
        self.apache = server

    def stored(self) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.base / 'rw.db'}?mode=ro", uri=True)
        try:
            return stored_keys(conn)
        finally:
            conn.close()


class NamespacedApache(apache.ApacheServer):
    """The tests' Apache, started inside a namespace and probed from there."""

    network: Network
    host: str
    address: str

    def start(self) -> None:
        config = self._write_config()
        self.proc = subprocess.Popen(
            self.network.wrap(self.host, ["apache2", "-f", str(config), "-DFOREGROUND"]),
            env=self._env(),
            stdout=open(self.base / "logs" / "stdout.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"apache2 in {self.host} exited:\n{self.log_tail()}")
            if self.network.http_status(self.host, f"http://{self.address}:{WEB_PORT}/health") is not None:
                return
            time.sleep(0.3)
        raise SystemExit(f"apache2 in {self.host} did not answer:\n{self.log_tail()}")


def haproxy_config(path: Path) -> None:
    servers = "\n".join(
        f"    server {name} {address}:{WEB_PORT} check inter {CHECK_INTER_MS} fall {CHECK_FALL} rise 2"
        for name, address in UNITS.items()
    )
    path.write_text(f"""global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch
frontend site
    bind {LB}:80
    default_backend units
backend units
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
{servers}
""")


def publish_completions(network: Network, uri: str, bodies: list[bytes], seconds: float, out: Path) -> subprocess.Popen:
    """The workers' side: a publisher in its own namespace, with confirms, over ``seconds``."""
    script = out / "publisher.py"
    (out / "bodies.json").write_text(json.dumps([body.decode() for body in bodies]))
    script.write_text(f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
import pika
from webcontrol import amqp
bodies = json.load(open({str(out / "bodies.json")!r}))
pause = {seconds} / len(bodies)
started = time.monotonic()
index = retries = 0
channel = None
while index < len(bodies):
    try:
        if channel is None:
            channel = amqp.connect({uri!r}).channel()
            channel.confirm_delivery()
            channel.exchange_declare("testcomplete.fanout", exchange_type="fanout", durable=True)
        channel.basic_publish("testcomplete.fanout", "", bodies[index].encode(), amqp.PERSISTENT)
        index += 1
    except (pika.exceptions.AMQPError, OSError, amqp.BrokerError):
        retries += 1
        channel = None
        time.sleep(0.3)
        continue
    lag = started + index * pause - time.monotonic()
    if lag > 0:
        time.sleep(lag)
print(json.dumps({{"confirmed": index, "retries": retries}}))
""")
    return subprocess.Popen(network.wrap("worker", [sys.executable, str(script)]), stdout=subprocess.PIPE, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=int, default=5000)
    parser.add_argument("--publish-seconds", type=float, default=40.0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cluster-drill-"))
    os.chmod(base, 0o755)
    network = Network(
        "i15",
        {
            "rmq1": "10.231.15.11",
            "rmq2": "10.231.15.12",
            "rmq3": "10.231.15.13",
            **UNITS,
            "lb": LB,
            "worker": "10.231.15.40",
        },
    )
    cluster = RabbitCluster(network, ["rmq1", "rmq2", "rmq3"], base / "rabbitmq")
    units: list[Unit] = []
    haproxy = None
    try:
        network.create()
        started = time.monotonic()
        cluster.start()
        print(f"RabbitMQ cluster of 3 nodes up in {time.monotonic() - started:.0f} s: {cluster.members()}")
        uri = cluster.uri
        units = [Unit(name, address, network, base, uri) for name, address in UNITS.items()]
        for unit in units:
            unit.start_daemon("download_results")
            unit.start_daemon("amqp_status_collector")
        queues = [f"complete-listener-{unit.fqdn}" for unit in units]
        deadline = time.monotonic() + 60
        while not set(queues) <= set(cluster.queue_types()) and time.monotonic() < deadline:
            time.sleep(0.5)
        types = cluster.queue_types()
        print("per-unit queues:", {queue: types.get(queue) for queue in queues})

        # 1. Completions under a broker node restart and two kills of unit 1's download-results.
        messages = completion_messages(args.completions, release=RELEASE, seed=str(time.time()))
        publisher = publish_completions(network, uri, [m.serialise() for m in messages], args.publish_seconds, base)
        step = args.publish_seconds / 5
        time.sleep(step)
        units[0].kill("download_results")
        units[0].start_daemon("download_results")
        time.sleep(step)
        down = time.monotonic()
        cluster.stop_node("rmq1")
        time.sleep(step)
        cluster.start_node("rmq1")
        print(f"broker node rmq1 was down for {time.monotonic() - down:.1f} s (stop, then start and rejoin)")
        units[0].kill("download_results")
        units[0].start_daemon("download_results")
        outcome = json.loads(publisher.communicate(timeout=600)[0].strip().splitlines()[-1])
        expected = expected_keys(messages)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(len(unit.stored()) >= len(expected) for unit in units):
            time.sleep(1)
        for unit in units:
            stored = unit.stored()
            print(
                f"{unit.name}: {len(stored)} rows, {len(set(stored))} distinct, "
                f"{len(expected - set(stored))} lost, {len(stored) - len(set(stored))} twice"
            )
        print(f"publisher: {outcome['confirmed']} confirmed, {outcome['retries']} retried publishes")

        # 2. The site through HAProxy while unit 1's Apache is stopped.
        for unit in units:
            unit.run("publish_db")
            unit.run("cache_amqp")
            unit.run("stats")
        venv = apache.prepare()
        code = apache.install_project(venv)
        for unit in units:
            unit.start_apache(venv, code)
        haproxy_config(base / "haproxy.cfg")
        haproxy = subprocess.Popen(
            network.wrap("lb", ["haproxy", "-db", "-f", str(base / "haproxy.cfg")]),
            stdout=open(base / "haproxy.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        time.sleep(2)
        report = network.fetch_loop(
            "lb", f"http://{LB}/", ["", "packages/p/pkg1", "health"], seconds=20, during=lambda: outage(units[0])
        )
        window = CHECK_INTER_MS * CHECK_FALL / 1000
        late = [offset for offset in report["failure_offsets"] if offset > window]
        print(
            f"client through HAProxy: {report['requests']} requests in {report['seconds']:.0f} s, "
            f"{report['failed']} failed (statuses {report['failures']}, at "
            f"{', '.join(f'{o:+.2f}' for o in report['failure_offsets'])} s from the stop); unit1's Apache down "
            f"{report['outage_seconds']:.1f} s; detection window {window:.1f} s (check every {CHECK_INTER_MS} ms, "
            f"{CHECK_FALL} failures): {len(late)} failed after the window"
        )

        # 3. One request through each unit, one cluster queue, one queued.json.
        queue = f"debci-{RELEASE}-{ARCH}"
        for unit in units:
            network.run_python(
                unit.name,
                f"""
from webcontrol.web.request.publisher import Publisher
Publisher({uri!r}).publish([({queue!r}, b'hello\\n{{"triggers": ["hello/1.0-{unit.name}"]}}')])
""",
            )
        print(f"{queue}: {cluster.message_count(queue)} messages on the cluster (one per unit)")
        documents = []
        for unit in units:
            unit.run("cache_amqp")
            document = json.loads((unit.runtime / "queued.json").read_text())
            document.pop("generated", None)
            documents.append(document)
        print(
            "queued.json identical on both units:",
            documents[0] == documents[1],
            json.dumps(documents[0]["queues"]["ubuntu"][RELEASE][ARCH]),
        )
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for unit in units:
            unit.stop_all()
        cluster.destroy()
        network.destroy()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print("work folder kept:", base)
    return 0


def outage(unit: Unit) -> tuple[float, float]:
    """Stop the unit's Apache for 6 s, then start it again; returns when it stopped and for how long."""
    time.sleep(4)
    started = time.monotonic()
    unit.apache.stop()
    time.sleep(6)
    down = time.monotonic() - started
    unit.apache.start()
    return started, down


if __name__ == "__main__":
    raise SystemExit(main())
