# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the live-state tests: recorded samples, running a collector, publishing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pika.exceptions

from webcontrol.services.amqp_status_collector import StatusCollector, leaf_message

DATA = Path(__file__).resolve().parents[1] / "data" / "client-data"
RUN_2022 = DATA / "ppa-dev-tools" / "running-20220822.json"
RUN_2024 = DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.RUN_DATA.json"
QUEUES_2022 = DATA / "ppa-dev-tools" / "queues-20220822.json"
QUEUED_2024 = DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.QUEUED_DATA.json"


def leaves(tree: dict) -> Iterator[tuple[str, str, str, str, list]]:
    for package, keys in tree.items():
        for key, releases in keys.items():
            for release, arches in releases.items():
                for arch, value in arches.items():
                    yield package, key, release, arch, value


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_file_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class RunningCollector:
    """A StatusCollector on its own thread, started and stopped by the test."""

    def __init__(self, uri: str, path: Path, exchange: str, queue: str, **kwargs):
        self.collector = StatusCollector(uri, str(path), exchange=exchange, queue=queue, **kwargs)
        self.thread = threading.Thread(target=self.collector.run, daemon=True)
        self.uri = uri

    def __enter__(self) -> StatusCollector:
        self.thread.start()
        wait_for(self._queue_exists, what=f"queue {self.collector.queue}")
        return self.collector

    def _queue_exists(self) -> bool:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.uri))
        except pika.exceptions.AMQPError:
            return False
        try:
            connection.channel().queue_declare(self.collector.queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False
        finally:
            connection.close()

    def __exit__(self, *exc) -> None:
        self.collector.stop()
        self.thread.join(20)
        assert not self.thread.is_alive(), "collector did not stop"


def publish(uri: str, exchange: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        channel = connection.channel()
        for body in bodies:
            channel.basic_publish(exchange, "", body)
    finally:
        connection.close()


def status_bodies(tree: dict, running: bool = True) -> list[bytes]:
    return [
        leaf_message(package, release, arch, value, running).serialise()
        for package, _key, release, arch, value in leaves(tree)
    ]


def browse_client(tmp_path: Path, releases: str = "noble", site_url: str | None = "https://autopkgtest.example.com"):
    """A browse.cgi test client reading running.json, queued.json and public.db under tmp_path."""
    from webcontrol import config
    from webcontrol.web.browse import create_app

    cfg = config.from_dict(
        {
            "web": {
                "database_public": tmp_path / "public.db",
                "running_cache": tmp_path / "running.json",
                "amqp_queue_cache": tmp_path / "queued.json",
                "releases": releases,
                "state_dir": tmp_path / "state",
                "site_url": site_url,
            }
        }
    )
    app = create_app(cfg)
    app.testing = True
    return app.test_client()
