#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drill: rebuild a web unit from Swift, timed, by both redeploy paths.

Starts a real Swift All-In-One, writes N runs into it as workers write them
(log.gz, artifacts.tar.gz, result.tar), then:

1. (a) brings up a unit from nothing (empty state dir, no DB) with
   ``download-all-results`` alone, then ``publish-db``, and times until the
   DB and the public DB hold every result;
2. takes a ``db-backup`` of that unit, then writes ``--after`` more runs
   (results that arrive after the backup, spread through the name order);
3. (b) brings up a second unit from nothing with
   ``download-all-results --from-backup``, then ``publish-db``, and times it;
4. runs the hourly pass once more on that unit (nothing new) and reports its
   listing requests, DB lookups and seconds;
5. prints where the time of (a) went (Swift server CPU per process, the
   client's own CPU, and per-object tar parsing and SQLite costs) and
   projects (a), (b) and the hourly pass to 10M and 30M results, linearly
   from the measured rates.

    python bench/redeploy_drill.py [--runs 20000] [--after 0.01] [--workers 8]

``--restore-db PATH`` instead times the restore half of (b) at the size of
an existing results DB (for example one made by bench/gen_big_db.py): it
backs PATH up with db-backup, then rebuilds a unit with
``download-all-results --from-backup`` against an empty local store, and
publishes it with publish-db.

Generation goes through the same single-process Swift proxy and takes most
of the wall time (about 100 objects/s on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.swift import start_swift  # noqa: E402
from webcontrol import config as configmod  # noqa: E402
from webcontrol import db, demodata, ingest, results, resulttar  # noqa: E402
from webcontrol.store.swift import SwiftStore  # noqa: E402

ARCHES = ["amd64", "arm64", "s390x", "ppc64el", "armhf", "i386"]
SUMMARY = re.compile(
    r"done: (\d+) results stored, (\d+) already present.*?(\d+) objects listed "
    r"\((\d+) listing requests, (\d+) DB lookups\)"
)
TARGETS = (10_000_000, 30_000_000)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of the programs this drill ran and waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Drill:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.swift = start_swift()
        self.section = self.swift.config_section()
        self.work = Path(tempfile.mkdtemp(prefix="redeploy-drill-"))
        self.figures: dict[str, float] = {}

    # Store ------------------------------------------------------------------------------------

    def plan(self) -> tuple[list, list]:
        per_test = 10
        tests = max(1, self.args.runs // per_test)
        packages = [f"pkg{i:05d}" for i in range(max(1, tests // len(ARCHES)) + 1)]
        runs = list(demodata.plan_runs(["noble"], ARCHES, packages, runs_per_test=per_test))[: self.args.runs]
        step = max(2, round(1 / self.args.after)) if self.args.after > 0 else 0
        after = runs[step - 1 :: step] if step else []
        chosen = {id(run) for run in after}
        return [run for run in runs if id(run) not in chosen], after

    def write(self, runs: list) -> float:
        local = threading.local()
        conf = configmod.from_dict({"swift": self.section})

        def one(run) -> None:
            if not hasattr(local, "store"):
                local.store = SwiftStore.from_config(conf)
                local.rng = random.Random(id(local))
            demodata.write_run(local.store, run, local.rng)

        SwiftStore.from_config(conf).put_object(results.distro_container("noble"), ".drill", b"")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, runs))
        return time.monotonic() - started

    # Units ------------------------------------------------------------------------------------

    def unit(self, name: str) -> Path:
        root = self.work / name
        (root / "public").mkdir(parents=True)
        conf = root / "autopkgtest-cloud.conf"
        configmod.write(
            {
                "web": {
                    "database": root / "autopkgtest.db",
                    "database_public": root / "public" / "autopkgtest.db",
                    "indexed_packages": root / "indexed-packages.json",
                    "state_dir": root / "state",
                    "releases": "noble",
                    "archive_url": "file:///nonexistent",
                },
                "swift": self.section,
            },
            conf,
        )
        return conf

    def program(self, module: str, conf: Path, *extra: str) -> tuple[float, str]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", f"webcontrol.services.{module}", "--config", str(conf), *extra],
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"{module} {' '.join(extra)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return elapsed, done.stderr

    def swift_cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.swift.pids.items()}

    # Phases -----------------------------------------------------------------------------------

    def bring_up(self, label: str, conf: Path, expected: int, *extra: str) -> tuple[float, float, re.Match]:
        swift_before, client_before = self.swift_cpu(), children_cpu()
        ingest_s, stderr = self.program("download_all_results", conf, "--workers", str(self.args.workers), *extra)
        swift_used = {k: v - swift_before[k] for k, v in self.swift_cpu().items()}
        client_used = children_cpu() - client_before
        summary = SUMMARY.search(stderr)
        publish_s, _ = self.program("publish_db", conf)
        root = conf.parent
        for path in (root / "autopkgtest.db", root / "public" / "autopkgtest.db"):
            held = sqlite3.connect(path).execute("SELECT COUNT(*) FROM result").fetchone()[0]
            if held != expected:
                raise SystemExit(f"{label}: {path} holds {held} results, expected {expected}")
        restore = re.search(r"restored backup \S+ in ([\d.]+) s", stderr)
        print(f"{label}: download-all-results {' '.join(extra)} {ingest_s:.1f} s ({summary.group(0)})")
        if restore:
            print(f"  of which restoring the backup: {float(restore.group(1)):.1f} s")
            self.figures["restore_s"] = float(restore.group(1))
        print(
            f"  publish-db {publish_s:.1f} s; DB and public DB hold all {expected} results: {ingest_s + publish_s:.1f} s"
        )
        self.figures.setdefault("client_cpu_per_result_a", client_used / expected)
        swift_text = ", ".join(f"{k} {v:.1f} s" for k, v in swift_used.items() if v >= 0.05)
        print(f"  CPU during download-all-results: client {client_used:.1f} s, Swift {swift_text}")
        return ingest_s, publish_s, summary

    def micro_costs(self) -> tuple[float, float]:
        """Per-object tar parsing and SQLite insert costs (µs), on a sample of real objects."""
        store = SwiftStore.from_config(configmod.from_dict({"swift": self.section}))
        container = results.distro_container("noble")
        names = [o.name for o in store.list_objects(container, limit=3000) if o.name.endswith("/result.tar")][:500]
        bodies = [store.get_object(container, name) for name in names]
        started = time.perf_counter()
        tars = [resulttar.parse(body) for body in bodies]
        parse_us = (time.perf_counter() - started) / len(bodies) * 1e6
        records = [
            ingest.record_from_tar(container, *results.parse_run_dir(name), tar)
            for name, tar in zip(names, tars, strict=True)
        ]
        conn = db.connect_rw(self.work / "micro.db")
        started = time.perf_counter()
        db.record_results(conn, records, marker=(container, names[-1]))
        insert_us = (time.perf_counter() - started) / len(records) * 1e6
        conn.close()
        store.close()
        return parse_us, insert_us

    def run(self) -> None:
        before, after = self.plan()
        total = len(before) + len(after)
        seconds = self.write(before)
        objects = sum(
            1
            for _ in SwiftStore.from_config(configmod.from_dict({"swift": self.section})).iter_objects(
                results.distro_container("noble")
            )
        )
        print(
            f"store: {len(before)} runs ({objects} objects) written in {seconds:.0f} s ({objects / seconds:.0f} PUT/s)"
        )

        old = self.unit("unit-a")
        a_ingest, a_publish, _ = self.bring_up("(a) download-all-results alone", old, len(before))
        startup_s, _ = self.program("download_all_results", old, "--help")
        self.figures["startup_s"] = startup_s
        rate_a = len(before) / (a_ingest - startup_s)
        backup_s, _ = self.program("db_backup", old)
        db_bytes = (old.parent / "autopkgtest.db").stat().st_size
        print(
            f"db-backup of unit a: {backup_s:.1f} s (DB {db_bytes / 1e6:.1f} MB, {db_bytes / len(before):.0f} B/result)"
        )

        seconds = self.write(after)
        print(f"store: {len(after)} more runs written after the backup in {seconds:.0f} s")
        objects_total = objects + sum(3 if r.exitcode not in (16, 20) else 2 for r in after)
        new = self.unit("unit-b")
        b_ingest, b_publish, _ = self.bring_up("(b) restore + download-all-results", new, total, "--from-backup")

        pass_s, stderr = self.program("download_all_results", new)
        hourly = SUMMARY.search(stderr)
        listed, listings, lookups = int(hourly.group(3)), int(hourly.group(4)), int(hourly.group(5))
        print(
            f"hourly pass, nothing new: {pass_s:.1f} s, {listed} objects listed, "
            f"{listings} listing requests, {lookups} DB lookups"
        )

        startup_s, _ = self.program("download_all_results", new, "--help")
        pass_s -= startup_s  # the interpreter start and imports, which do not grow with the store
        print(f"  (rates below leave out the {startup_s:.1f} s a program takes to start)")
        parse_us, insert_us = self.micro_costs()
        print(f"per result.tar: tar parsing {parse_us:.0f} µs, SQLite insert {insert_us:.0f} µs (batched)")
        self.project(total, objects_total, rate_a, a_publish, b_ingest, b_publish, pass_s, listed, len(after))

    def project(self, total, objects, rate_a, a_publish, b_ingest, b_publish, pass_s, listed, after) -> None:
        objects_per_run = objects / total
        list_rate = listed / pass_s  # objects per second of a sweep that downloads nothing
        restore_s = self.figures.get("restore_s", 0.0)
        # Everything in (b) after the restore grows with the store: one listed run folder per result,
        # and the downloads of the share newer than the backup.
        sweep_s = b_ingest - restore_s - self.figures["startup_s"]
        print(
            f"\nrates: (a) {rate_a:.0f} results/s; (b) sweep after the restore {total / sweep_s:.0f} results/s "
            f"(run folders listed, {after / total:.1%} downloaded); hourly pass {list_rate:.0f} listed objects/s; "
            f"{objects_per_run:.2f} objects per result"
        )
        client_ms = self.figures.get("client_cpu_per_result_a", 0.0) * 1e3
        if client_ms:
            print(
                f"(a) client CPU {client_ms:.2f} ms per result: one client core keeps up with "
                f"{1e3 / client_ms:.0f} results/s when Swift answers that fast"
            )
        for target in TARGETS:
            scale = target / total
            a = target / rate_a + a_publish * scale
            b = restore_s * scale + sweep_s * scale + b_publish * scale
            print(
                f"projected at {target / 1e6:.0f}M results ({target * objects_per_run / 1e6:.0f}M objects, "
                f"{after / total:.1%} newer than the backup): (a) {a / 60:.0f} min, (b) {b / 60:.1f} min = "
                f"restore {restore_s * scale / 60:.1f} + sweep {sweep_s * scale / 60:.1f} + publish-db "
                f"{b_publish * scale / 60:.1f}"
            )
        for target_objects in (30_000_000,):
            pages = target_objects / 1000
            print(
                f"hourly pass at {target_objects / 1e6:.0f}M objects: {pages:.0f} listing requests, "
                f"{pages:.0f} DB lookups (one per page), {target_objects / list_rate / 60:.0f} min"
            )

    def close(self) -> None:
        self.swift.destroy()
        shutil.rmtree(self.work, ignore_errors=True)


def restore_at_size(path: Path) -> None:
    """db-backup of a copy of ``path``, then --from-backup and publish-db on a new unit, timed."""
    work = Path(tempfile.mkdtemp(prefix="redeploy-restore-"))
    try:
        (work / "store").mkdir()
        confs = []
        for name in ("old", "new"):
            (work / name / "public").mkdir(parents=True)
            conf = work / name / "autopkgtest-cloud.conf"
            configmod.write(
                {
                    "web": {
                        "database": work / name / "autopkgtest.db",
                        "database_public": work / name / "public" / "autopkgtest.db",
                        "indexed_packages": work / name / "indexed-packages.json",
                        "state_dir": work / "state",  # shared: the backups live under it, as in Swift
                        "results_dir": work / "store",
                        "releases": "noble",
                        "archive_url": "file:///nonexistent",
                    }
                },
                conf,
            )
            confs.append(conf)
        started = time.monotonic()
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        copy = sqlite3.connect(work / "old" / "autopkgtest.db")
        source.backup(copy)
        copy.close()
        rows = source.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        source.close()
        size = path.stat().st_size
        print(f"copied {path} ({rows} results, {size / 1e9:.2f} GB) in {time.monotonic() - started:.0f} s")
        for label, conf, extra in (
            ("db-backup", confs[0], ()),
            ("download-all-results --from-backup", confs[1], ("--from-backup",)),
            ("publish-db", confs[1], ()),
        ):
            module = {"db-backup": "db_backup", "publish-db": "publish_db"}.get(label, "download_all_results")
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", f"webcontrol.services.{module}", "--config", str(conf), *extra],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
            print(f"{label}: {time.monotonic() - started:.0f} s")
        packed = sum(f.stat().st_size for f in (work / "state" / "backups").rglob("*.zst"))
        public = sqlite3.connect(work / "new" / "public" / "autopkgtest.db")
        held = public.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        print(f"backup object {packed / 1e9:.2f} GB; the new unit's public DB holds {held} of {rows} results")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20000, help="results in the store (default %(default)s)")
    parser.add_argument("--after", type=float, default=0.01, help="share written after the backup (default 1%%)")
    parser.add_argument("--workers", type=int, default=8, help="download-all-results --workers")
    parser.add_argument("--restore-db", type=Path, metavar="PATH", help="time the restore at this DB's size")
    args = parser.parse_args()
    if args.restore_db:
        restore_at_size(args.restore_db)
        return 0
    drill = Drill(args)
    try:
        drill.run()
    finally:
        drill.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
