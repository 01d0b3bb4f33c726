# SPDX-License-Identifier: GPL-3.0-or-later
"""download-all-results with every listing request written to a log file (fault tests).

``python -m tests.faults.counting_ingest LOG [download-all-results options]``
runs the real program after wrapping the stores' ``list_objects``: one line
``list <marker>`` before each request and ``page <rows> <last name>`` after
it. The file is line-buffered, so lines written before a SIGKILL are kept.
"""

from __future__ import annotations

import json
import sys

from webcontrol.services import download_all_results
from webcontrol.store.local import LocalStore
from webcontrol.store.swift import SwiftStore


def _wrap(cls, log) -> None:
    original = cls.list_objects

    def list_objects(self, container, prefix=None, delimiter=None, marker=None, *args, **kwargs):
        log.write(json.dumps(["list", container, marker]) + "\n")
        page = original(self, container, prefix, delimiter, marker, *args, **kwargs)
        log.write(json.dumps(["page", container, len(page), page[-1].name if page else None]) + "\n")
        return page

    cls.list_objects = list_objects


def main() -> int:
    log = open(sys.argv[1], "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    for cls in (SwiftStore, LocalStore):
        _wrap(cls, log)
    return download_all_results.main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
