# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounds on what one web request may cost Launchpad.

:class:`LaunchpadAnswers` is the per-process cache of answers shared by all
requests: a positive answer (published, allowed, member, exists) is reused
for ``team_cache_seconds``, a negative one for ``NEGATIVE_TTL_S``, so a
script that repeats a refused request does not reach Launchpad again.

:class:`RequestLaunchpad` is what one request talks to. It offers the
public operations of :class:`webcontrol.launchpad.Launchpad`, answers a
repeated question from its own memo, and stops with
:class:`LaunchpadUnavailable` (a 503 for the user) once the request has
made ``max_calls`` calls or spent ``budget_s`` seconds waiting for
Launchpad in all. Each call runs on a worker thread so that a hanging
Launchpad costs the request its budget, never the client timeout.

:func:`warm` builds the process's launchpadlib client on a worker thread
when an app starts, so that the first request does not wait for it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from webcontrol.launchpad import Launchpad, LaunchpadUnavailable, Publication

log = logging.getLogger(__name__)

NEGATIVE_TTL_S = 60.0
CACHE_SIZE = 8192
WORKERS = 16

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="launchpad")
        return _executor


def warm(launchpad: Launchpad) -> None:
    """Build ``launchpad``'s client in the background; a failure is logged and retried on first use."""
    _pool().submit(launchpad.warm)


class LaunchpadAnswers:
    """Answers shared across requests: positives for ``positive_ttl_s``, negatives for a minute."""

    def __init__(self, positive_ttl_s: float, negative_ttl_s: float = NEGATIVE_TTL_S):
        self.positive_ttl_s = positive_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple) -> tuple[bool, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is None:
            return False, None
        stamp, value = hit
        ttl = self.positive_ttl_s if value else self.negative_ttl_s
        return (now - stamp < ttl), value

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= CACHE_SIZE:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)


class RequestLaunchpad:
    """One request's view of Launchpad: memoised, cached, counted and timed."""

    def __init__(self, launchpad: Launchpad, answers: LaunchpadAnswers, max_calls: int, budget_s: float):
        self.launchpad = launchpad
        self.base = launchpad.base
        self.answers = answers
        self.max_calls = max_calls
        self.deadline = time.monotonic() + budget_s
        self.budget_s = budget_s
        self.calls = 0
        self._memo: dict[tuple, Any] = {}

    def _ask(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key in self._memo:
            return self._memo[key]
        fresh, value = self.answers.get(key)
        if not fresh:
            value = self._call(key, compute)
            self.answers.put(key, value)
        self._memo[key] = value
        return value

    def _call(self, key: tuple, compute: Callable[[], Any]) -> Any:
        remaining = self.deadline - time.monotonic()
        if self.calls >= self.max_calls:
            log.warning("request stopped after %d Launchpad calls (at %s)", self.calls, key[0])
            raise LaunchpadUnavailable(f"more than {self.max_calls} Launchpad calls for one request")
        if remaining <= 0:
            raise LaunchpadUnavailable(f"Launchpad took more than {self.budget_s:.0f} s for one request")
        self.calls += 1
        future = _pool().submit(compute)
        try:
            return future.result(timeout=remaining)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.warning("Launchpad budget of %.0f s spent (at %s)", self.budget_s, key[0])
            raise LaunchpadUnavailable(f"Launchpad took more than {self.budget_s:.0f} s for one request") from None

    # The public operations of Launchpad ------------------------------------------------

    def ppa_exists(self, owner: str, name: str) -> bool:
        return self._ask(("ppa", owner, name), lambda: self.launchpad.ppa_exists(owner, name))

    def publication(self, source: str, release: str, version: str | None = None, ppa: str | None = None) -> Publication:
        return self._ask(
            ("published", source, release, version, ppa),
            lambda: self.launchpad.publication(source, release, version, ppa=ppa),
        )

    def can_upload(self, nick: str, release: str, package: str, component: str) -> bool:
        return self._ask(
            ("upload", nick, release, package, component),
            lambda: self.launchpad.can_upload(nick, release, package, component),
        )

    def super_teams(self, nick: str) -> list[str]:
        return self._ask(("super_teams", nick), lambda: self.launchpad.super_teams(nick))

    def participants(self, team: str) -> list[str]:
        return self._ask(("participants", team), lambda: self.launchpad.participants(team))


def distinct(values: Iterable[str]) -> list[str]:
    """``values`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(values))
