# SPDX-License-Identifier: GPL-3.0-or-later
"""index-failures: index the failure part of every failing run's log for ``/search``.

Two modes over the same indexer:

- default: a long-running consumer of ``testcomplete.fanout`` on its own
  durable per-host queue ``index-failures-<fqdn>`` (so it never takes
  messages from download-results' queue). For each failing distro run it
  reads ``log.gz`` from the result store, extracts the explaining lines
  (:mod:`webcontrol.failurelog`) and adds them to the FTS5 index
  (:mod:`webcontrol.failureindex`); the batch is acked after its commit.
- ``--backfill [--since DATE]``: every failing run of the results DB since
  DATE (default: the retention window) that the index lacks, newest first.

Both keep the index bounded: runs older than ``[web]
failure_retention_days`` are dropped (at start, then hourly), and each
excerpt is capped at ``[web] failure_excerpt_bytes``. A run whose log is
missing or unreadable is logged and skipped; it never stops the indexer.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sqlite3
import time
from pathlib import Path

from webcontrol import amqp, db, failureindex, failurelog, ingest, results
from webcontrol.config import Config
from webcontrol.messages import CompletionMessage
from webcontrol.services.base import ProgramError, run_program, stop_signals
from webcontrol.store import ResultStore, StoreError, open_store

log = logging.getLogger(__name__)

QUEUE_BASE = "index-failures"
PRUNE_EVERY_S = 3600
BACKFILL_BATCH = 200


class Indexer:
    """Reads logs from the store and writes their excerpts to the index."""

    def __init__(self, store: ResultStore, path: Path, max_bytes: int, retention_days: int):
        self.store = store
        self.conn = failureindex.connect(path)
        self.max_bytes = max_bytes
        self.retention_days = retention_days
        self.counts = {"indexed": 0, "already": 0, "no log": 0, "too old": 0}

    def excerpt(self, release: str, arch: str, package: str, run_id: str) -> str | None:
        """The capped excerpt of a distro run's log, or None when it cannot be read."""
        name = f"{results.run_dir(release, arch, package, run_id)}/log.gz"
        try:
            stream = self.store.open_object(results.distro_container(release), name)
        except StoreError as err:
            log.warning("no log for %s/%s/%s %s: %s", release, arch, package, run_id, err)
            return None
        try:
            return failurelog.extract(stream.chunks, self.max_bytes)
        except (failurelog.LogError, StoreError, OSError) as err:
            log.warning("unreadable log %s: %s", name, err)
            return None
        finally:
            stream.close()

    def cutoff(self) -> str:
        day = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=self.retention_days)
        return results.run_id_for_date(day)

    def index(self, runs: list[tuple[str, str, str, str, str | None, str | None, int | None]]) -> int:
        """Index ``(release, arch, package, run_id, version, triggers, exitcode)`` runs. Returns how many."""
        entries = []
        cutoff = self.cutoff()
        for release, arch, package, run_id, version, triggers, exitcode in runs:
            if run_id < cutoff:
                self.counts["too old"] += 1
                continue
            if failureindex.has_run(self.conn, package, release, arch, run_id):
                self.counts["already"] += 1
                continue
            text = self.excerpt(release, arch, package, run_id)
            if text is None:
                self.counts["no log"] += 1
                continue
            entries.append(failureindex.Entry(package, release, arch, run_id, version, triggers, exitcode, text))
        added = failureindex.add(self.conn, entries) if entries else 0
        self.counts["indexed"] += added
        return added

    def prune(self) -> int:
        return failureindex.prune(self.conn, self.retention_days)

    def close(self) -> None:
        self.conn.close()
        self.store.close()


