#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Size of the failure index per 100,000 failing runs, and /search latency on 500,000 of them.

Usage: python bench/failure_search.py [--runs 500000] [--out bench/out/failures.db]

Excerpts are made the way index-failures makes them: the three recorded
real logs (tests/data/client-data) go through webcontrol.failurelog, and
further excerpts are assembled from realistic failure shapes (Python
tracebacks, unittest and pytest verdicts, C++ test asserts, segfaults, apt
and dpkg errors, testbed failures, missing symbols) with varied package,
module, symbol, path and test names, so the index has a realistic vocabulary
(many rare tokens, a few very common ones). Runs span the 90-day retention
window over 6 releases and 6 arches and are added through
failureindex.add in batches, as the consumer does.

Then it times the /api/v1/search twin in-process (Flask test client: query,
grouping, highlighting and JSON included) for queries from very rare to very
common, with and without filters. Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from webcontrol import config as configmod
from webcontrol import db, failureindex, failurelog

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "client-data" / "ppa-dev-tools"
RELEASES = ["focal", "jammy", "noble", "oracular", "plucky", "questing"]
ARCHES = ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"]
SYLLABLES = ["lib", "py", "gtk", "gl", "xml", "net", "core", "io", "ssl", "zip", "re", "img", "db", "qt", "rs"]


def word(rng: random.Random, parts: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)) + rng.choice(["", "2", "3", "-utils", "5"])


def real_excerpts() -> list[str]:
    return [failurelog.extract([path.read_bytes()]) for path in sorted(DATA.glob("*.log.gz"))]


def synthetic(rng: random.Random, package: str) -> str:
    module, symbol, test = word(rng, 2), word(rng, 3).replace("-", "_"), f"test_{word(rng, 2)}".replace("-", "_")
    path = f"/usr/lib/python3/dist-packages/{module}/{word(rng, 1)}.py"
    shapes = [
        [
            f"test {test}: FAIL non-zero exit status 1",
            "Traceback (most recent call last):",
            f'  File "{path}", line {rng.randint(1, 2000)}, in {symbol}',
            f"    return {module}.{symbol}(value, strict=True)",
            f"AttributeError: module '{module}' has no attribute '{symbol}'",
        ],
        [
            "test unittests: FAIL non-zero exit status 1",
            f"FAIL: {test} ({module}.tests.{symbol}Test.{test})",
            f"AssertionError: {rng.randint(0, 99)} != {rng.randint(100, 999)}",
            f"Ran {rng.randint(10, 900)} tests in {rng.random() * 60:.3f}s",
            f"FAILED (failures={rng.randint(1, 9)})",
        ],
        [
            "test upstream: FAIL non-zero exit status 2",
            "=========== short test summary info ===========",
            f"FAILED tests/test_{module}.py::{test} - ValueError: invalid literal for int() with base 10: '{word(rng)}'",
            f"==== 1 failed, {rng.randint(50, 3000)} passed, {rng.randint(0, 40)} skipped in {rng.randint(2, 900)}s ====",
        ],
        [
            "test smoke: FAIL non-zero exit status 139",
            f"./debian/tests/smoke: line {rng.randint(3, 80)}: {rng.randint(1000, 99999)} Segmentation fault"
            f"      (core dumped) {package} --selftest",
        ],
        [
            "test build: FAIL non-zero exit status 1",
            f"/usr/bin/{package}: symbol lookup error: /lib/x86_64-linux-gnu/lib{module}.so.{rng.randint(0, 9)}:"
            f" undefined symbol: {symbol}_{word(rng, 1)}",
        ],
        [
            f"test command1: FAIL stderr: E: Unable to locate package {word(rng)}",
            "E: Unable to locate package " + word(rng),
            "autopkgtest: ERROR: erroneous package: test dependencies are unsatisfiable",
        ],
        [
            "<VirtSubproc>: failure: timed out waiting for testbed to reboot",
            "autopkgtest: ERROR: testbed failure: cannot send to testbed: [Errno 32] Broken pipe",
        ],
        [
            f"test {test}: FAIL non-zero exit status 1",
            f"[  FAILED  ] {symbol}Test.{test} ({rng.randint(1, 9000)} ms)",
            f"{path[:-3]}.cc:{rng.randint(10, 900)}: Failure",
            f"Expected equality of these values: {symbol} Which is: {rng.randint(0, 9)}",
            f"[  PASSED  ] {rng.randint(10, 400)} tests.",
            f"[  FAILED  ] {rng.randint(1, 5)} test, listed below:",
        ],
    ]
    lines = list(rng.choice(shapes))
    tail = [
        f"Setting up {word(rng)} ({rng.randint(1, 9)}.{rng.randint(0, 40)}-{rng.randint(1, 5)}) ...",
        f"make[{rng.randint(1, 3)}]: Leaving directory '/tmp/autopkgtest.{word(rng, 1)}/build.{rng.randint(0, 99)}'",
        f"Running {module} tests with {rng.randint(1, 64)} workers",
        f"PASS: {word(rng, 2)} {rng.randint(1, 99)}",
        f"checking for {word(rng, 2)}... yes",
        f"  {word(rng, 2)}: {rng.randint(0, 10**6)} bytes",
    ]
    lines += [rng.choice(tail) for _ in range(rng.randint(2, 10))]
    return "\n".join(lines)


