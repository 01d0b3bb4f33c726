# SPDX-License-Identifier: GPL-3.0-or-later
"""Ingestion under faults: SIGKILLed consumers, a restarted broker, a killed batch ingest.

download-results runs as the real CLI in a subprocess, consuming from a
private RabbitMQ node, while a publisher sends N completion messages over
several seconds. At K random moments the consumer is SIGKILLed and a new one
started (what the supervisor does), and once the broker node itself is
restarted. Afterwards the DB must hold exactly the N results: none lost,
none twice, and the queue must be empty.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time

from tests.faults.conftest import program, size, wait_for
from tests.faults.workload import (
    ReliablePublisher,
    completion_messages,
    expected_keys,
    saved_marker,
    stop_process,
    stored_keys,
)
from webcontrol import config as configmod


def _count(db_path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _declare(broker, exchange: str, queue: str) -> None:
    """The exchange and queue as download-results declares them, before anything is published."""
    connection = broker.connection()
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange)
    finally:
        connection.close()


def test_download_results_survives_sigkills_and_a_broker_restart(policy_broker, tmp_path, figures):
    total = size("messages", 1000, 10000)
    kills = size("kills", 2, 5)
    seconds = size("publish_seconds", 8, 40)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    exchange, queue = f"kill-{seed}-complete", f"kill-{seed}-complete-listener"
    _declare(policy_broker, exchange, queue)
    db_path = tmp_path / "rw.db"
    conf = tmp_path / "autopkgtest-cloud.conf"
    configmod.write({"web": {"database": db_path}, "amqp": {"uri": policy_broker.uri}}, conf)
    command = program("download_results", "--config", str(conf), "--exchange", exchange, "--queue", queue)
    log_path = tmp_path / "download-results.log"

    def start() -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)

    messages = completion_messages(total, seed=str(seed))
    publisher = ReliablePublisher(policy_broker.uri, exchange, [m.serialise() for m in messages], seconds)
    # K kill moments and one broker restart at random points of the publishing window.
    events = [(rng.uniform(0.1, 0.9) * seconds, "kill") for _ in range(kills)]
    events.append((rng.uniform(0.3, 0.7) * seconds, "restart"))
    events.sort()
    process = start()
    rows_at_start = 0
    publisher.start()
    started = time.monotonic()
    kill_counts, restart_seconds = [], None
    try:
        for moment, event in events:
            time.sleep(max(0.0, started + moment - time.monotonic()))
            if event == "kill":
                # Kill a consumer that is at work: one that has stored something since it started.
                floor = rows_at_start
                wait_for(lambda: _count(db_path) > floor or publisher.done.is_set(), timeout=30, interval=0.01)  # noqa: B023
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                kill_counts.append(_count(db_path))
                process = start()  # the supervisor restarts it
                rows_at_start = _count(db_path)
            else:
                before = time.monotonic()
                policy_broker.restart()
                restart_seconds = round(time.monotonic() - before, 1)
        assert publisher.done.wait(seconds + 180), "publisher did not finish"
        assert publisher.error is None, publisher.error
        wait_for(lambda: _count(db_path) >= total, timeout=120, interval=0.2)
        time.sleep(1.5)  # anything extra (a duplicate row) would show up now
        assert wait_for(lambda: policy_broker.message_count(queue) == 0, timeout=30)
        assert process.poll() is None, "download-results exited on its own"
    finally:
        exit_code = stop_process(process)
    log_text = log_path.read_text(errors="replace")
    conn = sqlite3.connect(db_path)
    stored = stored_keys(conn)
    expected = expected_keys(messages)
    lost = len(expected - set(stored))
    unexpected = len(set(stored) - expected)
    duplicates = len(stored) - len(set(stored))
    figures.update(
        messages=total,
        published_confirmed=publisher.published,
        publisher_retries=publisher.retries,
        kills=len(kill_counts),
        rows_at_kills=kill_counts,
        broker_restarts=1,
        broker_restart_seconds=restart_seconds,
        rows=len(stored),
        duplicates=duplicates,
        lost=lost,
        unexpected=unexpected,
        redelivered_duplicates_absorbed=log_text.count("already recorded"),
        seed=seed,
    )
    assert exit_code == 0, log_text[-2000:]
    assert "Traceback" not in log_text, log_text[-3000:]
    assert (len(stored), duplicates, lost, unexpected) == (total, 0, 0, 0)
    assert conn.execute("SELECT COUNT(DISTINCT uuid) FROM result").fetchone()[0] == total


def _listing_calls(path) -> list[list]:
    import json

    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def test_download_all_results_killed_mid_run_resumes_rereading_at_most_one_page(
    swift_server, swift_runs, tmp_path, figures
):
    """Each killed run is followed by one that starts at the committed marker; the last completes."""
    import sys

    from tests.faults.conftest import swift_conf

    kills = size("batch_kills", 2, 5)
    page_size = 10
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    conf = swift_conf(tmp_path, swift_server, releases=swift_runs.release)
    db_path = tmp_path / "rw.db"
    container = swift_runs.container
    runs_log = []
    for attempt in range(kills + 1):
        calls_path = tmp_path / f"listing-{attempt}.log"
        command = [
            sys.executable,
            "-m",
            "tests.faults.counting_ingest",
            str(calls_path),
            "--config",
            str(conf),
            "--page-size",
            str(page_size),
            "--workers",
            "4",
        ]
        start_marker = saved_marker(db_path, container)
        with open(tmp_path / "download-all-results.log", "ab") as log:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        killed_at = None
        if attempt < kills:
            # Let it commit a random number of pages past where it started, then SIGKILL it.
            target_pages = rng.randint(1, 4)

            def committed_enough(
                start_marker=start_marker, target_pages=target_pages, calls_path=calls_path, process=process
            ):
                calls = _listing_calls(calls_path)
                marker = saved_marker(db_path, container)
                done = [c for c in calls if c[0] == "page"]
                return process.poll() is not None or (marker != start_marker and len(done) > target_pages)

            assert wait_for(committed_enough, timeout=60, interval=0.002)
            assert process.poll() is None, "download-all-results finished before it could be killed"
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            killed_at = saved_marker(db_path, container)
        else:
            assert process.wait(120) == 0
        runs_log.append((start_marker, killed_at, _listing_calls(calls_path)))

    reread = []
    for index in range(1, len(runs_log)):
        start_marker, _killed, calls = runs_log[index]
        previous_calls = runs_log[index - 1][2]
        previous_markers = {c[2] for c in previous_calls if c[0] == "list"}
        markers = [c[2] for c in calls if c[0] == "list"]
        # The rerun's first listing starts exactly at the marker committed before the kill ...
        assert markers[0] == (runs_log[index - 1][1] or None)
        # ... and re-reads only pages the killed run had listed but not committed.
        reread.append(sum(1 for m in markers if m in previous_markers))

    conn = sqlite3.connect(db_path)
    stored = conn.execute(
        "SELECT test.release, test.arch, test.package, result.run_id FROM result JOIN test ON test.id = result.test_id"
    ).fetchall()
    expected = swift_runs.keys()
    figures.update(
        objects=swift_runs.objects,
        runs=len(expected),
        page_size=page_size,
        kills=kills,
        listing_requests_per_run=[sum(1 for c in calls if c[0] == "list") for _s, _k, calls in runs_log],
        pages_reread_after_each_kill=reread,
        rows=len(stored),
        duplicates=len(stored) - len(set(stored)),
        lost=len(expected - set(stored)),
        seed=seed,
    )
    assert max(reread) <= 1
    assert sorted(stored) == sorted(expected)
    assert saved_marker(db_path, container) == ""  # the pass completed
