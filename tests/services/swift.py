# SPDX-License-Identifier: GPL-3.0-or-later
"""A real single-node OpenStack Swift ("Swift All In One") for tests.

Swift itself is installed with pip into its own virtualenv, because it pins
eventlet and greenlet versions that the project's environment must not get.
The four servers run with ``workers = 0`` on free loopback ports, with one
replica on one device under ``/dev/shm`` (object servers keep metadata in
xattrs, which ext4 caps at a few KB per file), tempauth with the user
``test:tester`` / ``testing``, and a dict-backed cache filter instead of
memcached (tempauth needs ``env['swift.cache']``).

Loaded as a pytest plugin (``pytest_plugins`` in ``tests/conftest.py``); it
provides the session fixture ``swift_server`` and the function fixture
``swift_store``. ``python -m tests.services.swift --prepare`` builds the
virtualenv ahead of time (``.ci/run``), so that is not inside a test timeout.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

VENV_ENV = "AUTOPKGTEST_WEB_SWIFT_VENV"
DEFAULT_VENV = "/var/cache/autopkgtest-web/swift-venv"
SWIFT_REQUIREMENT = "swift>=2.38,<2.39"
READY_MARKER = ".autopkgtest-web-ready"
SERVERS = ("account", "container", "object", "proxy")
USER = "test:tester"
KEY = "testing"
START_TIMEOUT = 45.0


class SwiftSetupError(RuntimeError):
    """The Swift virtualenv or servers could not be set up."""


def venv_path() -> Path:
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)


def ensure_swift_venv() -> Path:
    """The Swift virtualenv, built on first use and reused afterwards.

    A lock file serialises concurrent builders (two pytest processes, or
    ``.ci/run`` and a test); the ready marker is written last, so a build
    that died half-way is thrown away and redone.
    """
    venv = venv_path()
    marker = venv / READY_MARKER
    if _ready(marker):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(marker):
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        log.info("building the Swift virtualenv in %s", venv)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "--quiet", SWIFT_REQUIREMENT])
        marker.write_text(SWIFT_REQUIREMENT + "\n")
    return venv


def _ready(marker: Path) -> bool:
    try:
        return marker.read_text().strip() == SWIFT_REQUIREMENT
    except OSError:
        return False


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SwiftSetupError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# Ports are picked below the kernel's ephemeral range (32768-60999 by default), so
# no socket bound to port 0 (test HTTP servers, outgoing connections) can take
# one between our check and the server's bind, or while Swift is stopped.
PORT_RANGE = (20000, 32000)
_taken: set[int] = set()


def _free_port() -> int:
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        if port in _taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise SwiftSetupError(f"no free port in {PORT_RANGE}")


HELPERS = Path(__file__).resolve().parent
DICT_CACHE = HELPERS / "swift_dict_cache.py"
RING_SCRIPT = HELPERS / "swift_rings.py"


class SwiftServer:
    """One Swift All In One: configuration, data and the four processes."""

    def __init__(self, venv: Path, base: Path, proxy_ip: str = "127.0.0.1"):
        self.venv = venv
        # The proxy may listen on another address (a network namespace's own); the
        # other three servers stay on loopback, where the rings point.
        self.proxy_ip = proxy_ip
        self.base = base
        self.etc = base / "etc"
        self.devices = base / "srv" / "node"
        self.logs = base / "log"
        self.ports = {name: _free_port() for name in SERVERS}
        self.pids: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self.user = USER
        self.key = KEY
        self.auth_url = f"http://{proxy_ip}:{self.ports['proxy']}/auth/v1.0"
        self.storage_url = f"http://{proxy_ip}:{self.ports['proxy']}/v1/AUTH_test"
        self._configure()

    # Setup

    def _configure(self) -> None:
        for folder in (self.etc, self.devices / "d1", self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        user = _current_user()
        # Syslog goes to the discard port (there may be no /dev/log); --verbose copies it to the log files.
        common = f"""\
            [DEFAULT]
            bind_ip = 127.0.0.1
            devices = {self.devices}
            mount_check = false
            disable_fallocate = true
            workers = 0
            user = {user}
            swift_dir = {self.etc}
            log_level = WARNING
            log_udp_host = 127.0.0.1
            log_udp_port = 9
            """
        (self.etc / "swift.conf").write_text(
            textwrap.dedent(f"""\
            [swift-hash]
            swift_hash_path_prefix = {uuid.uuid4().hex}
            swift_hash_path_suffix = {uuid.uuid4().hex}

            [storage-policy:0]
            name = Policy-0
            default = yes
            """)
        )
        for name in ("account", "container", "object"):
            (self.etc / f"{name}-server.conf").write_text(
                textwrap.dedent(common)
                + f"bind_port = {self.ports[name]}\n"
                + textwrap.dedent(f"""
                [pipeline:main]
                pipeline = {name}-server

                [app:{name}-server]
                use = egg:swift#{name}
                """)
            )
        shutil.copy(DICT_CACHE, self.etc / "swift_dict_cache.py")
        (self.etc / "proxy-server.conf").write_text(
            textwrap.dedent(common).replace("bind_ip = 127.0.0.1", f"bind_ip = {self.proxy_ip}")
            + f"bind_port = {self.ports['proxy']}\n"
            + textwrap.dedent(f"""
            [pipeline:main]
            pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl \
