# SPDX-License-Identifier: GPL-3.0-or-later
"""A private RabbitMQ node for tests that stop or restart the broker.

The shared broker on 127.0.0.1:5672 must never be restarted by a test, so
fault tests start their own node: its own epmd on a private loopback port
(any Erlang command would otherwise leave an epmd listening on 0.0.0.0:4369
behind), its own node name, AMQP and distribution ports, and every file
under one temp dir. Processes are stopped by PID only.

Fixture ``private_rabbitmq`` (function scope) yields a :class:`PrivateBroker`
with ``uri``, ``stop()``, ``start()`` and ``restart()``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pika
import pika.exceptions
import pytest

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
START_ATTEMPTS = 3


class BrokerSetupError(RuntimeError):
    """The private node could not be started."""


#: Ports for the node come from here: below the kernel's ephemeral range (32768-60999 by
#: default), so no outgoing connection can take one between a stop and the next start, and
#: with room above for rabbitmqctl, whose own distribution ports are the node's + 10000..10010.
PORT_RANGE = (10000, 20000)


def _free_port() -> int:
    """A port nothing listens on now, from PORT_RANGE."""
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BrokerSetupError(f"no free port in {PORT_RANGE}")


def _stop_pid(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; with ``group``, the whole process group it leads.

    rabbitmq-server is a shell script waiting for its Erlang VM: killing only
    the script would leave the VM running, holding its ports.
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(10)


class PrivateBroker:
    """One RabbitMQ node on 127.0.0.1 with private ports, stopped by PID."""

    def __init__(self, base: Path | None = None, host: str = "127.0.0.1"):
        self.base = Path(base or tempfile.mkdtemp(prefix="rmq-"))
        # AMQP listens on host (a network namespace's own address, for clients in another
        # namespace); Erlang's epmd and distribution stay on loopback.
        self.host = host
        self.port = _free_port()
        self.dist_port = 0  # chosen at each start
        self.epmd_port = _free_port()
        self.node = f"rabbit-{self.port}@localhost"
        self.uri = f"amqp://guest:guest@{host}:{self.port}/"
        self.epmd: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self._configure()

    def _configure(self) -> None:
        for name in ("mnesia", "log", "home"):
            (self.base / name).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\ndisk_free_limit.absolute = 5MB\nloopback_users = none\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.base / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            ERL_CRASH_DUMP=str(self.base / "log" / "erl_crash.dump"),  # not the caller's working directory
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        return env

    def start(self) -> None:
        """Start the node; each start listens on a fresh distribution port.

        Nothing needs that port to stay the same (rabbitmqctl finds the node
        through epmd), and reusing it right after a stop could meet it still
        taken (``dist_port_already_used``). The AMQP port stays, as clients
        reconnect to it.
        """
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [EPMD, "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for attempt in range(1, START_ATTEMPTS + 1):
            self.dist_port = _free_port()
            log = open(self.base / "log" / "server.out", "ab")  # noqa: SIM115 - the child keeps it open
            log.write(f"--- start {attempt}, distribution port {self.dist_port}\n".encode())
            log.flush()
            self.server = subprocess.Popen(
                [SERVER], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            try:
                self._wait_ready()
                return
            except BrokerSetupError as err:
                _stop_pid(self.server, group=True)
                # "ERROR: could not bind to distribution port N, it is in use by another node"
                taken = "dist_port_already_used" in str(err) or "distribution port" in str(err)
                if not taken or attempt == START_ATTEMPTS:
                    raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise BrokerSetupError(f"rabbitmq-server exited with {self.server.returncode}: {self._log_tail()}")
            try:
                pika.BlockingConnection(pika.URLParameters(self.uri + "?socket_timeout=2")).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.2)
        raise BrokerSetupError(f"RabbitMQ node {self.node} not ready after {START_TIMEOUT_S:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        """The end of what the current start attempt logged."""
        try:
            text = (self.base / "log" / "server.out").read_text(errors="replace")
            return text[text.rfind("--- start") :][-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the node (epmd stays, so a restart keeps the same setup)."""
        _stop_pid(self.server, group=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        _stop_pid(self.epmd, 10)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def private_rabbitmq(tmp_path):
    if not os.path.exists(SERVER):
        pytest.skip(f"{SERVER} is not installed (apt-get install rabbitmq-server)")
    broker = PrivateBroker(tmp_path / "rabbitmq")
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()
