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


class BrokerSetupError(RuntimeError):
    """The private node could not be started."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_pid(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
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
        self.dist_port = _free_port()
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
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        return env

    def start(self) -> None:
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [EPMD, "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        log = open(self.base / "log" / "server.out", "ab")
        self.server = subprocess.Popen([SERVER], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()

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
        try:
            return (self.base / "log" / "server.out").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the node (epmd stays, so a restart keeps the same setup)."""
        _stop_pid(self.server)

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
