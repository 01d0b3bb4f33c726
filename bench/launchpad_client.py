#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one Launchpad question costs the web apps' client (webcontrol/launchpad.py), uncached.

Usage: python bench/launchpad_client.py [--questions 400] [--threads 1 4]

The fake Launchpad (tests/fakes, real HTTP on loopback) answers; the
client's positive-answer cache is off, so every question reaches it. The
questions cycle through the five operations request.cgi and private-results
ask: getPublishedSources on the primary archive, checkUpload, getPPAByName,
a person's super_teams and a team's participants (3 pages each). Prints the
time of the first question (the client starting: WADL fetched and parsed),
then per thread count the questions per second and, per operation, the
median and p95 latency and the HTTP requests it made.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPERATIONS = ("publication", "upload", "ppa", "super_teams", "participants")


def ask(lp, operation: str, i: int):
    if operation == "publication":
        return lp.publication(f"src{i % 50}", "noble", "1.0")
    if operation == "upload":
        return lp.can_upload(f"user{i % 50}", "noble", f"src{i % 50}", "main")
    if operation == "ppa":
        return lp.ppa_exists(f"user{i % 50}", "ppa")
    if operation == "super_teams":
        return lp.super_teams(f"user{i % 50}")
    return lp.participants(f"team{i % 5}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=400, help="questions per thread-count run (default 400)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4], help="concurrent threads (default 1 4)")
    args = parser.parse_args(argv)

    from tests.fakes.launchpad import FakeLaunchpad
    from webcontrol.launchpad import Launchpad

    fake = FakeLaunchpad().start()
    try:
        state = fake.state
        state.page_size = 2
        for i in range(50):
            state.publish(f"src{i}", "1.0", "noble")
            state.teams[f"user{i}"] = [f"team{i % 5}", "a", "b", "c", "d"]
            state.ppas.add((f"user{i}", "ppa"))
            state.uploaders.add((f"user{i}", f"src{i}"))
        for t in range(5):
            state.participants[f"team{t}"] = [f"user{i}" for i in range(t, 50, 10)]
        lp = Launchpad(fake.url, timeout=10.0, positive_ttl_s=0)
        started = time.perf_counter()
        assert lp.publication("src0", "noble", "1.0")
        first_ms = (time.perf_counter() - started) * 1000
        print(f"Launchpad client benchmark: first question (client start) {first_ms:.0f} ms")
        print(f"{'threads':>7} {'q/s':>7}  " + "  ".join(f"{op + ' p50/p95 ms (HTTP)':>32}" for op in OPERATIONS))
        for threads in args.threads:
            times: dict[str, list[float]] = {op: [] for op in OPERATIONS}
            requests: dict[str, int] = {}
            for op in OPERATIONS:  # HTTP requests per question, measured alone
                before = len(state.calls)
                ask(lp, op, 1)
                requests[op] = len(state.calls) - before
            failures: list[str] = []
            per_thread = args.questions // threads

            def loop(offset: int, per_thread=per_thread, times=times, failures=failures) -> None:
                for n in range(per_thread):
                    op = OPERATIONS[(n + offset) % len(OPERATIONS)]
                    t0 = time.perf_counter()
                    answer = ask(lp, op, n + offset)
                    times[op].append(time.perf_counter() - t0)
                    if not answer:
                        failures.append(op)

            workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
            t0 = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            elapsed = time.perf_counter() - t0
            cells = []
            for op in OPERATIONS:
                ordered = sorted(times[op])
                p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
                cells.append(f"{statistics.median(ordered) * 1000:>6.1f} / {p95 * 1000:>6.1f} ({requests[op]})")
            total = sum(len(v) for v in times.values())
            print(f"{threads:>7} {total / elapsed:>7.1f}  " + "  ".join(f"{c:>32}" for c in cells))
            if failures:
                print(f"  WRONG ANSWERS: {len(failures)} (first: {failures[0]})")
                return 1
        return 0
    finally:
        fake.stop()


if __name__ == "__main__":
    raise SystemExit(main())
