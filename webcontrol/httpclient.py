# SPDX-License-Identifier: GPL-3.0-or-later
"""Outgoing HTTP: one ``requests`` session per process and retry policy.

Every client of the project (GitHub statuses, the archive's ``Sources.gz``,
InfluxDB) goes through :func:`session`, so connection reuse, the
User-Agent, retries and error mapping work one way. Retries are urllib3's
:class:`~urllib3.util.retry.Retry`: connection errors, read errors and the
statuses in :data:`RETRY_STATUSES`, with exponential backoff, honouring
``Retry-After``. Sessions are per process (a forked worker builds its own),
since a session's connection pool must not be shared across ``fork()``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

USER_AGENT = "autopkgtest-web (+https://autopkgtest.ubuntu.com)"
#: Answers worth another try: rate limiting and server-side trouble.
RETRY_STATUSES = (429, 500, 502, 503, 504)

# A failed call raises one of these; callers catch this tuple and nothing wider.
Error = (requests.RequestException,)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one kind of call is retried."""

    attempts: int = 3
    backoff: float = 1.0
    #: Also retry POST (only for calls whose repetition is harmless).
    retry_post: bool = False

    def retry(self) -> Retry:
        methods = set(Retry.DEFAULT_ALLOWED_METHODS) | ({"POST"} if self.retry_post else set())
        return Retry(
            total=max(0, self.attempts - 1),
            connect=max(0, self.attempts - 1),
            read=max(0, self.attempts - 1),
            status=max(0, self.attempts - 1),
            other=0,
            backoff_factor=self.backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset(methods),
            # Give the caller the last answer (e.g. a 503) instead of a MaxRetryError.
            raise_on_status=False,
            respect_retry_after_header=True,
        )


_lock = threading.Lock()
_sessions: dict[tuple[int, RetryPolicy], requests.Session] = {}


def session(policy: RetryPolicy = RetryPolicy()) -> requests.Session:
    """This process's session for ``policy`` (created on first use)."""
    key = (os.getpid(), policy)
    with _lock:
        found = _sessions.get(key)
        if found is None:
            found = requests.Session()
            found.headers["User-Agent"] = USER_AGENT
            adapter = HTTPAdapter(max_retries=policy.retry(), pool_maxsize=16)
            found.mount("http://", adapter)
            found.mount("https://", adapter)
            _sessions[key] = found
            log.debug("new HTTP session for %s in process %d", policy, key[0])
        return found


def describe(err: BaseException) -> str:
    """A one-line reason for a failed call, for logs and error messages."""
    if isinstance(err, requests.ConnectionError) and err.args:
        reason = err.args[0]
        inner = getattr(reason, "reason", None)
        return str(inner or reason)
    return str(err) or type(err).__name__