ratelimit tempauth staticweb copy slo dlo versioned_writes symlink proxy-logging proxy-server

            [app:proxy-server]
            use = egg:swift#proxy
            account_autocreate = true

            [filter:tempauth]
            use = egg:swift#tempauth
            user_test_tester = {KEY} .admin

            [filter:cache]
            paste.filter_factory = swift_dict_cache:filter_factory

            [filter:catch_errors]
            use = egg:swift#catch_errors
            [filter:gatekeeper]
            use = egg:swift#gatekeeper
            [filter:healthcheck]
            use = egg:swift#healthcheck
            [filter:proxy-logging]
            use = egg:swift#proxy_logging
            [filter:listing_formats]
            use = egg:swift#listing_formats
            [filter:bulk]
            use = egg:swift#bulk
            [filter:tempurl]
            use = egg:swift#tempurl
            [filter:ratelimit]
            use = egg:swift#ratelimit
            [filter:staticweb]
            use = egg:swift#staticweb
            [filter:copy]
            use = egg:swift#copy
            [filter:slo]
            use = egg:swift#slo
            [filter:dlo]
            use = egg:swift#dlo
            [filter:versioned_writes]
            use = egg:swift#versioned_writes
            [filter:symlink]
            use = egg:swift#symlink
            """)
        )
        # -I: without it the script's folder (holding this swift.py) would shadow the swift package.
        _run(
            [str(self.venv / "bin" / "python"), "-I", str(RING_SCRIPT), str(self.etc)]
            + [str(self.ports[name]) for name in ("account", "container", "object")]
        )
        for name in ("account", "container", "object"):
            if not (self.etc / f"{name}.ring.gz").exists():
                raise SwiftSetupError(f"building the rings did not write {name}.ring.gz")

    # Processes

    @property
    def running(self) -> bool:
        return bool(self.pids)

    def start(self) -> None:
        """Start the four servers and wait until auth and a PUT work."""
        if self.pids:
            return
        env = dict(os.environ, PYTHONPATH=str(self.etc))
        try:
            for name in SERVERS:
                out = open(self.logs / f"{name}.log", "ab")
                proc = subprocess.Popen(
                    [
                        str(self.venv / "bin" / f"swift-{name}-server"),
                        str(self.etc / f"{name}-server.conf"),
                        "--verbose",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=_die_with_parent,
                )
                out.close()
                self.pids[name] = proc.pid
                self._procs[name] = proc
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        import swiftclient

        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SwiftSetupError(f"swift-{name}-server exited with {proc.returncode}: {self._log_tail(name)}")
            try:
                url, token = swiftclient.get_auth(self.auth_url, self.user, self.key, auth_version="1")
                swiftclient.put_container(url, token, ".ready-check")
                swiftclient.put_object(url, token, ".ready-check", "probe", b"ok")
                swiftclient.delete_object(url, token, ".ready-check", "probe")
                swiftclient.delete_container(url, token, ".ready-check")
                return
            except Exception as err:  # noqa: BLE001 - anything means "not yet"
                last_error = err
                time.sleep(0.1)
        logs = "; ".join(f"{name}: {self._log_tail(name)[-400:]}" for name in SERVERS)
        raise SwiftSetupError(f"Swift did not become ready in {START_TIMEOUT:.0f} s: {last_error}; logs: {logs}")

    def _log_tail(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the servers by PID, wait, SIGKILL any that linger. Data stays."""
        for name in reversed(SERVERS):
            pid = self.pids.get(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for name in reversed(SERVERS):
            proc = self._procs.pop(name, None)
            self.pids.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def destroy(self) -> None:
        """Stop and delete the data."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    @contextlib.contextmanager
    def stopped(self):
        """Swift is down inside the block and back on the same ports and data after it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def config_section(self) -> dict[str, str]:
        """The ``[swift]`` section for ``config.from_dict`` (tempauth, v1)."""
        return {
            "os_auth_url": self.auth_url,
            "os_username": self.user,
            "os_password": self.key,
            "os_project_name": "test",
            "os_identity_api_version": "1",
        }


def unreachable_config_section() -> dict[str, str]:
    """A ``[swift]`` section whose auth URL refuses connections (store-failure tests).

    Cheaper than stopping the shared server: the client meets the same
    "connection refused" as with a Swift that is down.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "os_auth_url": f"http://127.0.0.1:{port}/auth/v1.0",
        "os_username": USER,
        "os_password": KEY,
        "os_project_name": "test",
        "os_identity_api_version": "1",
    }


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If pytest is killed outright, the servers get SIGTERM instead of lingering.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_swift(attempts: int = 3, proxy_ip: str = "127.0.0.1") -> SwiftServer:
    """Build (if needed) the venv, configure a fresh Swift and start it.

    A start that fails (e.g. a port taken after all) is retried on new ports.
    ``proxy_ip`` is the address the proxy (the only server clients talk to) listens on.
    """
    venv = ensure_swift_venv()
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    for attempt in range(1, attempts + 1):
        base = Path(tempfile.mkdtemp(prefix="autopkgtest-web-swift-", dir=parent))
        try:
            server = SwiftServer(venv, base, proxy_ip)
            server.start()
        except SwiftSetupError as err:
            shutil.rmtree(base, ignore_errors=True)
            if attempt == attempts:
                raise
            log.warning("Swift start failed (attempt %d), retrying on new ports: %s", attempt, err)
            continue
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        atexit.register(server.destroy)
        return server
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def swift_server():
    """A running Swift All In One for the whole test session."""
    server = start_swift()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def swift_store(swift_server):
    """A SwiftStore on the session's Swift; tests use unique container names."""
    from webcontrol.config import from_dict
    from webcontrol.store.swift import SwiftStore

    if not swift_server.running:
        swift_server.start()
    store = SwiftStore.from_config(from_dict({"swift": swift_server.config_section()}))
    try:
        yield store
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Real single-node Swift for autopkgtest-web tests.")
    parser.add_argument("--prepare", action="store_true", help="build the Swift virtualenv (once) and exit")
    parser.add_argument("--serve", action="store_true", help="start Swift, print its [swift] config, run until ^C")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.prepare:
            print(ensure_swift_venv())
            return 0
        if args.serve:
            server = start_swift()
            for key, value in server.config_section().items():
                print(f"{key} = {value}")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            server.destroy()
            return 0
    except SwiftSetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
