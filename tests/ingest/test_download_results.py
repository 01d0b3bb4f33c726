# SPDX-License-Identifier: GPL-3.0-or-later
"""download-results against the real broker: rows, duplicates, poison messages, SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pika
import pytest

from tests.ingest.conftest import expected_row, rows, wait_for
from webcontrol import db, demodata
from webcontrol.messages import CompletionMessage

pytestmark = pytest.mark.usefixtures("amqp_uri")


def bind(uri, exchange, queue):
    """Declare the exchange and our queue as download-results does, so nothing is lost before it starts."""
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange)
    return connection, channel


def publish(channel, exchange, bodies):
    for body in bodies:
        channel.basic_publish(exchange, "", body, pika.BasicProperties(delivery_mode=2))


def count(db_path):
    if not os.path.exists(db_path):
        return 0
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_messages_become_rows_field_by_field(tmp_path, amqp_uri, recorder_factory):
    runs = list(demodata.plan_runs(["noble"], ["amd64", "arm64"], ["hello", "libpng1.6", "glib2.0"], runs_per_test=4))
    ppa_run = next(demodata.plan_ppa_runs("noble", "amd64", "joe", "test", ["hello"]))
    connection, channel = bind(amqp_uri, recorder_factory.exchange, recorder_factory.queue)
    publish(channel, recorder_factory.exchange, [run.completion_message().serialise() for run in runs])
    publish(channel, recorder_factory.exchange, [ppa_run.completion_message().serialise()])
    # A redelivered (duplicate) message must not make a second row.
    publish(channel, recorder_factory.exchange, [runs[0].completion_message().serialise()])
    connection.close()

    db_path = tmp_path / "rw.db"
    recorder_factory(db_path)
    assert wait_for(lambda: count(str(db_path)) >= len(runs))
    time.sleep(0.5)
    conn = db.connect_rw(db_path)
    assert rows(conn) == sorted(expected_row(run) for run in runs)  # PPA run not stored, duplicate stored once


def test_version_rules_and_missing_fields(tmp_path, amqp_uri, recorder_factory):
    base = {
        "architecture": "amd64",
        "container": "autopkgtest-noble",
        "package": "hello",
        "release": "noble",
        "env": "",
        "duration": None,
        "requester": None,
    }
    bodies = [
        # exit 12 without version → "unknown"; null duration → NULL; "<src> <version>" → last token.
        {
            **base,
            "exitcode": 12,
            "testpkg_version": None,
            "triggers": "hello/1",
            "swift_dir": "noble/amd64/h/hello/20240101_000001_aaaaa@",
        },
        {
            **base,
            "exitcode": 0,
            "testpkg_version": "hello 2.0",
            "triggers": "hello/2",
            "swift_dir": "noble/amd64/h/hello/20240101_000002_aaaaa@",
            "requester": "joe\n",
            "duration": "42\n",
        },
        # No triggers: never stored.
        {
            **base,
            "exitcode": 0,
            "testpkg_version": "2.0",
            "triggers": None,
            "swift_dir": "noble/amd64/h/hello/20240101_000003_aaaaa@",
        },
    ]
    import json

    connection, channel = bind(amqp_uri, recorder_factory.exchange, recorder_factory.queue)
    publish(channel, recorder_factory.exchange, [json.dumps(b).encode() for b in bodies])
    connection.close()
    db_path = tmp_path / "rw.db"
    recorder_factory(db_path)
    assert wait_for(lambda: count(str(db_path)) >= 2)
    time.sleep(0.5)
    stored = rows(db.connect_rw(db_path))
    assert [(r[3], r[4], r[6], r[8]) for r in stored] == [
        ("20240101_000001_aaaaa@", "unknown", None, ""),
        ("20240101_000002_aaaaa@", "2.0", 42, "joe"),
    ]


def test_poison_messages_are_rejected_and_the_consumer_carries_on(tmp_path, amqp_uri, amqp_names, recorder_factory):
    runs = list(demodata.plan_runs(["noble"], ["amd64"], ["hello", "six"], runs_per_test=5))
    good = [run.completion_message().serialise() for run in runs]
    bad = [
        b"{not json",
        b"[1, 2, 3]",
        b'{"architecture": 5}',
        b"\xff\xfe invalid utf-8",
        b'{"architecture": "amd64", "container": "autopkgtest-noble", "exitcode": "0"}',
        b"x" * (2 * 1024 * 1024),
        runs[0].completion_message().serialise().replace(b'"exitcode": ', b'"exitcode": true, "x": '),
    ]
    # Dead-letter the rejects by broker policy, as an operator would: the test's own queue gets them.
    dead = amqp_names.queue("dead")
    dlx = amqp_names.exchange("dlx")
    connection, channel = bind(amqp_uri, recorder_factory.exchange, recorder_factory.queue)
    channel.exchange_declare(dlx, exchange_type="fanout")
    channel.queue_declare(dead)
    channel.queue_bind(dead, dlx)
    connection.close()
    # Policies need the management API; emulate the policy with a queue of our own that has the argument.
    # (The recorder itself never adds x-arguments: it declares the queue exactly as in production.)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.queue_delete(recorder_factory.queue)
    channel.queue_declare(recorder_factory.queue, durable=True, arguments={"x-dead-letter-exchange": dlx})
    channel.queue_bind(recorder_factory.queue, recorder_factory.exchange)
    interleaved = [body for pair in zip(good, bad + [None] * len(good), strict=False) for body in pair if body]
    publish(channel, recorder_factory.exchange, interleaved)
    connection.close()

    db_path = tmp_path / "rw.db"
    # The recorder's plain declaration meets the queue with arguments (406) and then uses it as it is.
    recorder = recorder_factory(db_path)
    assert wait_for(lambda: count(str(db_path)) >= len(good), timeout=30)
    time.sleep(0.5)
    assert count(str(db_path)) == len(good)
    assert recorder.rejected == len(bad)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    assert channel.queue_declare(dead, passive=True).method.message_count == len(bad)
    connection.close()


def test_sigkill_mid_stream_records_every_result_exactly_once(tmp_path, amqp_uri, amqp_names):
    exchange = amqp_names.exchange("complete")
    queue = amqp_names.queue("complete-listener")
    total = 2000
    runs = list(
        demodata.plan_runs(
            ["noble", "jammy"],
            ["amd64", "arm64", "s390x", "ppc64el", "armhf"],
            demodata.DEMO_PACKAGES,
            runs_per_test=10,
        )
    )[:total]
    assert len(runs) == total
    connection, channel = bind(amqp_uri, exchange, queue)
    publish(channel, exchange, [run.completion_message().serialise() for run in runs])
    connection.close()
    db_path = tmp_path / "rw.db"
    conf = tmp_path / "c.conf"
    conf.write_text(f"[web]\ndatabase = {db_path}\n[amqp]\nuri = {amqp_uri}\n")
    command = [
        sys.executable,
        "-m",
        "webcontrol.services.download_results",
        "--config",
        str(conf),
        "--exchange",
        exchange,
        "--queue",
        queue,
    ]
    kills = 0
    for threshold in (total // 4, total // 2):
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        assert wait_for(lambda t=threshold: count(str(db_path)) >= t, timeout=60, interval=0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: count(str(db_path)) >= total, timeout=60)
        time.sleep(1)
    finally:
        process.terminate()
        assert process.wait(10) == 0
    conn = db.connect_rw(db_path)
    assert kills == 2
    assert conn.execute("SELECT COUNT(*) FROM result").fetchone()[0] == total
    assert conn.execute("SELECT COUNT(DISTINCT uuid) FROM result").fetchone()[0] == total
    assert rows(conn) == sorted(expected_row(run) for run in runs)


def test_round_trip_of_completion_message():
    run = next(demodata.plan_runs(["noble"], ["amd64"], ["hello"], runs_per_test=1))
    message = run.completion_message()
    assert CompletionMessage.parse(message.serialise()) == message
