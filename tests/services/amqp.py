# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin: the RabbitMQ broker on 127.0.0.1:5672, with per-test names.

Tests share the machine's broker, so every exchange and queue a test makes is
named ``t-<random>-...`` through the ``amqp_names`` fixture and deleted when
the test ends.
"""

from __future__ import annotations

import os
import secrets

import pika
import pika.exceptions
import pytest

BROKER_URI = os.environ.get("AUTOPKGTEST_WEB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


class AmqpNames:
    """Unique names for one test, remembered so they can be deleted."""

    def __init__(self, uri: str):
        self.uri = uri
        self.prefix = f"t-{secrets.token_hex(4)}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, base: str) -> str:
        name = f"{self.prefix}-{base}"
        self.queues.append(name)
        return name

    def exchange(self, base: str) -> str:
        name = f"{self.prefix}-{base}"
        self.exchanges.append(name)
        return name

    def cleanup(self) -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.uri))
        except pika.exceptions.AMQPError:
            return
        try:
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for name in names:
                    channel = connection.channel()
                    try:
                        getattr(channel, f"{kind}_delete")(name)
                        channel.close()
                    except pika.exceptions.ChannelClosedByBroker:
                        pass
        finally:
            connection.close()


@pytest.fixture(scope="session")
def amqp_uri() -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(BROKER_URI)).close()
    except pika.exceptions.AMQPError as err:
        pytest.fail(f"RabbitMQ is not reachable at {BROKER_URI}: {err!r} (.ci/run starts it)")
    return BROKER_URI


@pytest.fixture
def amqp_names(amqp_uri):
    names = AmqpNames(amqp_uri)
    yield names
    names.cleanup()


def drain(uri: str, queue: str) -> list[bytes]:
    """Consume and ack every message of a queue (test assertions)."""
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    bodies = []
    try:
        channel = connection.channel()
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)
    finally:
        connection.close()