class FailureConsumer(amqp.Consumer[CompletionMessage]):
    exchange = results.COMPLETE_EXCHANGE
    batch_size = 50
    prefetch = 100

    def __init__(
        self,
        uri: str,
        indexer: Indexer,
        exchange: str | None,
        queue: str | None,
        durable: bool,
        queue_type: str = "classic",
    ):
        super().__init__(uri, queue_type)
        self.indexer = indexer
        self.exchange = exchange or results.COMPLETE_EXCHANGE
        self.exchange_durable = durable
        self.queue = queue or amqp.host_queue_name(QUEUE_BASE)
        self.pruned_at = 0.0

    def parse(self, body: bytes) -> CompletionMessage:
        return CompletionMessage.parse(body)

    def process(self, deliveries: list[amqp.Delivery[CompletionMessage]]) -> None:
        runs = []
        for delivery in deliveries:
            message = delivery.message
            try:
                record = ingest.record_from_completion(message)
            except ingest.NotIngested as why:
                log.debug("not indexing %s (delivery tag %s): %s", message.swift_dir, delivery.tag, why)
                continue
            if failureindex.is_failure(record.exitcode):
                runs.append(
                    (
                        record.release,
                        record.arch,
                        record.package,
                        record.run_id,
                        record.version,
                        record.triggers,
                        record.exitcode,
                    )
                )
        if runs:
            added = self.indexer.index(runs)
            log.info("indexed %d of %d failing runs (%s)", added, len(runs), self.indexer.counts)

    def tick(self) -> None:
        if time.monotonic() - self.pruned_at > PRUNE_EVERY_S:
            self.pruned_at = time.monotonic()
            self.indexer.prune()


def backfill(indexer: Indexer, results_db: str, since: datetime.date | None) -> int:
    """Index every failing run of the results DB since ``since`` (default: the retention window)."""
    first = results.run_id_for_date(since) if since else indexer.cutoff()
    first = max(first, indexer.cutoff())
    conn = db.connect_ro(results_db)
    conn.row_factory = None
    failing = ",".join(str(code) for code in sorted(results.PASSING_CODES))
    try:
        rows = conn.execute(
            "SELECT test.release, test.arch, test.package, result.run_id, result.version, result.triggers,"
            " result.exitcode FROM result JOIN test ON test.id = result.test_id"
            f" WHERE result.run_id >= ? AND (result.exitcode IS NULL OR result.exitcode NOT IN ({failing}))"
            " ORDER BY result.run_id DESC",
            (first,),
        )
        total = 0
        while batch := rows.fetchmany(BACKFILL_BATCH):
            total += indexer.index(batch)
    finally:
        conn.close()
    log.info("backfill since %s: %s", first[:8], indexer.counts)
    return total


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.since and not args.backfill:
        raise ProgramError("--since only applies to --backfill")
    try:
        store = open_store(config)
    except (StoreError, OSError) as err:
        raise ProgramError(f"cannot open the result store: {err}") from err
    try:
        indexer = Indexer(
            store,
            failureindex.index_path(config),
            config.get("web", "failure_excerpt_bytes"),
            config.get("web", "failure_retention_days"),
        )
    except sqlite3.Error as err:
        store.close()
        raise ProgramError(f"cannot open the failure index {failureindex.index_path(config)}: {err}") from err
    try:
        indexer.prune()
        if args.backfill:
            source = config.get("web", "database") or config.need("web", "database_public")
            backfill(indexer, source, args.since)
            return 0
        consumer = FailureConsumer(
            config.need("amqp", "uri"),
            indexer,
            args.exchange,
            args.queue,
            config.get("amqp", "complete_exchange_durable"),
            queue_type=config.get("amqp", "queue_type"),
        )
        with stop_signals(consumer.stop):
            consumer.run_forever()
    finally:
        indexer.close()
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backfill", action="store_true", help="index failing runs of the results DB, then exit")
    parser.add_argument("--since", type=_date, metavar="DATE", help="with --backfill: runs on or after DATE")
    parser.add_argument("--exchange", help=f"exchange to consume (default {results.COMPLETE_EXCHANGE})")
    parser.add_argument("--queue", help=f"our durable queue (default {QUEUE_BASE}-<fqdn>)")


def main(argv=None) -> int:
    return run_program(
        "Index the failure part of failing runs' logs for full-text search (consumer, or --backfill).",
        _run,
        _arguments,
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
