# SPDX-License-Identifier: GPL-3.0-or-later
"""One SwiftStore shared by threads, as in a web process: throughput, a stalled GET, logins.

``python bench/swift_threads.py [--threads 8] [--gets 40] [--stall 5]`` starts
a Swift All In One, puts a few small objects, and reaches Swift through a
loopback relay that counts requests. It prints:

- wall time and GETs/s for ``threads`` x ``gets`` GETs on one store;
- while one GET is held at the relay for ``stall`` seconds, the latency of
  GETs on other threads (median and max);
- how many logins (``GET /auth/v1.0``) the whole run made.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.http_relay import HttpRelay  # noqa: E402
from tests.services.swift import start_swift  # noqa: E402
from webcontrol import config as configmod  # noqa: E402
from webcontrol.store.swift import SwiftStore  # noqa: E402

CONTAINER = "bench-threads"
AUTH = "/auth/v1.0"


def _gets(store: SwiftStore, count: int, index: int, latencies: list[float]) -> None:
    for n in range(count):
        started = time.perf_counter()
        store.get_object(CONTAINER, f"o{(index + n) % 16}")
        latencies.append(time.perf_counter() - started)


def _run_threads(store: SwiftStore, threads: int, gets: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    workers = [threading.Thread(target=_gets, args=(store, gets, i, latencies)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--gets", type=int, default=40, help="GETs per thread")
    parser.add_argument("--stall", type=float, default=5.0, help="seconds one GET is held")
    args = parser.parse_args()
    swift = start_swift()
    relay = HttpRelay(swift.ports["proxy"]).start()
    try:
        section = dict(swift.config_section(), os_auth_url=relay.url + AUTH)
        store = SwiftStore.from_config(configmod.from_dict({"swift": section}))
        store.put_object(CONTAINER, "slow", b"slow")
        for index in range(16):
            store.put_object(CONTAINER, f"o{index}", b"x" * 1024)

        wall, _ = _run_threads(store, args.threads, args.gets)
        total = args.threads * args.gets
        print(f"{args.threads} threads x {args.gets} GETs: {wall:.2f} s, {total / wall:.0f} GETs/s")

        relay.hold(f"/{CONTAINER}/slow")
        slow = threading.Thread(target=store.get_object, args=(CONTAINER, "slow"))
        slow.start()
        relay.held.wait(10)
        timer = threading.Timer(args.stall, relay.release)
        timer.start()
        wall, latencies = _run_threads(store, 4, 5)
        slow.join()
        timer.cancel()
        print(
            f"while one GET is held {args.stall:.0f} s: 4 threads x 5 GETs took {wall:.2f} s,"
            f" latency median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        print(f"logins: {relay.count('GET', AUTH)}")
        store.close()
    finally:
        relay.stop()
        swift.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
