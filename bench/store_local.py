#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Timing of LocalStore listings on a container of many runs.

    python bench/store_local.py [--runs 20000] [--packages 100] [--dir DIR]

Builds ``<dir>/autopkgtest-noble`` (files written directly, 3 per run), then
times: a full paged listing (1000 per page, the download-all-results way),
one package's runs with ``delimiter=@`` (britney's query), and paging one
package's runs by marker.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from webcontrol.store.local import LocalStore

CONTAINER = "autopkgtest-noble"


def build(root: Path, runs: int, packages: int) -> list[str]:
    names = [f"pkg{i:04d}" for i in range(packages)]
    per_package = max(1, runs // packages)
    for name in names:
        base = root / CONTAINER / "noble" / "amd64" / name[0] / name
        for run in range(per_package):
            folder = base / f"2024{run // 86400 + 1:04d}_{run % 86400:06d}_abcde@"
            folder.mkdir(parents=True, exist_ok=True)
            for file in ("artifacts.tar.gz", "log.gz", "result.tar"):
                (folder / file).write_bytes(b"x")
    # Old enough for the directory cache to trust the mtimes.
    past = time.time() - 60
    for folder, _, _ in os.walk(root):
        os.utime(folder, (past, past))
    return names


def timed(label: str, func) -> None:
    start = time.perf_counter()
    count = func()
    print(f"{label}: {count} rows in {time.perf_counter() - start:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--dir")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="store-bench-"))
    start = time.perf_counter()
    names = build(root, args.runs, args.packages)
    print(f"built {args.runs} runs under {root} in {time.perf_counter() - start:.1f} s")
    store = LocalStore(root)
    timed("full listing, 1000/page (cold)", lambda: sum(1 for _ in store.iter_objects(CONTAINER)))
    timed("full listing, 1000/page (cached)", lambda: sum(1 for _ in store.iter_objects(CONTAINER)))
    prefix = f"noble/amd64/p/{names[len(names) // 2]}/"
    timed("one package, delimiter=@", lambda: len(store.list_objects(CONTAINER, prefix=prefix, delimiter="@")))
    timed(
        "one package, delimiter=@, 10/page",
        lambda: sum(1 for _ in store.iter_objects(CONTAINER, prefix=prefix, delimiter="@", page_size=10)),
    )
    last = store.list_objects(CONTAINER, prefix=prefix, delimiter="@")[-1].name
    timed("one package, marker at last run", lambda: len(store.list_objects(CONTAINER, prefix=prefix, marker=last)))


if __name__ == "__main__":
    main()