def generate(path: Path, runs: int, seed: int = 1) -> list[tuple[int, int, float]]:
    """Index ``runs`` failing runs; returns (runs, bytes, seconds) at every 100,000 and at the end."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    conn = failureindex.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    real = real_excerpts()
    packages = [word(rng) for _ in range(20_000)]
    end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = end - datetime.timedelta(days=89)
    span = (end - start).total_seconds()
    sizes = []
    started = time.monotonic()
    batch = []
    for n in range(runs):
        when = start + datetime.timedelta(seconds=span * n / runs)
        package = rng.choice(packages)
        text = rng.choice(real) if rng.random() < 0.05 else synthetic(rng, package)
        run_id = f"{when:%Y%m%d_%H%M%S}_{rng.getrandbits(20):05x}@"
        batch.append(
            failureindex.Entry(
                package,
                rng.choice(RELEASES),
                rng.choice(ARCHES),
                run_id,
                "1.0-1",
                f"{package}/1.0-1",
                rng.choice((4, 4, 4, 6, 12, 16, 20)),
                failurelog.cap(text.split("\n")),
            )
        )
        if len(batch) == 2000:
            failureindex.add(conn, batch)
            batch.clear()
        if (n + 1) % 100_000 == 0 or n + 1 == runs:
            if batch:
                failureindex.add(conn, batch)
                batch.clear()
            sizes.append((n + 1, path.stat().st_size, time.monotonic() - started))
            print(
                f"  {n + 1:,} runs: {path.stat().st_size / 1e6:.0f} MB after {time.monotonic() - started:.0f} s",
                flush=True,
            )
    if batch:
        failureindex.add(conn, batch)
    conn.close()
    return sizes


def site(index: Path, folder: Path):
    public = folder / "public.db"
    conn = sqlite3.connect(public, isolation_level=None)
    db.create_public_schema(conn)
    db.record_results(
        conn,
        [db.ResultRecord(r, a, "hello", "20240101_000000@", "1", "hello/1", 1, 0) for r in RELEASES for a in ARCHES],
    )
    conn.close()
    values = {
        "web": {
            "database_public": public,
            "state_dir": folder / "state",
            "failure_index": index,
            "releases": " ".join(RELEASES),
            "site_url": "http://127.0.0.1",
        }
    }
    configmod.write(values, folder / "c.conf")
    from webcontrol.web.browse import create_app

    return create_app(configmod.load(str(folder / "c.conf"))).test_client()


def queries(index: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(index)
    rng = random.Random(2)
    rare = []
    for (text,) in conn.execute("SELECT text FROM excerpt WHERE rowid % 997 = 0 LIMIT 200"):
        tokens = [t for t in text.replace("'", " ").replace(":", " ").split() if len(t) > 12 and t.isidentifier()]
        if tokens:
            rare.append(rng.choice(tokens))
    conn.close()
    week = (datetime.date.today() - datetime.timedelta(days=7)).isoformat()
    return {
        "rare identifier": [f"/api/v1/search?q={t}" for t in rare[:50]],
        "common word": ["/api/v1/search?q=FAIL", "/api/v1/search?q=error", "/api/v1/search?q=tests"],
        "phrase": [
            '/api/v1/search?q="testbed failure"',
            '/api/v1/search?q="undefined symbol"',
            '/api/v1/search?q="Segmentation fault"',
        ],
        "two words": ["/api/v1/search?q=ImportError cpus_allowed_list", "/api/v1/search?q=AssertionError Ran"],
        "+release+arch": [
            "/api/v1/search?q=FAIL&release=noble&arch=s390x",
            '/api/v1/search?q="undefined symbol"&release=jammy&arch=armhf',
        ],
        "+last week": [f"/api/v1/search?q=Segmentation&since={week}", f"/api/v1/search?q=FAIL&since={week}"],
        "rare+release": [f"/api/v1/search?q={t}&release=noble" for t in rare[:50]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500_000, help="failing runs to index (default 500000)")
    parser.add_argument("--out", default="bench/out/failures.db", help="index path (default %(default)s)")
    parser.add_argument("--reuse", action="store_true", help="use the index at --out as it is")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per query kind (default 100)")
    args = parser.parse_args()
    index = Path(args.out)
    index.parent.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        sizes = generate(index, args.runs)
        per = [size / count * 100_000 for count, size, _ in sizes if count % 100_000 == 0] or [
            sizes[-1][1] / sizes[-1][0] * 100_000
        ]
        print(
            f"index size per 100,000 failing runs: {statistics.mean(per) / 1e6:.0f} MB (measured at each 100,000:"
            f" {', '.join(f'{p / 1e6:.0f}' for p in per)} MB); total {index.stat().st_size / 1e6:.0f} MB"
        )
    count = sqlite3.connect(index).execute("SELECT COUNT(*) FROM run").fetchone()[0]
    client = site(index, Path(tempfile.mkdtemp(prefix="search-bench-")))
    print(f"/api/v1/search over {count:,} failing runs, {args.requests} requests per kind (50 runs per page)")
    print(f"{'query kind':<18} {'median ms':>9} {'p95 ms':>8} {'max ms':>8} {'matches/page':>12}")
    worst = 0.0
    for name, paths in queries(index).items():
        for path in paths[:5]:
            client.get(path)
        times, matches = [], []
        for n in range(args.requests):
            path = paths[n % len(paths)]
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
            matches.append(response.get_json()["matches"])
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        worst = max(worst, p95)
        print(
            f"{name:<18} {statistics.median(times):>9.1f} {p95:>8.1f} {times[-1]:>8.1f} {statistics.mean(matches):>12.1f}"
        )
    print(f"worst p95: {worst:.1f} ms")


if __name__ == "__main__":
    main()
