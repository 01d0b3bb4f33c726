# SPDX-License-Identifier: GPL-3.0-or-later
"""amqp-status-collector: keep running.json from the workers' status messages.

A long-running consumer of ``teststatus.fanout`` through its own
non-durable, auto-delete queue ``running-listener-<fqdn>`` (docs/formats.rst, Status message
and running.json). The state lives in memory, starting from the file the previous run
left (a restart must not publish fewer runs than it had); each message sets or
removes one leaf ``package → run key → release → arch``. The file is
rewritten atomically, at most twice a second however fast messages arrive,
within a second of any change, and at least every minute even when nothing
changed, so its age is a heartbeat for /health. Leaves that stop getting
status messages (a dead worker) expire.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from typing import Any

from webcontrol import amqp, liveindex, results
from webcontrol.atomicfile import write_atomic
from webcontrol.config import Config
from webcontrol.livestate import PRIVATE_LOGTAIL, PRIVATE_PACKAGE, is_hidden
from webcontrol.messages import MalformedMessage, StatusMessage
from webcontrol.services.base import run_program, stop_signals

log = logging.getLogger(__name__)

#: Coalescing: no two writes closer than this (≤ 2 writes/s) ...
MIN_WRITE_INTERVAL_S = 0.5
#: ... and a rewrite at least this often even without changes (heartbeat, docs/formats.rst, /health).
HEARTBEAT_S = 60.0
#: How often expired leaves are looked for.
EXPIRY_SCAN_S = 1.0

#: Package, release and arch become JSON keys and URL path segments.
_NOT_A_NAME = re.compile(r"[\s/]")

Leaf = tuple[str, str, str, str]  # package, run key, release, arch


class RunningState:
    """The running.json tree plus when each leaf was last confirmed.

    Kept separate from the consumer so the rules (run key, private slots,
    pruning, expiry) are testable without a broker.
    """

    def __init__(self) -> None:
        self.tree: dict[str, dict[str, dict[str, dict[str, list]]]] = {}
        self.seen: dict[Leaf, float] = {}

    @staticmethod
    def slot(message: StatusMessage) -> tuple[Leaf, list]:
        """Where a message goes and the leaf value it carries."""
        if message.package == PRIVATE_PACKAGE or is_hidden(message.params):
            # One slot per private run, keyed by an opaque id; never its params (credentials).
            uuid = message.uuid or message.params.get("uuid") or ""
            key = uuid if isinstance(uuid, str) else ""
            return (PRIVATE_PACKAGE, key, message.release, message.architecture), [
                {},
                message.duration,
                PRIVATE_LOGTAIL,
            ]
        # The key is computed over the params exactly as received: clients recompute it.
        key = results.run_key(message.params)
        leaf = (message.package, key, message.release, message.architecture)
        return leaf, [message.params, message.duration, message.logtail]

    def apply(self, message: StatusMessage, now: float) -> bool:
        """Set or remove the message's leaf; True when the tree changed."""
        leaf, value = self.slot(message)
        if message.running:
            self.seen[leaf] = now
            package, key, release, arch = leaf
            arches = self.tree.setdefault(package, {}).setdefault(key, {}).setdefault(release, {})
            if arches.get(arch) == value:
                return False
            arches[arch] = value
            return True
        return self.remove(leaf)

    def remove(self, leaf: Leaf) -> bool:
        """Drop a leaf and every parent it leaves empty; True if it existed."""
        self.seen.pop(leaf, None)
        package, key, release, arch = leaf
        keys = self.tree.get(package)
        releases = keys.get(key) if keys else None
        arches = releases.get(release) if releases else None
        if not arches or arch not in arches:
            return False
        del arches[arch]
        if not arches:
            del releases[release]
            if not releases:
                del keys[key]
                if not keys:
                    del self.tree[package]
        return True

    def expire(self, now: float, max_age: float) -> int:
        """Drop leaves without a status for ``max_age`` seconds; returns how many."""
        stale = [leaf for leaf, seen in self.seen.items() if now - seen > max_age]
        for leaf in stale:
            log.info(
                "expiring %s %s/%s (run key %r): no status for %.0f s", leaf[0], leaf[2], leaf[3], leaf[1], max_age
            )
            self.remove(leaf)
        return len(stale)

    def leaves(self) -> int:
        return len(self.seen)

    def restore(self, tree: Any, seen: float) -> int:
        """Take over a running.json tree as if each leaf had been confirmed at ``seen``.

        Returns how many leaves were taken; a tree that is not a valid
        running.json (package → run key → release → arch → 3-item list) is
        not taken at all (0).
        """
        restored: dict[Leaf, list] = {}
        if not isinstance(tree, dict):
            return 0
        for package, keys in tree.items():
            if not isinstance(keys, dict):
                return 0
            for key, releases in keys.items():
                if not isinstance(releases, dict):
                    return 0
                for release, arches in releases.items():
                    if not isinstance(arches, dict):
                        return 0
                    for arch, value in arches.items():
                        if not (isinstance(value, list) and len(value) == 3):
                            return 0
                        restored[(package, key, release, arch)] = value
        for (package, key, release, arch), value in restored.items():
            self.tree.setdefault(package, {}).setdefault(key, {}).setdefault(release, {})[arch] = value
            self.seen[(package, key, release, arch)] = seen
        return len(restored)


