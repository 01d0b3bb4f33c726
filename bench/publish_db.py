#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: publish-db on a large DB against a plain file copy, with a live writer.

Builds a results DB of about --size-mb (schema of webcontrol.db), or takes a
copy of a bench/gen_big_db.py DB (--from-db: its public-only tables are
dropped and it is migrated like a rw DB), then in one run times (a) a plain
file copy of it and (b) publish-db's publish() (new rows, archive refresh
against an unchanged file:// archive, derived tables, copy + sha256,
renames), while a writer process commits one result every 10 ms through
the real write routine and records how long each commit waited. It prints
the seconds of each publish stage, for the first publish (a fresh snapshot:
no working copy yet) and for the steady-state one, and the trigger-index
stage that follows, the sha256 of the file alone (a floor: the public file
is hashed whole every time), CPU seconds and the load average. Target:
publish at most 2x the copy; the writer never blocked more than 100 ms.

    python bench/publish_db.py [--size-mb 1024 | --from-db BIG.db] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webcontrol import config as configmod  # noqa: E402
from webcontrol import db, demodata, triggerindex  # noqa: E402
from webcontrol.services import publish_db  # noqa: E402


def build(path: Path, size_mb: int) -> None:
    conn = db.connect_rw(path)
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    tests = 200_000
    with db.write_transaction(conn):
        conn.executemany(
            "INSERT INTO test(id, release, arch, package) VALUES (?, ?, ?, ?)",
            (
                (
                    i + 1,
                    ("jammy", "noble", "questing")[i % 3],
                    ("amd64", "arm64", "s390x", "ppc64el", "armhf")[i % 5],
                    f"package{i // 15:05d}",
                )
                for i in range(tests)
            ),
        )
    batch = 200_000
    n = 0
    while os.path.getsize(path) < size_mb * 1024 * 1024:
        with db.write_transaction(conn):
            conn.executemany(
                "INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        rng.randint(1, tests),
                        f"2024{(i // 86400) % 12 + 1:02d}{i % 28 + 1:02d}_{i % 240000:06d}_{i % 1048576:05x}@",
                        f"1.{i % 50}-{i % 7}ubuntu1",
                        f"glib2.0/2.80.{i % 9}-1 package{i % 9999:05d}/1.{i % 50}",
                        rng.randint(30, 9000),
                        rng.choice((0, 0, 0, 2, 4, 8, 16)),
                        rng.choice(("", "", "joe", "ana")),
                        "",
                        None,
                    )
                    for i in range(n, n + batch)
                ),
            )
        n += batch
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"built {path} : {os.path.getsize(path) / 2**20:.0f} MB, {n} results")
    conn.close()


def adopt(source: Path, path: Path) -> None:
    """A rw DB from a public one: the tables only publish-db adds dropped, migrated, WAL."""
    print(f"copying {source} ...")
    shutil.copyfile(source, path)
    conn = sqlite3.connect(path, isolation_level=None)
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        if name not in ("test", "result"):
            conn.execute(f'DROP TABLE "{name}"')
    conn.close()
    db.connect_rw(path).close()
    print(f"rw DB {path}: {os.path.getsize(path) / 2**20:.0f} MB")


def print_stages(label: str, summary) -> None:
    stages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in summary.stages.items())
    print(f"{label}: {summary.seconds:.2f} s ({stages})")


def writer(path: str, stop, out) -> None:
    """Commit one result every 10 ms; report how long each commit took."""
    conn = db.connect_rw(path)
    waits = []
    i = 0
    run = f"{random.randrange(16**5):05x}@"  # new run ids even when --keep reuses the DB
    while not stop.is_set():
        record = db.ResultRecord(
            "noble", "amd64", "writer", f"20990101_{i:06d}_{run}", "1", "writer/1", 1, 0, "", "", None
        )
        t = time.monotonic()
        db.record_results(conn, [record])
        waits.append(time.monotonic() - t)
        i += 1
        time.sleep(0.01)
    conn.close()
    out.put(waits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--from-db", type=Path, help="start from a copy of this bench/gen_big_db.py DB")
    parser.add_argument("--keep", help="reuse/keep the generated DB in this folder")
    parser.add_argument(
        "--no-trigger-index", action="store_true", help="leave out the trigger-index stage (its first build is long)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-publish-"))
    work.mkdir(parents=True, exist_ok=True)
    rw = work / "rw.db"
    if not rw.exists():
        if args.from_db:
            adopt(args.from_db, rw)
        else:
            build(rw, args.size_mb)
    archive = demodata.write_archive(work / "archive", {"noble": {"package00001": "1.0-1"}})
    (work / "public").mkdir(exist_ok=True)
    config = configmod.from_dict(
        {"web": {"database": rw, "database_public": work / "public" / "autopkgtest.db", "archive_url": archive}}
    )
    # Warm-up: the working copy is built, archive timestamps recorded, page cache filled.
    print_stages("first publish (fresh snapshot)", publish_db.publish(config, full=True))
    while not args.no_trigger_index:  # a first trigger index is built in slices of a minute
        done = triggerindex.publish_stage(config)
        if done is None or done.complete:
            break

    started, cpu = time.monotonic(), time.process_time()
    shutil.copyfile(rw, work / "copy.db")
    copy_s, copy_cpu = time.monotonic() - started, time.process_time() - cpu
    os.unlink(work / "copy.db")
    # The floor: whatever else it does, a publish hashes the whole public file.
    started = time.monotonic()
    digest, buffer = hashlib.sha256(), bytearray(4 << 20)
    with open(rw, "rb", buffering=0) as handle, memoryview(buffer) as view:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    hash_s = time.monotonic() - started

    # The writer is its own process, as download-results is in production.
    stop = multiprocessing.Event()
    results_queue: multiprocessing.Queue = multiprocessing.Queue()
    writer_process = multiprocessing.Process(target=writer, args=(str(rw), stop, results_queue))
    writer_process.start()
    time.sleep(1.0)
    started, cpu = time.monotonic(), time.process_time()
    summary = publish_db.publish(config)
    publish_s, publish_cpu = time.monotonic() - started, time.process_time() - cpu
    started = time.monotonic()
    if not args.no_trigger_index:
        triggerindex.publish_stage(config)
    trigger_s = time.monotonic() - started
    time.sleep(0.5)
    stop.set()
    waits = results_queue.get(timeout=30)
    writer_process.join(10)
    size = os.path.getsize(rw) / 2**20
    print_stages(f"publish ({summary.new_results} new results)", summary)
    print(f"then the trigger-index stage: {trigger_s:.2f} s")
    print(
        f"DB {size:.0f} MB: file copy {copy_s:.2f} s, publish-db {publish_s:.2f} s = {publish_s / copy_s:.2f}x the copy"
        f" (sha256 of the file alone {hash_s:.2f} s = {hash_s / copy_s:.2f}x)"
    )
    print(f"CPU seconds (all threads, system time included): copy {copy_cpu:.2f}, publish-db {publish_cpu:.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"writer during the run: {len(waits)} commits, median {statistics.median(waits) * 1000:.1f} ms, "
        f"max {max(waits) * 1000:.1f} ms"
    )
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
