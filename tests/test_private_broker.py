# SPDX-License-Identifier: GPL-3.0-or-later
"""The private RabbitMQ node of the fault tests restarts even when its last distribution port is taken."""

from __future__ import annotations

import socket

import pika

from tests.services.rabbitmq import private_rabbitmq  # noqa: F401  (fixture)


def test_restart_does_not_need_the_previous_distribution_port(private_rabbitmq):  # noqa: F811
    broker = private_rabbitmq
    previous = broker.dist_port
    broker.stop()
    # Whatever took the port meanwhile (here a listener, in the wild an outgoing connection).
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", previous))
        squatter.listen()
        broker.start()
    assert broker.dist_port != previous
    connection = pika.BlockingConnection(pika.URLParameters(broker.uri))
    assert connection.is_open
    connection.close()