class StatusCollector(amqp.Consumer[StatusMessage]):
    """Consumes status messages and keeps ``path`` (running.json) in step."""

    exchange_durable = False
    queue_durable = False
    queue_auto_delete = True
    tick_seconds = 0.2
    batch_seconds = 0.2

    def __init__(
        self,
        uri: str,
        path: str,
        expiry_seconds: float = 300,
        exchange: str | None = None,
        queue: str | None = None,
        exchange_durable: bool = False,
        exchange_auto_delete: bool = False,
        min_write_interval: float = MIN_WRITE_INTERVAL_S,
        heartbeat: float = HEARTBEAT_S,
    ):
        super().__init__(uri)
        self.path = path
        self.expiry_seconds = expiry_seconds
        self.exchange = exchange or results.STATUS_EXCHANGE
        self.queue = queue or amqp.host_queue_name("running-listener")
        self.exchange_durable = exchange_durable
        self.exchange_auto_delete = exchange_auto_delete
        self.min_write_interval = min_write_interval
        self.heartbeat = heartbeat
        self.state = RunningState()
        self.dirty = True  # the file on disk is not our start state yet
        self.last_write = float("-inf")
        self.last_expiry_scan = time.monotonic()
        self.writes = 0
        self.messages = 0

    def parse(self, body: bytes) -> StatusMessage:
        message = StatusMessage.parse(body)
        for name in ("package", "release", "architecture"):
            value = getattr(message, name)
            if not value or _NOT_A_NAME.search(value):
                raise MalformedMessage(f"{name} {value!r} is not a name")
        # Computing its slot (the run key over its params) is part of validating it: a
        # message whose slot cannot be computed is rejected here, not met in process().
        self.state.slot(message)
        return message

    def process(self, deliveries: list[amqp.Delivery[StatusMessage]]) -> None:
        now = time.monotonic()
        for delivery in deliveries:
            self.messages += 1
            if self.state.apply(delivery.message, now):
                self.dirty = True
        self.flush()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_expiry_scan >= EXPIRY_SCAN_S:
            self.last_expiry_scan = now
            if self.state.expire(now, self.expiry_seconds):
                self.dirty = True
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write the file if it changed (coalesced) or the heartbeat is due."""
        now = time.monotonic()
        since = now - self.last_write
        if force or (self.dirty and since >= self.min_write_interval) or since >= self.heartbeat:
            self.write()

    def write(self) -> None:
        data = json.dumps(self.state.tree, ensure_ascii=False, separators=(",", ":"))
        try:
            # The lookup index for pages goes into place just before the file it describes.
            tree = self.state.tree
            write_atomic(
                self.path, data, before_replace=lambda tmp: liveindex.write_running_index(tmp, self.path, tree)
            )
        except OSError as err:
            # Keep consuming: the next flush retries; /health shows the stale file.
            log.error("cannot write %s: %s", self.path, err)
            self.last_write = time.monotonic()
            return
        self.dirty = False
        self.last_write = time.monotonic()
        self.writes += 1

    def restore(self) -> None:
        """Start from the file a previous run left, so a restart never publishes less than it had.

        Its leaves count as confirmed when the file was last written: a run
        that is still going is confirmed again by its next status message; one
        that ended meanwhile expires like any leaf whose worker went quiet.
        """
        try:
            stat = os.stat(self.path)
            with open(self.path, encoding="utf-8") as handle:
                tree = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as err:
            log.warning("not keeping %s: %s", self.path, err)
            return
        age = max(0.0, time.time() - stat.st_mtime)
        kept = self.state.restore(tree, time.monotonic() - age)
        if kept:
            log.info("kept %d running entries from %s (written %.0f s ago)", kept, self.path, age)
        elif tree != {}:
            log.warning("not keeping %s: not a running.json tree", self.path)

    def run(self) -> None:
        """Take over the previous file's entries, publish them, then consume until stop()."""
        self.restore()
        self.flush(force=True)
        try:
            self.run_forever()
        finally:
            self.flush(force=self.dirty)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", default=results.STATUS_EXCHANGE, help="status exchange (default: %(default)s)")
    parser.add_argument("--queue", help="our auto-delete queue (default running-listener-<fqdn>)")


def _body(args: argparse.Namespace, config: Config) -> int:
    collector = StatusCollector(
        config.need("amqp", "uri"),
        config.need("web", "running_cache"),
        expiry_seconds=config.get("web", "running_expiry_seconds"),
        exchange=args.exchange,
        queue=args.queue,
        exchange_auto_delete=config.get("amqp", "status_exchange_auto_delete"),
    )
    log.info("writing %s from %s (queue %s)", collector.path, collector.exchange, collector.queue)
    with stop_signals(collector.stop):
        collector.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_program(
        "Keep running.json up to date from the workers' status messages (teststatus.fanout).",
        _body,
        _add_arguments,
        argv,
    )


def leaf_message(package: str, release: str, arch: str, value: list[Any], running: bool = True) -> StatusMessage:
    """The status message a worker sends for a running.json leaf (tests, benchmarks, demo)."""
    params, duration, logtail = value
    return StatusMessage(
        release=release,
        architecture=arch,
        package=package,
        running=running,
        params=params,
        duration=duration,
        logtail=logtail,
        uuid=params.get("uuid") if isinstance(params.get("uuid"), str) else None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
