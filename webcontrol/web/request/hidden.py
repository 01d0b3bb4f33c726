# SPDX-License-Identifier: GPL-3.0-or-later
"""Duplicate detection for requests with ``readable-by``.

cache-amqp shows such a request only as ``private job`` in queued.json, so
it cannot be compared there. request.cgi remembers the ones it queued
(a hash of package, release, arch, triggers, all-proposed, ppas and
readable-by) in ``<runtime_dir>/hidden-requests.json``; an identical request
is a duplicate while that queue still holds a private job, for at most a
day. The file is capped in entries and pruned on each write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from webcontrol import atomicfile, livestate

log = logging.getLogger(__name__)

KEEP_S = 86400
MAX_ENTRIES = 10_000


def signature(package: str, release: str, arch: str, params: Mapping[str, Any]) -> str:
    readable = params.get("readable-by") or []
    readable = [readable] if isinstance(readable, str) else list(readable)
    key = [
        package,
        release,
        arch,
        sorted(params.get("triggers") or []),
        params.get("all-proposed") or "",
        list(params.get("ppas") or []),
        sorted(readable),
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


class HiddenRequests:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def is_queued(self, raw_queued: Mapping, context: str, package: str, release: str, arch: str, params) -> bool:
        if not params.get("readable-by"):
            return False
        data = atomicfile.read_json(self.path, {})
        stamp = data.get(signature(package, release, arch, params)) if isinstance(data, dict) else None
        if not isinstance(stamp, (int, float)) or time.time() - stamp > KEEP_S:
            return False
        queues = raw_queued.get("queues") if isinstance(raw_queued, Mapping) else None
        entry = (((queues or {}).get(context) or {}).get(release) or {}).get(arch)
        requests = entry.get("requests") if isinstance(entry, dict) else None
        return isinstance(requests, list) and livestate.PRIVATE_JOB in requests

    def remember(self, package: str, release: str, arch: str, params) -> None:
        if not params.get("readable-by"):
            return
        now = time.time()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomicfile.file_lock(self.path.with_name(self.path.name + ".lock"), exclusive=True):
                data = atomicfile.read_json(self.path, {})
                data = data if isinstance(data, dict) else {}
                kept = sorted(
                    ((v, k) for k, v in data.items() if isinstance(v, (int, float)) and now - v < KEEP_S), reverse=True
                )
                data = {k: v for v, k in kept[: MAX_ENTRIES - 1]}
                data[signature(package, release, arch, params)] = now
                atomicfile.write_json_atomic(self.path, data, mode=0o600)
        except OSError as err:
            log.warning("cannot remember hidden request in %s: %s", self.path, err)
