# SPDX-License-Identifier: GPL-3.0-or-later
"""RabbitMQ: connections from ``[amqp] uri``, declarations, publishing, one consumer base.

The consumer base owns the loop every long-running consumer needs:
reconnect with backoff when the broker goes away, reject a malformed message
once without requeue (the broker dead-letters it if the operator set a
policy), hand valid messages to the subclass in batches, and ack only after
the subclass returned (its work is durable by then).
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pika
import pika.exceptions

from webcontrol.messages import MalformedMessage

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 60
PERSISTENT = pika.BasicProperties(delivery_mode=2)


class BrokerError(Exception):
    """The broker is unreachable or did not confirm a publish."""


def broker_uris(uri: str) -> list[str]:
    """The broker URIs of ``[amqp] uri``: one, or the nodes of a cluster separated by spaces. Raises ValueError."""
    uris = uri.split()
    if not uris:
        raise ValueError("no amqp:// URI given")
    return uris


def connection_parameters(uri: str, **overrides: Any) -> pika.ConnectionParameters:
    """Parameters for one ``amqp://user:password@host[:port][/vhost]``. Raises ValueError.

    The port defaults to 5672 and the vhost to ``/``; a percent-encoded vhost
    (``/%2F``) is honoured.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("amqp", "amqps") or not parsed.hostname:
        raise ValueError(f"not an amqp:// URI: {uri!r}")
    vhost = urllib.parse.unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
    credentials = pika.PlainCredentials(
        urllib.parse.unquote(parsed.username or "guest"), urllib.parse.unquote(parsed.password or "guest")
    )
    options: dict[str, Any] = {
        "host": parsed.hostname,
        "port": parsed.port or (5671 if parsed.scheme == "amqps" else 5672),
        "virtual_host": vhost,
        "credentials": credentials,
        "heartbeat": 60,
        "blocked_connection_timeout": CONFIRM_TIMEOUT_S,
        "socket_timeout": 10,
        "connection_attempts": 1,
        "client_properties": {"connection_name": f"autopkgtest-web@{socket.gethostname()}"},
    }
    if parsed.scheme == "amqps":
        import ssl

        options["ssl_options"] = pika.SSLOptions(ssl.create_default_context(), parsed.hostname)
    options.update(overrides)
    return pika.ConnectionParameters(**options)


def cluster_parameters(uri: str, **overrides: Any) -> list[pika.ConnectionParameters]:
    """Parameters for every node named in ``[amqp] uri``, in the order given. Raises ValueError."""
    return [connection_parameters(one, **overrides) for one in broker_uris(uri)]


def connect(uri: str, **overrides: Any) -> pika.BlockingConnection:
    """A blocking connection to the first node of ``uri`` that answers. Raises BrokerError, ValueError.

    Nodes are tried in the order given and each call starts again at the
    first, so once a preferred node is back, the next reconnect returns to
    it. (The nodes are tried one by one rather than handing pika the list:
    pika gives up on the whole list when one host name does not resolve.)
    """
    parameters = cluster_parameters(uri, **overrides)
    failures = []
    for params in parameters:
        try:
            connection = pika.BlockingConnection(params)
        except (pika.exceptions.AMQPError, OSError) as err:
            failures.append(f"{params.host}:{params.port}: {err!r}")
            continue
        if failures:
            log.warning(
                "RabbitMQ node(s) unreachable (%s); connected to %s:%s", "; ".join(failures), params.host, params.port
            )
        return connection
    raise BrokerError("cannot connect to RabbitMQ: " + "; ".join(failures))


QUEUE_TYPES = ("classic", "quorum")


def queue_arguments(queue_type: str) -> dict[str, str] | None:
    """Declaration arguments of our durable queues for ``[amqp] queue_type``. Raises ValueError.

    ``classic`` declares without arguments, exactly as before, so queues that
    already exist on a broker keep matching.
    """
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type must be one of {', '.join(QUEUE_TYPES)}, not {queue_type!r}")
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else None


def host_queue_name(base: str) -> str:
    """Our consumer queues are per host so each web host gets its own copy."""
    return f"{base}-{socket.getfqdn()}"


def declare_exchange(connection: pika.BlockingConnection, channel, name: str, durable: bool, auto_delete: bool = False):
    """Declare a fanout exchange; on 406 (it exists with other flags) redeclare passively.

    Returns the channel to use (a 406 closes the one it happened on).
    """
    try:
        channel.exchange_declare(name, exchange_type="fanout", durable=durable, auto_delete=auto_delete)
        return channel
    except pika.exceptions.ChannelClosedByBroker as err:
        if err.reply_code != 406:
            raise
        log.warning("exchange %s exists with other parameters (%s); using it as it is", name, err.reply_text)
        channel = connection.channel()
        channel.exchange_declare(name, passive=True)
        return channel


def declare_request_queue(channel, name: str) -> None:
    """The ``debci-*`` queues: durable, not auto-delete, no arguments."""
    channel.queue_declare(name, durable=True, auto_delete=False)


