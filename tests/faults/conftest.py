# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the fault suite: sizes, the figures report, a private broker with policies.

Sizes are small in CI and full under ``AUTOPKGTEST_WEB_SOAK=1`` (``bench/soak``
sets it); every size can also be set on its own with
``AUTOPKGTEST_WEB_FAULTS_<NAME>=<int>``. Each test records what it measured
with the ``figures`` fixture; at the end of the session the figures are written
to ``test-artifacts/faults-figures.json`` and printed in the terminal summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pika
import pytest

from tests.fakes.fixtures import fake_launchpad, openid_provider  # noqa: F401 - fixtures of the hostile site
from tests.faults.hostile import hostile_clients, hostile_clients_nosite, hostile_env  # noqa: F401 - fixtures
from tests.faults.sizes import SOAK, size  # noqa: F401 - re-exported for the test modules
from tests.services.rabbitmq import SERVER, PrivateBroker
from webcontrol import config as configmod

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AUTOPKGTEST_WEB_ARTIFACTS", ROOT / "test-artifacts"))
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"

_FIGURES: dict[str, dict] = {}


@pytest.fixture
def figures(request):
    """A dict the test fills with its figures; stored under the test's name."""
    record: dict = {}
    yield record
    if record:
        record_figures(request.node.nodeid.rsplit("/", 1)[-1], record)


def record_figures(name: str, record: dict) -> None:
    """Figures measured outside one test (e.g. by a module fixture over the cases that ran)."""
    _FIGURES[name] = record


def _collect_hostile() -> None:
    """The hostile-input families count into tests.faults.hostile.HITS; report them as one figure."""
    import sys

    module = sys.modules.get("tests.faults.hostile")
    if module is not None and module.HITS:
        _FIGURES["hostile HTTP input (all families)"] = module.summary()


def pytest_sessionfinish(session, exitstatus):
    _collect_hostile()
    if not _FIGURES:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / ("soak-figures.json" if SOAK else "faults-figures.json")
    report = {"mode": "soak" if SOAK else "ci", "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["figures"] = dict(sorted(_FIGURES.items()))
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def pytest_terminal_summary(terminalreporter):
    _collect_hostile()
    if not _FIGURES:
        return
    terminalreporter.section("fault-suite figures" + (" (soak)" if SOAK else ""))
    for name, record in sorted(_FIGURES.items()):
        terminalreporter.write_line(f"{name}: {json.dumps(record, sort_keys=False)}")


# A private broker node with rabbitmqctl ---------------------------------------------


class PolicyBroker(PrivateBroker):
    """A private node that also runs ``rabbitmqctl`` against itself (policies, listings)."""

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()[-1000:]}")
        return done.stdout

    def set_dead_letter_policy(self, name: str, pattern: str, dlx: str) -> None:
        """What an operator does: dead-letter rejected messages of matching queues to ``dlx``."""
        self.ctl("set_policy", "--apply-to", "queues", name, pattern, json.dumps({"dead-letter-exchange": dlx}))

    def connection(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.uri))

    def message_count(self, queue: str) -> int:
        connection = self.connection()
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()


@pytest.fixture(scope="session")
def policy_broker(tmp_path_factory):
    """One private RabbitMQ node for the whole fault session (tests use their own names on it)."""
    if not os.path.exists(SERVER):
        pytest.skip(f"{SERVER} is not installed (apt-get install rabbitmq-server)")
    broker = PolicyBroker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def program(module: str, *args: str) -> list[str]:
    """The command line of a program: its console script when installed, else ``python -m``."""
    import shutil
    import sys

    script = shutil.which(module.replace("_", "-"), path=os.path.dirname(sys.executable))
    if script:
        return [script, *args]
    return [sys.executable, "-m", f"webcontrol.services.{module}", *args]


# A populated Swift container shared by the batch-ingest fault tests ----------------


class SwiftRuns:
    """Distro runs written to one ``autopkgtest-<release>`` container of the session's Swift."""

    def __init__(self, release: str, runs: list, objects: int):
        self.release = release
        self.container = f"autopkgtest-{release}"
        self.runs = runs
        self.objects = objects

    def keys(self) -> set[tuple]:
        return {(r.release, r.arch, r.package, r.run_id) for r in self.runs}


@pytest.fixture(scope="session")
def swift_runs(swift_server):
    """Runs in Swift, written by parallel writers (one SwiftStore each), once per session."""
    import concurrent.futures
    import random
    import secrets
    import threading

    from webcontrol import demodata
    from webcontrol.config import from_dict
    from webcontrol.store.swift import SwiftStore

    release = "f" + secrets.token_hex(3)
    runs_per_test = size("swift_runs_per_test", 5, 25)
    runs = list(demodata.plan_runs([release], ["amd64", "arm64", "s390x"], runs_per_test=runs_per_test))
    local = threading.local()
    stores = []

    def write(run):
        store = getattr(local, "store", None)
        if store is None:
            store = local.store = SwiftStore.from_config(from_dict({"swift": swift_server.config_section()}))
            stores.append(store)
        demodata.write_run(store, run, random.Random(run.run_id))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(write, runs))
    objects = sum(1 for _ in stores[0].iter_objects(f"autopkgtest-{release}"))
    for store in stores:
        store.close()
    return SwiftRuns(release, runs, objects)


def swift_conf(tmp_path, swift_server, **web) -> Path:
    """An autopkgtest-cloud.conf for the batch programs against the session's Swift."""
    values = {
        "web": {"database": tmp_path / "rw.db", "results_store": "swift", **web},
        "swift": swift_server.config_section(),
    }
    path = tmp_path / "autopkgtest-cloud.conf"
    configmod.write(values, path)
    return path


class AppServer:
    """The three web apps in a subprocess (``tests.faults.serve``), stopped by PID."""

    def __init__(self, config_path: Path):
        import sys

        with open(Path(config_path).with_suffix(".server.log"), "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.serve", str(config_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                text=True,
            )
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"test server did not start: {Path(config_path).with_suffix('.server.log').read_text()}")
        self.url = f"http://127.0.0.1:{int(line)}"

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in kB."""
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
        return values

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as handle:
            handle.write("5")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process.stdout.close()
