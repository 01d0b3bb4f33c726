# SPDX-License-Identifier: GPL-3.0-or-later
"""swiftclient connections for :class:`~webcontrol.store.swift.SwiftStore`: a pool that shares one token.

A swiftclient Connection is not thread-safe, and its retries sleep (up to
1+2+4+8+16 s), so each operation takes a connection of its own from the
pool and gives it back afterwards: threads never wait for each other's
requests. Every connection of a pool uses the same storage URL and token,
so a process logs in once, and again only when Swift refuses the token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from swiftclient.client import Connection

log = logging.getLogger(__name__)

#: Idle connections kept for reuse; more are made while more threads call at once.
IDLE_MAX = 8


class _SharedToken:
    """The storage URL and token that every connection of one store uses.

    The first connection that needs a token logs in; the others wait for
    that login instead of making their own. A connection whose token Swift
    refused (401) logs in again, unless another one already did.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One tuple, so a reader without the lock never pairs a new URL with an old token.
        self._current: tuple[str | None, str | None] = (None, None)

    def current(self) -> tuple[str | None, str | None]:
        """The storage URL and token as they are now (``None`` before the first login)."""
        return self._current

    def get(self, refused: str | None, login: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        # Only connections without a usable token wait here, and they need the login's answer anyway.
        with self._lock:
            url, token = self._current
            if token is None or token == refused:
                url, token = login()
                self._current = (url, token)
            return url, token


class _Connection(Connection):
    """A swiftclient Connection that takes its token from the store's :class:`_SharedToken`."""

    def __init__(self, shared: _SharedToken, **kwargs: Any):
        super().__init__(**kwargs)
        self._shared = shared
        self._last_token: str | None = None

    def get_auth(self) -> tuple[str, str]:
        # swiftclient calls this with no token, or after a 401 on the last one.
        self.url, self.token = self._shared.get(self._last_token, super().get_auth)
        self._last_token = self.token
        return self.url, self.token


class ConnectionPool:
    """Connections made with the same ``swiftclient.client.Connection`` arguments, sharing one token."""

    def __init__(self, **settings: Any):
        self._settings = settings
        self._token = _SharedToken()
        self._lock = threading.Lock()  # guards the idle list only, never a request
        self._idle: list[_Connection] = []

    def take(self) -> Connection:
        """An idle connection, or a new one; give it back with :meth:`give_back`."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Connection(self._token, **self._settings)

    def credentials(self, refused: str | None = None) -> tuple[str, str]:
        """The shared storage URL and token, logging in first if there is none or it is ``refused``.

        For requests made outside swiftclient (:mod:`webcontrol.store.swifthttp`).
        Raises what swiftclient's login raises.
        """
        url, token = self._token.current()
        if token is not None and token != refused:
            return url, token
        conn = self.take()
        try:
            return self._token.get(refused, lambda: Connection.get_auth(conn))
        finally:
            self.give_back(conn)

    def give_back(self, conn: Connection, reusable: bool = True) -> None:
        """Keep ``conn`` for the next caller, or close it (a broken stream, a full pool)."""
        if reusable:
            with self._lock:
                if len(self._idle) < IDLE_MAX:
                    self._idle.append(conn)
                    return
        _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception as err:  # noqa: BLE001 - closing must not mask the caller's outcome
        log.debug("closing a Swift connection: %s", err)
