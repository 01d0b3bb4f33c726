#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The three ways to find what a restored DB lacks, measured on a real Swift and projected.

Starts a Swift All In One, writes ``--runs`` runs (``--per-test`` runs per
test, three objects each) as workers write them, fills a DB with all of
them, then sweeps that complete DB ``--rounds`` times each way (so the
figures are the cost of the sweep itself, nothing to download):

- objects: download-all-results' listing of every object (the hourly pass);
- run folders: ``--from-backup``'s sweep (prefix ``<release>/<arch>/``,
  delimiter ``@``, architectures listed in parallel);
- per test: one listing per known test of what is newer than its newest
  run in the DB (prefix ``<test dir>/``, marker at that run's second),
  plus the delimiter listings that discover tests the DB does not know.

For each it prints requests, seconds and CPU (the client and each Swift
server, per run and per request) and projects the sweep to 10M and 30M
results, with ``--tests-per-10m`` tests at 10M. CPU seconds are the honest
figure on a busy machine; the wall time is bounded below by the busiest
single process (the container server) and by the total CPU over the cores.

    python bench/redeploy_sweeps.py [--runs 3000] [--per-test 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import logging
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.redeploy_drill import ARCHES, cpu_seconds  # noqa: E402
from tests.services.swift import start_swift  # noqa: E402
from webcontrol import config as configmod  # noqa: E402
from webcontrol import db, demodata, results  # noqa: E402
from webcontrol.services import download_all_results as dar  # noqa: E402
from webcontrol.store.swift import SwiftStore  # noqa: E402

RELEASE = "noble"


class Meter:
    """CPU seconds of this process and of each Swift server, and wall time, over a block."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def __enter__(self) -> Meter:
        self.started = time.monotonic()
        self.client0 = sum(os.times()[:2])
        self.swift0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.started
        self.client = sum(os.times()[:2]) - self.client0
        self.swift = {name: cpu_seconds(pid) - self.swift0[name] for name, pid in self.pids.items()}

    def line(self, per: int, unit: str) -> str:
        parts = [f"client {self.client / per * 1e6:.0f}"]
        parts += [f"{name} {used / per * 1e6:.0f}" for name, used in self.swift.items() if used > 0]
        total = self.client + sum(self.swift.values())
        return f"CPU per {unit}: " + ", ".join(parts) + f" µs (total {total / per * 1e6:.0f} µs)"

    @property
    def total(self) -> float:
        return self.client + sum(self.swift.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--per-test", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests-per-10m", type=int, default=200_000, help="tests at 10M results (projection)")
    parser.add_argument(
        "--shape-db",
        type=Path,
        metavar="PATH",
        help="results DB whose runs-per-test counts shape the projection of --from-backup's sweep"
        " (busy tests listed on their own); e.g. /var/tmp/bench-dbs/big10m.db",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    swift = start_swift()
    work = Path(tempfile.mkdtemp(prefix="redeploy-sweeps-"))
    try:
        conf = configmod.from_dict({"swift": swift.config_section()})
        tests = max(1, args.runs // args.per_test)
        packages = [f"pkg{i:05d}" for i in range(tests // len(ARCHES) + 1)]
        runs = list(demodata.plan_runs([RELEASE], ARCHES, packages, runs_per_test=args.per_test))[: args.runs]
        local = threading.local()

        def write(run) -> None:
            if not hasattr(local, "store"):
                local.store = SwiftStore.from_config(conf)
                local.rng = random.Random(id(local))
            demodata.write_run(local.store, run, local.rng)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(write, runs))
        print(f"store: {len(runs)} runs, {len(runs) * 3} objects, written in {time.monotonic() - started:.0f} s")
        conn = db.connect_rw(work / "rw.db")
        quiet = dar.Progress(io.StringIO())

        def job() -> dar.FullIngest:
            return dar.FullIngest(conn, lambda: SwiftStore.from_config(conf), workers=8, full=True, progress=quiet)

        filler = job()
        filler.run([RELEASE])
        filler.close()
        held = db.result_count(conn)
        print(f"DB filled with {held} results")
        meter = Meter(swift.pids)
        figures = {}
        for label, gaps in (("objects", False), ("run folders", True)):
            with meter:
                for _ in range(args.rounds):
                    sweep = job()
                    summary = sweep.run([RELEASE], gaps=gaps)
                    sweep.close()
            assert summary.stored == 0 and summary.present == held, summary.line()
            figures[label] = meter.total / args.rounds / len(runs)
            print(
                f"{label}: {summary.listings} listing requests and {summary.listed} rows per sweep, "
                f"{meter.wall / args.rounds:.2f} s; {meter.line(len(runs) * args.rounds, 'run')}"
            )
        per_test_s = per_test_sweep(conf, conn, meter, args.rounds)
        figures["per test"] = per_test_s
        print("\nprojected sweep CPU (client + Swift, all cores) after a restore, nothing to download:")
        for target in (10_000_000, 30_000_000):
            test_count = args.tests_per_10m * target // 10_000_000
            by_run = {label: figures[label] * target for label in ("objects", "run folders")}
            by_test = per_test_s * test_count
            print(
                f"  {target / 1e6:.0f}M results: objects {by_run['objects'] / 60:.0f} min, "
                f"run folders {by_run['run folders'] / 60:.0f} min, per test ({test_count} tests) "
                f"{by_test / 60:.0f} min of CPU; halve for the wall time on 2 idle cores at best"
            )
        if args.shape_db:
            project_shape(args.shape_db, figures["run folders"], per_test_s)
        conn.close()
    finally:
        swift.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def project_shape(path: Path, per_run_s: float, per_test_s: float) -> None:
    """--from-backup's sweep for a DB shaped like ``path``: busy tests by request, the rest by run folder."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    counts = [row[0] for row in source.execute("SELECT COUNT(*) FROM result GROUP BY test_id")]
    source.close()
    total = sum(counts)
    print(f"\nshape of {path}: {len(counts)} tests, {total} results")
    for target in (10_000_000, 30_000_000):
        factor = target / total  # as many more tests of the same shape
        busy = [count for count in counts if count > dar.BUSY_RUNS]
        cpu_s = factor * (len(busy) * per_test_s + (total - sum(busy)) * per_run_s)
        print(
            f"  {target / 1e6:.0f}M results: {len(busy) * factor:.0f} busy tests ({sum(busy) / total:.0%} of the runs) "
            f"by request, the rest by run folder: {cpu_s / 60:.1f} min of CPU "
            f"(run folders only: {target * per_run_s / 60:.1f} min)"
        )


def per_test_sweep(conf, conn, meter: Meter, rounds: int) -> float:
    """One listing per known test (runs newer than its newest in the DB) and the discovery listings; CPU s/test."""
    newest = dict(
        ((release, arch, package), run_id)
        for release, arch, package, run_id in conn.execute(
            "SELECT test.release, test.arch, test.package, MAX(result.run_id) FROM result"
            " JOIN test ON test.id = result.test_id GROUP BY test.id"
        )
    )
    container = results.distro_container(RELEASE)
    local = threading.local()

    def store() -> SwiftStore:
        if not hasattr(local, "store"):
            local.store = SwiftStore.from_config(conf)
        return local.store

    def newer(key) -> int:
        release, arch, package = key
        folder = f"{results.run_dir(release, arch, package, newest[key])}"
        test_dir = folder.rsplit("/", 1)[0] + "/"
        # Marker at the newest run's second: that run is listed again, anything later follows.
        return len(store().list_objects(container, prefix=test_dir, marker=test_dir + newest[key][:15]))

    def discover(arch: str) -> int:
        found = 0
        for prefix_dir in store().iter_objects(container, prefix=f"{RELEASE}/{arch}/", delimiter="/"):
            if prefix_dir.subdir:
                found += sum(1 for _ in store().iter_objects(container, prefix=prefix_dir.subdir, delimiter="/"))
        return found

    with meter:
        for _ in range(rounds):
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                rows = sum(pool.map(newer, newest))
                dirs = sum(pool.map(discover, ARCHES))
    requests = len(newest) * rounds
    print(
        f"per test: {len(newest)} listing requests (+ discovery: {dirs} test folders) and {rows} rows per sweep, "
        f"{meter.wall / rounds:.2f} s; {meter.line(requests, 'test')}"
    )
    return meter.total / requests


if __name__ == "__main__":
    raise SystemExit(main())
