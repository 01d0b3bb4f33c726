#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Extra publish-db time of the incremental flakiness step (test_flakiness) on a big DB.

Usage: python bench/gen_big_db.py --scale 0.1 --out bench/out/big-0.1.db
       python bench/insight_publish.py --db bench/out/big-0.1.db [--new 1000]

The generated DB is copied as the rw DB of a scratch site (under
``--work``, default ``bench/out/insight-<name>``). Then:

1. a first publish-db, whose flakiness step recomputes every test (the one-off cost of the first publish);
2. ``--new`` results are added through the ingest routine (db.record_results), spread over random tests,
   one of them a late result with an old run_id (gap fill);
3. a second publish-db: its flakiness step carries the previous rows over and recomputes only the tests
   that got results. Target: under 5 s for 1,000 new results.

Prints the time of each publish and of its flakiness step (the extra work), measured around
``webcontrol.flakiness.update``. The public DB is left at ``<work>/public.db`` (with a copy of the
generator's ``.json``) for bench/insight_routes.py.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sqlite3
import time
from pathlib import Path

from webcontrol import config as configmod
from webcontrol import db, demodata, flakiness
from webcontrol.services import publish_db

TIMES: list[tuple[float, flakiness.UpdateSummary]] = []


def timed_update(original):
    def wrapper(conn, previous):
        started = time.perf_counter()
        summary = original(conn, previous)
        TIMES.append((time.perf_counter() - started, summary))
        return summary

    return wrapper


def new_records(path: str, count: int, seed: int) -> list[db.ResultRecord]:
    rng = random.Random(seed)
    conn = db.connect_ro(path)
    tests = conn.execute("SELECT release, arch, package FROM test").fetchall()
    newest = conn.execute("SELECT MAX(run_id) FROM result").fetchone()[0]
    conn.close()
    day = int(newest[:8]) + 1  # run ids after everything stored (a valid date is not needed for ordering)
    records = []
    for index in range(count):
        release, arch, package = rng.choice(tests)
        run_id = f"{day}_{index // 3600 % 24:02d}{index // 60 % 60:02d}{index % 60:02d}_{rng.getrandbits(20):05x}@"
        if index == 0:
            run_id = "20150101_000001_00000@"  # a late result with an old run id
        version = f"9.{rng.randint(0, 2)}-1"
        records.append(
            db.ResultRecord(
                release,
                arch,
                package,
                run_id,
                version,
                f"{package}/{version}",
                rng.randint(30, 3000),
                rng.choice((0, 0, 0, 4, 8, 16)),
            )
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="DB made by bench/gen_big_db.py")
    parser.add_argument("--work", help="scratch folder (default bench/out/insight-<db name>)")
    parser.add_argument("--new", type=int, default=1000, help="new results before the second publish")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    source = Path(args.db)
    work = Path(args.work or source.parent / f"insight-{source.stem}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rw = work / "rw.db"
    started = time.perf_counter()
    shutil.copyfile(source, rw)
    print(f"copied {source} ({source.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s")
    releases = [row[0] for row in sqlite3.connect(rw).execute("SELECT DISTINCT release FROM test")]
    pockets = {pocket: {} for release in releases for pocket in (release, f"{release}-updates")}
    archive = demodata.write_archive(work / "archive", pockets)
    values = {
        "web": {
            "database": str(rw),
            "database_public": str(work / "public.db"),
            "state_dir": str(work / "state"),
            "archive_url": archive,
        }
    }
    configmod.write(values, work / "autopkgtest-cloud.conf")
    config = configmod.load(str(work / "autopkgtest-cloud.conf"))
    flakiness.update = timed_update(flakiness.update)
    with sqlite3.connect(rw) as conn:
        counts = conn.execute("SELECT (SELECT COUNT(*) FROM test), (SELECT MAX(rowid) FROM result)").fetchone()
    print(f"scale: {counts[0]:,} tests, {counts[1]:,} results")

    for label in ("first publish (full recompute)", f"publish after {args.new:,} new results"):
        if TIMES:
            records = new_records(str(rw), args.new, args.seed)
            conn = db.connect_rw(rw)
            db.record_results(conn, records)
            conn.close()
            tests = len({(r.release, r.arch, r.package) for r in records})
            print(f"added {len(records):,} results to {tests:,} tests")
        started = time.perf_counter()
        publish_db.publish(config)
        total = time.perf_counter() - started
        extra, summary = TIMES[-1]
        print(
            f"{label}: publish-db {total:.2f} s, of which flakiness step {extra:.3f} s "
            f"({'full' if summary.full else 'incremental'}, {summary.recomputed:,} tests recomputed)"
        )
    shutil.copyfile(str(source) + ".json", work / "public.db.json")
    with sqlite3.connect(work / "public.db") as conn:
        flaky = conn.execute(f"SELECT COUNT(*) FROM {flakiness.TABLE} WHERE flips >= 2").fetchone()[0]
    print(f"public DB: {work / 'public.db'} ({flaky:,} tests listed as flaky)")


if __name__ == "__main__":
    main()
