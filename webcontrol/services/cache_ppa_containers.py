# SPDX-License-Identifier: GPL-3.0-or-later
"""cache-ppa-containers: the list of PPA result containers, for browse.cgi's PPA pages.

Reads the store's whole account listing (every page) and writes the names
of PPA containers, ``autopkgtest-<release>-<owner>-<ppa>`` (at least three
``-``-separated parts), as a sorted JSON array to
``<[web] ppa_containers_cache_dir>/ppa_containers.json``, replaced
atomically. On a store failure the previous file is left as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from webcontrol import results
from webcontrol.atomicfile import write_atomic
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import run_program
from webcontrol.store import open_store

log = logging.getLogger(__name__)

FILE_NAME = "ppa_containers.json"


def ppa_containers(names: Iterable[str]) -> list[str]:
    """PPA container names, sorted."""
    return sorted({name for name in names if results.may_be_ppa_container(name)})


def _run(args: argparse.Namespace, config: Config) -> int:
    return periodic.run_passes("cache-ppa-containers", lambda: _pass(args, config))


def _pass(args: argparse.Namespace, config: Config) -> int:
    target = Path(config.need("web", "ppa_containers_cache_dir")) / FILE_NAME
    store = open_store(config)
    try:
        names = store.list_containers(prefix=results.CONTAINER_PREFIX)
    finally:
        store.close()
    found = ppa_containers(names)
    target.parent.mkdir(parents=True, exist_ok=True)  # it may live in the throwaway runtime_dir
    write_atomic(target, json.dumps(found))
    log.info("wrote %d PPA containers (of %d containers) to %s", len(found), len(names), target)
    return 0


def main(argv=None) -> int:
    return run_program(
        "Write the sorted list of PPA result containers (autopkgtest-<release>-<owner>-<ppa>) "
        "to <[web] ppa_containers_cache_dir>/ppa_containers.json.",
        _run,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
