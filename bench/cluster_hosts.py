# SPDX-License-Identifier: GPL-3.0-or-later
"""Hosts in network namespaces and a RabbitMQ cluster across them (for bench/cluster_drill.py).

Every host is a namespace ``<prefix>-<host>`` with one veth into a bridge
that lives in its own namespace ``<prefix>-br`` (so the root namespace's
netfilter stays out of the way). Addresses are only ever used from inside
the namespaces. Every process is started by us and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
USER, PASSWORD = "drill", "drill"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Network:
    def __init__(self, prefix: str, hosts: dict[str, str]):
        self.prefix = prefix
        self.hosts = hosts

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def wrap(self, host: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def create(self) -> None:
        bridge = self.ns("br")
        _ip("netns", "add", bridge)
        _ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge, "link", "set", "br0", "up")
        for index, (host, address) in enumerate(self.hosts.items()):
            ns = self.ns(host)
            _ip("netns", "add", ns)
            inner, outer = f"{self.prefix}h{index}", f"{self.prefix}b{index}"
            _ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", bridge)
            _ip("-n", bridge, "link", "set", outer, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def destroy(self) -> None:
        for host in [*self.hosts, "br"]:
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True)

    def http_status(self, host: str, url: str) -> int | None:
        done = subprocess.run(
            self.wrap(host, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url]),
            capture_output=True,
            text=True,
        )
        code = int(done.stdout or 0)
        return code or None

    def run_python(self, host: str, code: str) -> str:
        script = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{code}"
        done = subprocess.run(self.wrap(host, [sys.executable, "-c", script]), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"python in {host} failed: {done.stderr[-2000:]}")
        return done.stdout

    def fetch_loop(self, host: str, base: str, paths: list[str], seconds: float, during: Callable) -> dict:
        """A client fetching ``paths`` in turn for ``seconds`` while ``during()`` runs here.

        ``during()`` returns (monotonic time of the fault, its duration); failures are
        reported as offsets from that time (CLOCK_MONOTONIC is the same in every namespace).
        """
        script = f"""
import http.client, json, time, urllib.parse
base = urllib.parse.urlsplit({base!r})
paths, log, deadline, index = {paths!r}, [], time.monotonic() + {seconds}, 0
while time.monotonic() < deadline:
    path = base.path + paths[index % len(paths)]
    index += 1
    try:
        conn = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=5)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        status = response.status
        conn.close()
    except OSError as err:
        status = type(err).__name__
    log.append((time.monotonic(), status))
print(json.dumps(log))
"""
        client = subprocess.Popen(self.wrap(host, [sys.executable, "-c", script]), stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        fault_at, fault_seconds = during()
        out, _ = client.communicate(timeout=seconds + 60)
        log = json.loads(out)
        failures = [(at, status) for at, status in log if status != 200]
        return {
            "requests": len(log),
            "seconds": time.monotonic() - started,
            "failed": len(failures),
            "failures": sorted({str(status) for _at, status in failures}),
            "failure_offsets": [at - fault_at for at, _status in failures],
            "outage_seconds": fault_seconds,
        }


class RabbitCluster:
    """RabbitMQ nodes ``rabbit@<address>``, one per host, joined to the first."""

    def __init__(self, network: Network, hosts: list[str], base: Path):
        self.network = network
        self.hosts = hosts
        self.base = base
        self.servers: dict[str, subprocess.Popen] = {}
        self.epmds: dict[str, subprocess.Popen] = {}
        cookie = "drill-cookie-" + os.urandom(8).hex()
        for host in hosts:
            folder = base / host
            for name in ("home", "mnesia", "log"):
                (folder / name).mkdir(parents=True, exist_ok=True)
            cookie_file = folder / "home" / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)
            (folder / "rabbitmq.conf").write_text(
                "listeners.tcp.default = 5672\nloopback_users = none\ndisk_free_limit.absolute = 5MB\n"
            )
            (folder / "enabled_plugins").write_text("[].\n")
            (folder / "rabbitmq-env.conf").write_text("")

    @property
    def uri(self) -> str:
        return " ".join(f"amqp://{USER}:{PASSWORD}@{self.network.hosts[host]}:5672/" for host in self.hosts)

    def node(self, host: str) -> str:
        return f"rabbit@{self.network.hosts[host]}"

    def env(self, host: str) -> dict[str, str]:
        folder = self.base / host
        return dict(
            os.environ,
            HOME=str(folder / "home"),
            RABBITMQ_NODENAME=self.node(host),
            RABBITMQ_USE_LONGNAME="true",
            RABBITMQ_CONFIG_FILE=str(folder / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(folder / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(folder / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(folder / "log"),
            RABBITMQ_PID_FILE=str(folder / "rabbit.pid"),
        )

    def ctl(self, host: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            self.network.wrap(host, [RABBITMQCTL, "-n", self.node(host), *args]),
            env=self.env(host),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {host}: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def start_node(self, host: str) -> None:
        if host not in self.epmds:
            self.epmds[host] = subprocess.Popen(self.network.wrap(host, ["epmd"]), stdout=subprocess.DEVNULL)
        out = open(self.base / host / "log" / "server.out", "ab")
        self.servers[host] = subprocess.Popen(
            self.network.wrap(host, [RABBITMQ_SERVER]), env=self.env(host), stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        self.ctl(host, "wait", "--pid", str(self.servers[host].pid), "--timeout", "120", timeout=150)

    def stop_node(self, host: str) -> None:
        server = self.servers.pop(host)
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    def start(self) -> None:
        first, *others = self.hosts
        for host in self.hosts:
            self.start_node(host)
        for host in others:
            self.ctl(host, "stop_app")
            self.ctl(host, "join_cluster", self.node(first))
            self.ctl(host, "start_app")
        self.ctl(first, "add_user", USER, PASSWORD)
        self.ctl(first, "set_permissions", "-p", "/", USER, ".*", ".*", ".*")

    def _any(self) -> str:
        return next(host for host in self.hosts if host in self.servers)

    def members(self) -> list[str]:
        status = json.loads(self.ctl(self._any(), "cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    def _list_queues(self, *columns: str) -> list[list[str]]:
        out = self.ctl(self._any(), "list_queues", *columns, "--no-table-headers", "--quiet")
        return [line.split("\t") for line in out.splitlines() if "\t" in line]

    def queue_types(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self._list_queues("name", "type")}

    def message_count(self, queue: str) -> int:
        return next((int(row[1]) for row in self._list_queues("name", "messages") if row[0] == queue), 0)

    def destroy(self) -> None:
        for host in list(self.servers):
            self.stop_node(host)
        for epmd in self.epmds.values():
            epmd.terminate()
            epmd.wait(10)
