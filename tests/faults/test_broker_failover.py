# SPDX-License-Identifier: GPL-3.0-or-later
"""``[amqp] uri`` with several nodes, and ``[amqp] queue_type``, against real brokers.

Two private RabbitMQ nodes stand for two nodes of a cluster (they are not
clustered here: that makes it visible which node a program talks to; the
cluster itself is exercised by ``bench/cluster_drill.py``). With the first
node stopped, download-results consumes from the second and request
publishing goes there too; once the first node is back, the next reconnect
starts again at the first. The durable queue download-results declares is a
quorum queue when asked, and the test-request queues stay classic.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import sqlite3
import threading

import pika
import pytest

from tests.faults.conftest import PolicyBroker, wait_for
from tests.faults.workload import completion_messages, expected_keys, stored_keys
from tests.services.rabbitmq import SERVER
from webcontrol import amqp
from webcontrol.services.download_results import ResultRecorder


@pytest.fixture
def two_nodes(tmp_path):
    if not os.path.exists(SERVER):
        pytest.skip(f"{SERVER} is not installed (apt-get install rabbitmq-server)")
    nodes = [PolicyBroker(tmp_path / f"node{i}") for i in (1, 2)]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda node: node.start(), nodes))
        yield nodes
    finally:
        for node in nodes:
            node.destroy()


def queue_types(node: PolicyBroker) -> dict[str, str]:
    """``{queue: type}`` as the broker reports it."""
    out = node.ctl("list_queues", "name", "type", "--no-table-headers", "--quiet")
    return dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)


def publish(uri: str, exchange: str, bodies: list[bytes]) -> None:
    """Publish through the project's own connection code (so the same failover applies)."""
    connection = amqp.connect(uri)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
        for body in bodies:
            channel.basic_publish(exchange, "", body, amqp.PERSISTENT)
    finally:
        connection.close()


def stored(db_path) -> set[tuple]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return set(stored_keys(conn))
    except sqlite3.Error:
        return set()
    finally:
        conn.close()


def test_unreachable_first_node_fails_over_and_reconnects_start_at_the_first(two_nodes, tmp_path):
    first, second = two_nodes
    first.stop()
    uri = f"{first.uri} {second.uri}"
    exchange, queue = f"t-{secrets.token_hex(4)}-complete", f"t-{secrets.token_hex(4)}-complete-listener"
    request_queue = f"debci-t{secrets.token_hex(3)}-amd64"
    messages = completion_messages(60, seed=secrets.token_hex(4))
    bodies = [message.serialise() for message in messages]

    db_path = tmp_path / "rw.db"
    recorder = ResultRecorder(uri, str(db_path), exchange=exchange, queue=queue, queue_type="quorum")
    recorder.backoff_max_seconds = 1.0
    thread = threading.Thread(target=recorder.run_forever, daemon=True)
    thread.start()
    try:
        # The first node refuses connections: everything goes through the second.
        assert wait_for(lambda: queue in queue_types(second), timeout=30)
        publish(uri, exchange, bodies[:30])
        amqp.publish_requests(uri, [(request_queue, b'{"triggers": ["hello/1"]}')])
        assert wait_for(lambda: stored(db_path) == expected_keys(messages[:30]), timeout=30)
        types = queue_types(second)
        assert types[queue] == "quorum"
        assert types[request_queue] == "classic"  # the workers' request queues keep their declaration
        assert second.message_count(request_queue) == 1

        # The first node returns; the second drops every connection: the reconnect goes to the first.
        first.start()
        second.ctl("close_all_connections", "failover test")
        assert wait_for(lambda: queue in queue_types(first), timeout=30)
        assert queue_types(first)[queue] == "quorum"
        publish(uri, exchange, bodies[30:])
        assert wait_for(lambda: stored(db_path) == expected_keys(messages), timeout=30)
        assert second.message_count(queue) == 0  # nothing was left behind on the second node
    finally:
        recorder.stop()
        thread.join(30)
    assert not thread.is_alive()


def test_classic_is_the_default_queue_type(policy_broker, tmp_path):
    node = policy_broker
    exchange, queue = f"t-{secrets.token_hex(4)}-complete", f"t-{secrets.token_hex(4)}-complete-listener"
    recorder = ResultRecorder(node.uri, str(tmp_path / "rw.db"), exchange=exchange, queue=queue)
    thread = threading.Thread(target=recorder.run_forever, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: queue in queue_types(node), timeout=30)
        assert queue_types(node)[queue] == "classic"
        # Declared without arguments, so a queue made by older versions (or by hand) still matches.
        connection = pika.BlockingConnection(pika.URLParameters(node.uri))
        try:
            connection.channel().queue_declare(queue, durable=True)
        finally:
            connection.close()
    finally:
        recorder.stop()
        thread.join(30)


def test_several_uris_are_parsed_in_order():
    params = amqp.cluster_parameters("amqp://u:p@10.0.0.1 amqp://u:p@10.0.0.2:5673/v\n  amqp://u:p@[::1]/%2F")
    assert [(p.host, p.port, p.virtual_host) for p in params] == [
        ("10.0.0.1", 5672, "/"),
        ("10.0.0.2", 5673, "v"),
        ("::1", 5672, "/"),
    ]
    with pytest.raises(ValueError):
        amqp.cluster_parameters("amqp://u:p@10.0.0.1 http://10.0.0.2")
    with pytest.raises(ValueError):
        amqp.cluster_parameters("   ")
