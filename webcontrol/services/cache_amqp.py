# SPDX-License-Identifier: GPL-3.0-or-later
"""cache-amqp: write queued.json, a snapshot of every ``debci-*`` test queue.

Next to it go what browse.cgi serves from it, ``queues.json`` and
``queue_size.json``, and its lookup index ``queued.json.index``
(:mod:`webcontrol.liveindex`), so that no web process parses queued.json.

For every context × supported release × arch with results in the public DB
it peeks the queue without consuming it (docs/formats.rst, Peeking queues and queued.json): a fresh
channel, every message taken without ack, then the channel is closed, which
puts them all back in their original order. Nothing is rejected inside the
read loop (a rejected message comes straight back: the old reader spun
forever). A missing queue is empty.

While peeked, messages are invisible to workers, so the hold is kept short:
bodies are only collected while the channel is open and are decoded after
it is closed. Two ways to take the messages are offered:

- ``consume`` (default): a consumer without ack and without prefetch limit
  takes the ready messages the broker counted at the start (or until nothing
  arrives for a moment, when workers took some), is cancelled, and then
  ``basic_get`` without ack takes whatever is still ready until the queue
  says empty; then the channel is closed. The broker pushes the queue in
  bulk, several times faster than one round trip per message, so each
  message is held for a fraction of the time.
- ``get``: ``basic_get`` without ack until the queue says empty, exactly as
  docs/formats.rst (Peeking queues) words it; one round trip per message (~4,500/s with pika).

Only one reader peeks at a time: locally through ``<amqp_queue_cache>.lock``
and, where the operator created ``semaphore-<ctx>-<rel>-<arch>`` queues,
across hosts by holding that queue's single token while peeking.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions

from webcontrol import amqp, db, liveindex, results
from webcontrol.atomicfile import write_atomic
from webcontrol.config import Config
from webcontrol.livestate import MALFORMED_REQUEST, PRIVATE_JOB, is_hidden
from webcontrol.messages import MalformedMessage, json_object
from webcontrol.services import periodic
from webcontrol.services.base import ProgramError, run_program

log = logging.getLogger(__name__)

#: How long a peek waits for the next message before it takes the queue as drained.
DRAIN_IDLE_S = 0.1
#: How long to wait for another host's semaphore token before skipping the queue for this pass.
SEMAPHORE_WAIT_S = 60.0
PEEK_METHODS = ("consume", "get")
PROGRAM = "cache-amqp"


@dataclass
class PeekStats:
    queues: int = 0
    messages: int = 0
    longest_hold_s: float = 0.0
    longest_hold_queue: str = ""
    skipped: int = 0


def render_request(body: bytes) -> str:
    """A queue item as queued.json shows it (docs/formats.rst, queued.json).

    The body verbatim, except: hidden requests become ``private job``; a
    bare package ``<pkg>\n{}`` (clients split every item at its first
    whitespace); a body that is not UTF-8, or whose JSON part is not a JSON
    object a consumer would accept (see :func:`webcontrol.messages.json_object`),
    ``malformed request``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return MALFORMED_REQUEST
    parts = text.split(None, 1)
    if not parts:
        return MALFORMED_REQUEST
    if len(parts) == 1:
        return f"{parts[0]}\n{{}}"
    try:
        params = json_object(parts[1])
    except MalformedMessage:
        return MALFORMED_REQUEST
    if is_hidden(params):
        return PRIVATE_JOB
    return text


def arches_by_release(conn, releases: list[str]) -> dict[str, list[str]]:
    """Per release, the arches that have results in the public DB, sorted."""
    out = {}
    for release in releases:
        rows = conn.execute(
            "SELECT DISTINCT test.arch FROM test WHERE test.release = ?"
            " AND EXISTS (SELECT 1 FROM result WHERE result.test_id = test.id) ORDER BY test.arch",
            (release,),
        )
        out[release] = [row[0] for row in rows]
    return out


def queue_entry(bodies: list[bytes]) -> dict:
    """One queue's entry in queued.json: its size and its requests in queue order."""
    return {"size": len(bodies), "requests": [render_request(body) for body in bodies]}