def publish_requests(uri: str, messages: Iterable[tuple[str, bytes]]) -> None:
    """Publish ``(queue, body)`` pairs with publisher confirms. Raises BrokerError.

    Either every message is confirmed by the broker, or BrokerError is raised
    (callers then report that nothing was submitted).
    """
    connection = connect(uri)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for queue, body in messages:
            declare_request_queue(channel, queue)
            channel.basic_publish("", queue, body, PERSISTENT, mandatory=True)
    except (pika.exceptions.AMQPError, OSError) as err:
        raise BrokerError(f"publish not confirmed: {err!r}") from err
    finally:
        try:
            connection.close()
        except (pika.exceptions.AMQPError, OSError):
            pass


T = TypeVar("T")


@dataclass
class Delivery(Generic[T]):
    tag: int
    message: T
    redelivered: bool


class Consumer(Generic[T]):
    """Base of download-results and amqp-status-collector.

    Subclasses set ``exchange``/``queue`` attributes and implement
    :meth:`parse` (bytes → message, raising MalformedMessage; any other
    exception it raises also rejects the message as malformed) and
    :meth:`process` (a batch of parsed messages; when it returns, they are
    acked). :meth:`tick` runs at least every ``tick_seconds`` for periodic
    work. ``stop()`` only sets a flag; the loop ends at its next turn.
    """

    exchange: str
    exchange_durable = True
    exchange_auto_delete = False
    queue: str
    queue_durable = True
    queue_auto_delete = False
    prefetch = 500
    batch_size = 200
    batch_seconds = 0.2
    tick_seconds = 1.0
    backoff_max_seconds = 30.0

    def __init__(self, uri: str, queue_type: str = "classic"):
        self.uri = uri
        # Quorum queues are always durable and never auto-delete: only a durable queue takes the type.
        self.queue_arguments = queue_arguments(queue_type) if self.queue_durable else None
        self._stopping = False
        self.rejected = 0

    # Subclass API ---------------------------------------------------------------

    def parse(self, body: bytes) -> T:
        raise NotImplementedError

    def process(self, deliveries: list[Delivery[T]]) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Periodic work (flush files, expire state)."""

    # Loop -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True

    def run_forever(self) -> None:
        """Consume until stop(); reconnect with backoff on broker failures."""
        backoff = 1.0
        while not self._stopping:
            try:
                self._consume()
                backoff = 1.0
            except (BrokerError, pika.exceptions.AMQPError, OSError) as err:
                if self._stopping:
                    break
                log.warning("broker connection lost (%r); reconnecting in %.0f s", err, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_seconds)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            self.tick()
            time.sleep(min(self.tick_seconds, max(0.0, deadline - time.monotonic())))

    def declare(self, connection: pika.BlockingConnection, channel):
        """Declare our exchange and queue and bind them; returns the channel."""
        channel = declare_exchange(connection, channel, self.exchange, self.exchange_durable, self.exchange_auto_delete)
        try:
            channel.queue_declare(
                self.queue,
                durable=self.queue_durable,
                auto_delete=self.queue_auto_delete,
                arguments=self.queue_arguments,
            )
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code != 406:
                raise
            # The operator made it with other settings (e.g. dead-lettering), or it predates a
            # change of [amqp] queue_type: use it as it is.
            log.warning("queue %s exists with other parameters (%s); using it as it is", self.queue, err.reply_text)
            channel = connection.channel()
            channel.queue_declare(self.queue, passive=True)
        channel.queue_bind(self.queue, self.exchange)
        return channel

    def _consume(self) -> None:
        connection = connect(self.uri)
        try:
            channel = self.declare(connection, connection.channel())
            channel.basic_qos(prefetch_count=self.prefetch)
            log.info("consuming %s from %s", self.queue, self.exchange)
            pending: list[Delivery[T]] = []
            batch_started = time.monotonic()
            last_tick = time.monotonic()
            for method, _properties, body in channel.consume(self.queue, inactivity_timeout=self.batch_seconds):
                if method is not None:
                    delivery = self._parse_delivery(channel, method, body)
                    if delivery is not None:
                        if not pending:
                            batch_started = time.monotonic()
                        pending.append(delivery)
                now = time.monotonic()
                if pending and (
                    method is None or len(pending) >= self.batch_size or now - batch_started >= self.batch_seconds
                ):
                    self.process(pending)
                    channel.basic_ack(pending[-1].tag, multiple=True)
                    pending = []
                if now - last_tick >= self.tick_seconds:
                    self.tick()
                    last_tick = now
                if self._stopping:
                    break
            if pending:
                self.process(pending)
                channel.basic_ack(pending[-1].tag, multiple=True)
            channel.cancel()
        finally:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def _parse_delivery(self, channel, method, body: bytes) -> Delivery[T] | None:
        """The parsed delivery, or None after rejecting it (without requeue) as malformed.

        Whatever parsing or validating one message raises makes that message
        malformed, not the consumer broken: a body that trips an unforeseen
        error would otherwise stop the daemon, and the broker would hand the
        same body to the restarted one.
        """
        try:
            message = self.parse(body)
        except Exception as err:  # noqa: BLE001 - any failure on one body is that body's fault
            reason = str(err) if isinstance(err, MalformedMessage) else f"{type(err).__name__}: {str(err)[:200]}"
            self.rejected += 1
            log.error("rejecting malformed message, delivery tag %s on %s: %s", method.delivery_tag, self.queue, reason)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return None
        return Delivery(method.delivery_tag, message, bool(method.redelivered))
