# SPDX-License-Identifier: GPL-3.0-or-later
"""One long-lived, confirmed AMQP publishing connection per web process.

Opening a connection costs more than the rest of a request together, so
request.cgi keeps one, guarded by a lock (pika connections are not
thread-safe). A connection found dead *before* publishing is replaced
silently; a failure while publishing or confirming is never retried (the
broker may hold the message already) and becomes BrokerError, i.e. a 503 with
nothing reported as submitted. Only an unroutable message (its queue vanished
after we declared it: certainly not delivered) is declared again and resent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import pika
import pika.exceptions

from webcontrol import amqp

log = logging.getLogger(__name__)

#: Well under the broker's heartbeat timeout (2 x 60 s).
IDLE_RECONNECT_S = 30.0


class Publisher:
    def __init__(self, uri: str, **connection_overrides):
        self.uri = uri
        self.connection_overrides = connection_overrides
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._declared: set[str] = set()
        self._last_used = 0.0

    def _fresh_channel(self):
        now = time.monotonic()
        idle = now - self._last_used
        self._last_used = now
        if idle > IDLE_RECONNECT_S and self._connection is not None:
            # Between requests nobody answers the broker's heartbeats; rather than let the broker
            # drop us (and pika log it as an error), start afresh after a quiet spell.
            self._close()
        if self._connection is not None and self._connection.is_open and self._channel is not None:
            try:
                # Handles heartbeats and notices a connection the broker closed while we were idle.
                self._connection.process_data_events(time_limit=0)
                if self._channel.is_open:
                    return self._channel
            except (pika.exceptions.AMQPError, OSError) as err:
                log.info("AMQP publishing connection lost while idle (%r); reconnecting", err)
        self._close()
        self._connection = amqp.connect(self.uri, **self.connection_overrides)
        try:
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        except (pika.exceptions.AMQPError, OSError) as err:
            self._close()
            raise amqp.BrokerError(f"cannot open a confirmed channel: {err!r}") from err
        self._declared.clear()
        return self._channel

    def publish(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Publish ``(queue, body)`` pairs, each confirmed by the broker. Raises BrokerError."""
        with self._lock:
            channel = self._fresh_channel()
            try:
                for queue, body in messages:
                    self._publish_one(channel, queue, body)
            except (pika.exceptions.AMQPError, OSError) as err:
                self._close()
                raise amqp.BrokerError(f"publish not confirmed: {err!r}") from err

    def _publish_one(self, channel, queue: str, body: bytes) -> None:
        if queue not in self._declared:
            amqp.declare_request_queue(channel, queue)
            self._declared.add(queue)
        try:
            channel.basic_publish("", queue, body, amqp.PERSISTENT, mandatory=True)
        except pika.exceptions.UnroutableError:
            log.warning("queue %s vanished; declaring it again", queue)
            amqp.declare_request_queue(channel, queue)
            channel.basic_publish("", queue, body, amqp.PERSISTENT, mandatory=True)

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def close(self) -> None:
        with self._lock:
            self._close()
