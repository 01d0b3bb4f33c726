# SPDX-License-Identifier: GPL-3.0-or-later
"""Workloads for the fault suite: distinct completion messages and a publisher that survives the broker.

The publisher is what a worker does: persistent messages with publisher
confirms, and after a lost connection it reconnects and publishes the
unconfirmed message again (so the broker may hold it twice: at-least-once,
which the consumer must absorb without a second row).
"""

from __future__ import annotations

import datetime
import logging
import signal
import sqlite3
import subprocess
import threading
import time
import uuid as uuidlib

import pika
import pika.exceptions

from webcontrol.messages import CompletionMessage

log = logging.getLogger(__name__)

ARCHES = ("amd64", "arm64", "s390x", "ppc64el")
_BASE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def completion_messages(count: int, release: str = "noble", seed: str = "faults") -> list[CompletionMessage]:
    """``count`` distinct distro results (each a different (package, arch, run_id) and uuid)."""
    messages = []
    for i in range(count):
        package = f"pkg{i % 97}"
        arch = ARCHES[i % len(ARCHES)]
        stamp = (_BASE + datetime.timedelta(seconds=i)).strftime("%Y%m%d_%H%M%S")
        run_id = f"{stamp}_{i % 0xFFFFF:05x}@"
        messages.append(
            CompletionMessage(
                architecture=arch,
                container=f"autopkgtest-{release}",
                exitcode=(0, 2, 4, 8, 12, 16, 20)[i % 7],
                package=package,
                release=release,
                swift_dir=f"{release}/{arch}/p/{package}/{run_id}",
                duration=i % 3600,
                testpkg_version=f"1.{i}",
                requester="joe" if i % 5 == 0 else "",
                triggers=f"{package}/1.{i}",
                env="all-proposed=1" if i % 11 == 0 else "",
                uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{seed}/{i}")),
            )
        )
    return messages


def expected_keys(messages: list[CompletionMessage]) -> set[tuple]:
    return {(m.release, m.architecture, m.package, m.run_id, m.uuid) for m in messages}


def stored_keys(conn) -> list[tuple]:
    return conn.execute(
        "SELECT test.release, test.arch, test.package, result.run_id, result.uuid"
        " FROM result JOIN test ON test.id = result.test_id"
    ).fetchall()


class ReliablePublisher(threading.Thread):
    """Publish ``bodies`` to a fanout exchange over ``seconds``, retrying through broker outages."""

    def __init__(self, uri: str, exchange: str, bodies: list[bytes], seconds: float = 0.0):
        super().__init__(daemon=True, name="publisher")
        self.uri = uri
        self.exchange = exchange
        self.bodies = bodies
        self.pause = seconds / max(len(bodies), 1)
        self.published = 0  # confirmed by the broker
        self.retries = 0  # publishes repeated after a lost connection (possible duplicates)
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        connection = channel = None
        started = time.monotonic()
        try:
            index = 0
            while index < len(self.bodies):
                try:
                    if channel is None:
                        connection = pika.BlockingConnection(pika.URLParameters(self.uri + "?socket_timeout=5"))
                        channel = connection.channel()
                        channel.confirm_delivery()
                    channel.basic_publish(self.exchange, "", self.bodies[index], pika.BasicProperties(delivery_mode=2))
                    index += 1
                    self.published = index
                except (pika.exceptions.AMQPError, OSError) as err:
                    if channel is not None:
                        self.retries += 1
                        log.info("publisher lost the broker at message %d (%r); retrying", index, err)
                    connection = channel = None
                    time.sleep(0.3)
                    continue
                # Spread the messages over the requested time, so the faults land mid-stream.
                lag = started + index * self.pause - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
        except BaseException as err:  # noqa: BLE001 - reported to the test
            self.error = err
        finally:
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except (pika.exceptions.AMQPError, OSError):
                    pass
            self.done.set()


def write_gzip_bomb(path, size: int, block: int = 16 * 1024 * 1024) -> int:
    """Write a one-member gzip file of ``size`` zero bytes (a multiple of ``block``), streamed.

    One block of zeros is deflated once and ends with a full flush, which
    resets the compressor, so the same bytes can be repeated: a 10 GB bomb
    is ~10 MB on disk and takes seconds, not the minutes a real compressor
    would spend. Returns the compressed size.
    """
    import struct
    import zlib

    assert size % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(block)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")  # gzip header, mtime 0, max compression, Unix
        for _ in range(size // block):
            out.write(segment)
            crc = zlib.crc32(zeros, crc)
        out.write(b"\x03\x00")  # an empty final block
        out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return out.tell()


def saved_marker(db_path, container: str) -> str | None:
    """download-all-results' saved position for a container (None if none yet or no DB)."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT marker FROM ingest_marker WHERE container = ?", (container,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def stop_process(process: subprocess.Popen) -> int:
    """SIGTERM a program under test if it still runs; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        return process.wait(30)
    return process.returncode
