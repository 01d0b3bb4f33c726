# SPDX-License-Identifier: GPL-3.0-or-later
"""How request.cgi answered, counted by HTTP status for browse.cgi's ``/metrics``.

request.cgi and browse.cgi may run in different processes, so the counts
live in ``<runtime_dir>/request-outcomes.json`` (``{"<status>": count}``),
a throwaway cache updated under an flock: losing it only resets counters,
as a process restart would.
"""

from __future__ import annotations

import logging
from pathlib import Path

from webcontrol import atomicfile
from webcontrol.config import Config

log = logging.getLogger(__name__)

FILE_NAME = "request-outcomes.json"


def outcomes_path(config: Config) -> Path:
    return Path(config.get("web", "runtime_dir")) / FILE_NAME


def load(path: Path) -> dict[str, int]:
    """``{"<status>": count}``; empty when the file is missing or unreadable."""
    data = atomicfile.read_json(path, {})
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def record(path: Path, status: int) -> None:
    """Count one answer (never fails a request: problems are logged)."""
    try:
        with atomicfile.file_lock(path.with_name(path.name + ".lock")):
            counts = load(path)
            counts[str(status)] = counts.get(str(status), 0) + 1
            atomicfile.write_json_atomic(path, counts)
    except OSError as err:
        log.warning("cannot count request outcome in %s: %s", path, err)