def queued_document(releases: list[str], arches: dict[str, list[str]], entry: Callable[[str, str, str], dict]) -> dict:
    """The queued.json document (docs/formats.rst, queued.json): every context × release × arch with results."""
    queues: dict[str, dict] = {}
    for context in results.CONTEXTS:
        for release in releases:
            for arch in arches.get(release, []):
                queues.setdefault(context, {}).setdefault(release, {})[arch] = entry(context, release, arch)
    return {
        "releases": list(releases),
        "arches": sorted({a for release in releases for a in arches.get(release, [])}),
        "queues": queues,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class QueueCache:
    """One pass reads every queue and replaces queued.json."""

    def __init__(
        self,
        uri: str,
        path: str,
        releases: list[str],
        arches: dict[str, list[str]],
        queue_prefix: str = "",
        peek_method: str = "consume",
        semaphore_wait: float = SEMAPHORE_WAIT_S,
        refresh_targets: Callable[[], tuple[list[str], dict[str, list[str]]]] | None = None,
    ):
        if peek_method not in PEEK_METHODS:
            raise ValueError(f"peek method must be one of {PEEK_METHODS}, not {peek_method!r}")
        self.uri = uri
        self.path = path
        self.releases = releases
        self.arches = arches
        #: Tests and benchmarks put their queues under a unique prefix.
        self.queue_prefix = queue_prefix
        self.peek_method = peek_method
        self.semaphore_wait = semaphore_wait
        #: Re-reads releases and arches before each pass of a long-running loop.
        self.refresh_targets = refresh_targets
        self.stats = PeekStats()
        self.stopping = threading.Event()
        self._previous: dict = {}

    def stop(self) -> None:
        self.stopping.set()

    def queue_name(self, context: str, release: str, arch: str) -> str:
        return self.queue_prefix + results.queue_name(context, release, arch)

    def semaphore_name(self, context: str, release: str, arch: str) -> str:
        return f"{self.queue_prefix}semaphore-{context}-{release}-{arch}"

    # Peeking -------------------------------------------------------------------------------

    def _peek(self, connection: pika.BlockingConnection, queue: str) -> list[bytes]:
        """Bodies of every message of ``queue`` in order; all requeued on return."""
        channel = connection.channel()
        bodies: list[bytes] = []
        started = None
        try:
            if self.peek_method == "get":
                while True:
                    method, _props, body = channel.basic_get(queue, auto_ack=False)
                    if method is None:
                        break
                    if started is None:
                        started = time.monotonic()
                    bodies.append(body)
            else:
                count = channel.queue_declare(queue, passive=True).method.message_count
                if count:
                    channel.basic_qos(prefetch_count=0)
                    started = time.monotonic()
                    for method, _props, body in channel.consume(queue, auto_ack=False, inactivity_timeout=DRAIN_IDLE_S):
                        if method is None:
                            break  # a worker took the rest meanwhile
                        bodies.append(body)
                        if len(bodies) >= count:
                            break
                    # Stop the pushes (undelivered ones go back in place), then take whatever is
                    # still ready with basic_get: a slow broker or new arrivals never go missing.
                    channel.cancel()
                    while True:
                        method, _props, body = channel.basic_get(queue, auto_ack=False)
                        if method is None:
                            break
                        bodies.append(body)
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code != 404:
                raise
            return []  # no such queue: empty
        finally:
            # Closing the channel requeues every unacked message in its original order.
            if channel.is_open:
                channel.close()
            if started is not None:
                self._record_hold(queue, time.monotonic() - started)
        return bodies

    def _record_hold(self, queue: str, seconds: float) -> None:
        if seconds > self.stats.longest_hold_s:
            self.stats.longest_hold_s = seconds
            self.stats.longest_hold_queue = queue

    def _semaphore_exists(self, connection: pika.BlockingConnection, name: str) -> bool:
        channel = connection.channel()
        try:
            channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code == 404:
                return False
            raise
        channel.close()
        return True

    def _take_token(self, connection: pika.BlockingConnection, name: str):
        """``(channel, delivery tag)`` holding the semaphore token, or None after the wait."""
        channel = connection.channel()
        deadline = time.monotonic() + self.semaphore_wait
        while True:
            method, _props, _body = channel.basic_get(name, auto_ack=False)
            if method is not None:
                return channel, method.delivery_tag
            if time.monotonic() >= deadline or self.stopping.is_set():
                channel.close()
                return None
            # Another host is peeking this queue; its hold is short.
            connection.sleep(1.0)

    def read_queue(
        self, connection: pika.BlockingConnection, context: str, release: str, arch: str
    ) -> list[bytes] | None:
        """The queue's bodies, or None when another host kept its semaphore too long."""
        queue = self.queue_name(context, release, arch)
        semaphore = self.semaphore_name(context, release, arch)
        if not self._semaphore_exists(connection, semaphore):
            return self._peek(connection, queue)
        token = self._take_token(connection, semaphore)
        if token is None:
            log.warning(
                "skipping %s this pass: semaphore %s not released within %.0f s", queue, semaphore, self.semaphore_wait
            )
            return None
        channel, tag = token
        try:
            return self._peek(connection, queue)
        finally:
            channel.basic_reject(tag, requeue=True)  # give the token back
            channel.close()

    # One pass ------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Read every queue; the queued.json document. Raises amqp.BrokerError."""
        self.stats = PeekStats()
        started = time.monotonic()
        connection = amqp.connect(self.uri)
        try:
            document = queued_document(
                self.releases, self.arches, lambda ctx, rel, arch: self._entry(connection, ctx, rel, arch)
            )
        except pika.exceptions.AMQPError as err:
            raise amqp.BrokerError(f"reading queues failed: {err!r}") from err
        finally:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass
        log.info(
            "read %d queues, %d requests in %.2f s; longest hold %.0f ms (%s)",
            self.stats.queues,
            self.stats.messages,
            time.monotonic() - started,
            self.stats.longest_hold_s * 1000,
            self.stats.longest_hold_queue or "-",
        )
        return document

    def _entry(self, connection, context: str, release: str, arch: str) -> dict:
        bodies = self.read_queue(connection, context, release, arch)
        if bodies is None:
            self.stats.skipped += 1
            previous = ((self._previous.get("queues") or {}).get(context) or {}).get(release, {}).get(arch)
            return previous if isinstance(previous, dict) else queue_entry([])
        self.stats.queues += 1
        self.stats.messages += len(bodies)
        return queue_entry(bodies)

    def run_once(self) -> dict:
        """One pass: snapshot and replace the file. Raises amqp.BrokerError, OSError."""
        if self.refresh_targets is not None:
            try:
                self.releases, self.arches = self.refresh_targets()
            except db.DatabaseError as err:
                log.error("cannot read releases and arches, using the previous ones: %s", err)
        document = self.snapshot()
        text = json.dumps(document, ensure_ascii=False)
        # What browse.cgi serves as /queues.json and /queue_size.json, then the lookup index for pages
        # (naming the versions of all three) go into place just before the file they are derived from.
        listings = liveindex.write_queue_listings(self.path, document)
        write_atomic(
            self.path,
            text,
            before_replace=lambda tmp: liveindex.write_queued_index(tmp, self.path, document, listings),
        )
        self._previous = document
        return document

    def run_forever(self, interval: float) -> None:
        """A pass every ``interval`` seconds until stop(); broker failures are logged and retried."""
        periodic.repeat(PROGRAM, self.loop_pass, interval, self.stopping)

    def write_once(self) -> None:
        """run_once() as a program's pass (the document is for tests and the demo)."""
        self.run_once()

    def loop_pass(self) -> None:
        """A pass of the loop: a broker or write failure is logged and the next pass tries again."""
        try:
            self.run_once()
        except amqp.BrokerError as err:
            log.error("pass failed, keeping the previous %s: %s", self.path, err)
        except OSError as err:
            log.error("cannot write %s: %s", self.path, err)


def releases_and_arches(config: Config) -> tuple[list[str], dict[str, list[str]]]:
    """Supported releases and their arches with results, from config and the public DB."""
    conn = db.connect_ro(config.need("web", "database_public"))
    try:
        releases = config.supported_releases(db.releases_by_age(conn))
        return releases, arches_by_release(conn, releases)
    finally:
        conn.close()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loop", type=float, metavar="SECONDS", help="repeat a pass every SECONDS (default: one pass)")
    parser.add_argument(
        "--peek-method",
        choices=PEEK_METHODS,
        default="consume",
        help="how messages are taken while peeking (default: %(default)s)",
    )


def _body(args: argparse.Namespace, config: Config) -> int:
    uri = config.need("amqp", "uri")
    path = config.need("web", "amqp_queue_cache")
    if args.loop is not None and args.loop <= 0:
        raise ProgramError("--loop needs a positive number of seconds")
    with periodic.single_instance(f"{path}.lock", PROGRAM) as held:
        if not held:
            return 0
        releases, arches = releases_and_arches(config)
        cache = QueueCache(uri, path, releases, arches, peek_method=args.peek_method)
        if args.loop is None:
            return periodic.run_passes(PROGRAM, cache.write_once)
        cache.refresh_targets = lambda: releases_and_arches(config)
        return periodic.run_passes(PROGRAM, cache.loop_pass, args.loop, cache.stopping)


def main(argv: list[str] | None = None) -> int:
    return run_program(
        "Write queued.json: a snapshot of every test queue, read without consuming.", _body, _add_arguments, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
