# SPDX-License-Identifier: GPL-3.0-or-later
"""Optional per-requester hourly limit on queued test requests (docs/formats.rst, Validation order).

Off by default (``[web] request_rate_limit = 0``). :meth:`RateLimiter.reserve`
checks and records in one step under an exclusive lock, so concurrent
requests (threads or processes) never queue more than the limit. The counts live in
``<runtime_dir>/request-rate.json`` (``{"<nick>": [unix times]}``), a
throwaway cache shared by the web workers under an flock: losing it only
resets the counters.
"""

from __future__ import annotations

import fcntl
import logging
import time
from pathlib import Path

from webcontrol import atomicfile

log = logging.getLogger(__name__)

WINDOW_S = 3600


class RateLimiter:
    def __init__(self, path: str | Path, limit: int):
        self.path = Path(path)
        self.limit = limit

    def reserve(self, nick: str, count: int, now: float | None = None) -> int:
        """Check and record ``count`` requests in one step under the lock.

        Returns 0 when they were recorded (call :meth:`cancel` if they are not
        queued after all), else the seconds to wait. Concurrent callers never
        get more than the limit between them.
        """
        if self.limit <= 0:
            return 0
        now = time.time() if now is None else now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock(fcntl.LOCK_EX):
                data = self._load(now)
                stamps = data.get(nick, [])
                if len(stamps) + count > self.limit:
                    if not stamps or count > self.limit:
                        return WINDOW_S
                    index = len(stamps) + count - self.limit - 1
                    return max(1, int(stamps[index] + WINDOW_S - now) + 1)
                data[nick] = sorted(stamps + [now] * count)
                atomicfile.write_json_atomic(self.path, {k: v for k, v in data.items() if v}, mode=0o600)
        except OSError as err:
            log.warning("cannot record request rate in %s: %s", self.path, err)
        return 0

    def cancel(self, nick: str, count: int, now: float) -> None:
        """Forget ``count`` reservations made at ``now`` (the requests were not queued)."""
        if self.limit <= 0:
            return
        try:
            with self._lock(fcntl.LOCK_EX):
                data = self._load(time.time())
                stamps = data.get(nick, [])
                for _ in range(count):
                    if now in stamps:
                        stamps.remove(now)
                data[nick] = stamps
                atomicfile.write_json_atomic(self.path, {k: v for k, v in data.items() if v}, mode=0o600)
        except OSError as err:
            log.warning("cannot update request rate in %s: %s", self.path, err)

    def _load(self, now: float) -> dict[str, list[float]]:
        data = atomicfile.read_json(self.path, {})
        data = data if isinstance(data, dict) else {}
        return {
            k: sorted(t for t in v if isinstance(t, (int, float)) and now - t < WINDOW_S)
            for k, v in data.items()
            if isinstance(v, list)
        }

    def _lock(self, mode: int):
        return atomicfile.file_lock(self.path.with_name(self.path.name + ".lock"), exclusive=mode == fcntl.LOCK_EX)
