#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate a production-scale public DB for the browse benchmarks.

Default size is about what autopkgtest.ubuntu.com holds: 200,000 (package,
release, arch) tests and 10,000,000 results, with one heavy requester of
100,000 results; ``--scale 0.1`` makes a 1/10 copy quickly. The schema is
the real one (``db.create_public_schema``); rows are written with
executemany in large transactions with the journal off, and the secondary
indexes are built after the load (much faster than maintaining them).

Prints what it made and a few names the latency benchmark uses (also
written to ``<out>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time

from webcontrol import db, results

RELEASES = ["focal", "jammy", "noble", "oracular", "plucky", "questing"]
ARCHES = ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"]
TRIGGER_POOL = ["glib2.0/2.80.0-6", "python3-defaults/3.12.1-0ubuntu1", "perl/5.38.2-3", "gcc-14/14-20240412-0ubuntu1"]
START = 1_420_070_400  # 2015-01-01
END = 1_764_000_000  # late 2025
HEAVY_USER = "heavy-user"
BATCH = 200_000


def package_names(count: int, rng: random.Random) -> list[str]:
    names = {"hello"}
    stems = ["lib", "python3-", "golang-", "node-", "r-cran-", "ruby-", "", "", ""]
    while len(names) < count:
        stem = rng.choice(stems)
        body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        names.add(f"{stem}{body}{rng.choice(['', '2', '1.0', '-utils', '3'])}")
    return sorted(names)


def run_id(stamp: int, rng: random.Random) -> str:
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime(stamp)) + f"_{rng.getrandbits(20):05x}@"


def uuid4(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-4{value[13:16]}-a{value[17:20]}-{value[20:32]}"


def generate(out: str, tests: int, total_results: int, heavy: int, seed: int) -> dict:
    rng = random.Random(seed)
    if os.path.exists(out):
        os.unlink(out)
    conn = sqlite3.connect(out, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    db.create_public_schema(conn)
    secondary = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = 'result'"
        )
    ]
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = 'result'"
    ).fetchall():
        conn.execute(f"DROP INDEX {name}")

    per_package = len(RELEASES) * len(ARCHES)
    packages = package_names(max(1, tests // per_package), rng)
    test_rows = []
    for package in packages:
        for release in RELEASES:
            for arch in ARCHES:
                test_rows.append((len(test_rows) + 1, release, arch, package))
    test_rows = test_rows[:tests]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO test(id, release, arch, package) VALUES (?, ?, ?, ?)", test_rows)
    conn.execute("COMMIT")

    # Results per test: heavy-tailed (a few tests with thousands of runs, most with a few dozen).
    weights = [rng.paretovariate(1.2) for _ in test_rows]
    scale = total_results / sum(weights)
    counts = [max(1, int(w * scale)) for w in weights]
    hello = next(i for i, row in enumerate(test_rows) if row[3] == "hello" and row[1] == "noble" and row[2] == "amd64")
    counts[hello] = max(counts[hello], 6000)  # history page 50 at limit 100 needs 5,000+ runs
    drift = total_results - sum(counts)
    for index in rng.sample(range(len(counts)), min(len(counts), abs(drift))) if drift else []:
        counts[index] = max(1, counts[index] + (1 if drift > 0 else -1))
    heavy_every = max(1, sum(counts) // heavy) if heavy else 0
    users = [f"user{n}" for n in range(300)]
    made = 0
    uuids = {}
    batch = []
    conn.execute("BEGIN")
    for (test_id, release, arch, package), count in zip(test_rows, counts, strict=True):
        stamps = sorted(rng.randint(START, END) for _ in range(count))
        version_base = rng.randint(1, 9)
        for position, stamp in enumerate(stamps):
            made += 1
            exitcode = rng.choices((0, 2, 4, 8, 12, 16, 20, 99), (70, 5, 15, 4, 2, 2, 1, 1))[0]
            version = f"{version_base}.{position // 50}-{1 + position % 7}ubuntu1"
            triggers = f"{package}/{version}"
            if rng.random() < 0.3:
                triggers += " " + rng.choice(TRIGGER_POOL)
            if heavy_every and made % heavy_every == 0:
                requester = HEAVY_USER
            elif rng.random() < 0.15:
                requester = rng.choice(users)
            else:
                requester = ""
            uuid = uuid4(rng) if stamp > 1_640_995_200 else None  # uuids since 2022
            if uuid and made % 997 == 0:
                uuids[uuid] = (package, release, arch)
            rid = run_id(stamp, rng)
            batch.append(
                (
                    test_id,
                    rid,
                    version,
                    triggers,
                    rng.randint(30, 7200),
                    exitcode,
                    requester,
                    "all-proposed=1" if rng.random() < 0.02 else "",
                    uuid,
                )
            )
            if len(batch) >= BATCH:
                conn.executemany("INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
                conn.execute("COMMIT")
                conn.execute("BEGIN")
                print(f"  {made:,} results", flush=True)
    if batch:
        conn.executemany("INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
    conn.execute("COMMIT")
    for statement in secondary:
        started = time.monotonic()
        conn.execute(statement)
        print(f"  index built in {time.monotonic() - started:.1f} s: {statement}", flush=True)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR REPLACE INTO current_version(release, pocket, component, package, version) VALUES (?, ?, 'main', ?, ?)",
        [(release, release, package, "1.0-1ubuntu1") for (_i, release, _a, package) in test_rows[:: len(ARCHES)]],
    )
    conn.execute("COMMIT")
    heavy_count = conn.execute("SELECT COUNT(*) FROM result WHERE requester = ?", (HEAVY_USER,)).fetchone()[0]
    conn.close()
    info = {
        "tests": len(test_rows),
        "results": made,
        "heavy_user": HEAVY_USER,
        "heavy_user_results": heavy_count,
        "package": "hello",
        "history": ["hello", "noble", "amd64"],
        "hello_runs": counts[hello],
        "uuids": list(uuids)[:200],
        "releases": RELEASES,
        "prefix": results.srchash("hello"),
    }
    with open(out + ".json", "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/out/big.db", help="DB path (default bench/out/big.db)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of production size (0.1 = 1/10)")
    parser.add_argument("--tests", type=int, default=200_000, help="tests at scale 1")
    parser.add_argument("--results", type=int, default=10_000_000, help="results at scale 1")
    parser.add_argument("--heavy-user-results", type=int, default=100_000, help="results of one requester at scale 1")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    started = time.monotonic()
    info = generate(
        args.out,
        max(36, int(args.tests * args.scale)),
        max(100, int(args.results * args.scale)),
        int(args.heavy_user_results * args.scale),
        args.seed,
    )
    size = os.path.getsize(args.out) / 1e6
    print(
        f"{args.out}: {info['tests']:,} tests, {info['results']:,} results, {info['heavy_user']} has "
        f"{info['heavy_user_results']:,}, {size:,.0f} MB, {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
