# SPDX-License-Identifier: GPL-3.0-or-later
"""download-results: record every finished distro test from ``testcomplete.fanout``.

A long-running consumer of its own durable queue
``complete-listener-<fqdn>``. Messages are stored in batches (one commit for
up to ``batch_size`` messages, so throughput is not one fsync per message)
and acked only after that commit; a redelivered message finds its row and
is acked without a second row. Malformed messages are rejected once without
requeue by the consumer base.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3

from webcontrol import amqp, db, ingest, results
from webcontrol.config import Config
from webcontrol.messages import CompletionMessage
from webcontrol.services.base import run_program, stop_signals

log = logging.getLogger(__name__)


class ResultRecorder(amqp.Consumer[CompletionMessage]):
    exchange = results.COMPLETE_EXCHANGE
    exchange_durable = True
    queue_durable = True
    queue_auto_delete = False

    def __init__(
        self,
        uri: str,
        db_path: str,
        exchange: str | None = None,
        queue: str | None = None,
        exchange_durable: bool = True,
        queue_type: str = "classic",
    ):
        super().__init__(uri, queue_type)
        self.conn = db.connect_rw(db_path)
        self.exchange = exchange or results.COMPLETE_EXCHANGE
        self.exchange_durable = exchange_durable
        self.queue = queue or amqp.host_queue_name("complete-listener")
        self.counts = {outcome: 0 for outcome in db.Outcome} | {"skipped": 0}

    def parse(self, body: bytes) -> CompletionMessage:
        return CompletionMessage.parse(body)

    def process(self, deliveries: list[amqp.Delivery[CompletionMessage]]) -> None:
        records = []
        for delivery in deliveries:
            message = delivery.message
            try:
                records.append(ingest.record_from_completion(message))
            except ingest.NotIngested as why:
                self.counts["skipped"] += 1
                log.debug("not storing %s (delivery tag %s): %s", message.swift_dir, delivery.tag, why)
        if not records:
            return
        # A sqlite error propagates: the batch stays unacked and the broker
        # redelivers it after the reconnect, so nothing is lost.
        for record, outcome in zip(records, db.record_results(self.conn, records), strict=True):
            self.counts[outcome] += 1
            if outcome is db.Outcome.DUPLICATE:
                log.info("%s/%s/%s %s already recorded", record.release, record.arch, record.package, record.run_id)
        log.info(
            "recorded %d results (%d inserted so far, %d duplicates, %d not for the DB)",
            len(records),
            self.counts[db.Outcome.INSERTED] + self.counts[db.Outcome.UUID_CLEARED],
            self.counts[db.Outcome.DUPLICATE],
            self.counts["skipped"],
        )

    def run_forever(self) -> None:
        try:
            super().run_forever()
        finally:
            self.conn.close()


def _run(args: argparse.Namespace, config: Config) -> int:
    config.need_all([("web", "database"), ("amqp", "uri")])
    recorder = ResultRecorder(
        config.need("amqp", "uri"),
        config.need("web", "database"),
        exchange=args.exchange,
        queue=args.queue,
        exchange_durable=config.get("amqp", "complete_exchange_durable"),
        queue_type=config.get("amqp", "queue_type"),
    )
    try:
        with stop_signals(recorder.stop):
            recorder.run_forever()
    except sqlite3.Error as err:
        # The supervisor restarts us; unacked messages are redelivered then.
        log.error("results DB failure: %s", err)
        return 1
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", help=f"exchange to consume (default {results.COMPLETE_EXCHANGE})")
    parser.add_argument("--queue", help="our durable queue (default complete-listener-<fqdn>)")


def main(argv=None) -> int:
    return run_program(
        "Record finished autopkgtest runs from the testcomplete.fanout exchange in the results DB.",
        _run,
        _arguments,
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
