# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain GETs on the Swift storage URL, for the hot read paths of :class:`~webcontrol.store.swift.SwiftStore`.

download-all-results fetches one small ``result.tar`` per result and lists
millions of names. Through swiftclient (a requests session per connection,
its retry wrapper, header munging) a GET costs the client about four times
the CPU of a plain ``http.client`` request on a kept-alive connection, so
these reads go straight to the storage URL: one connection per thread, kept
open between requests, with the token of the store's
:class:`~webcontrol.store.swiftpool.ConnectionPool` (swiftclient still logs
in, and still does every write and every streamed read).

The error handling is swiftclient's: a refused token (401) logs in again
once, through the pool, so all threads share the new token; 5xx answers,
408/429/498 and broken connections are retried with the same back-off; any
other answer is handed back to the caller (404 is for it to name).

Unlike swiftclient (requests), these reads do not go through an HTTP proxy
named in the environment (``http_proxy``): the unit must reach the storage
URL directly, as it does in the production cloud.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from webcontrol.store import StoreError

log = logging.getLogger(__name__)

#: Answers worth another try after the back-off (server trouble, rate limiting).
RETRY_STATUSES = frozenset({408, 429, 498}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


class StorageReader:
    """GETs of object bodies and listings on the storage URL, one kept-alive connection per thread."""

    def __init__(
        self,
        credentials: Callable[[str | None], tuple[str, str]],
        user: str,
        auth_url: str,
        retries: int,
        starting_backoff: float,
        max_backoff: float,
        timeout: float,
    ):
        # (refused token or None) -> (storage URL, token); raises StoreError, or OSError to be retried.
        self._credentials = credentials
        self._user = user  # for error messages
        self._auth_url = auth_url
        self._retries = retries
        self._starting_backoff = starting_backoff
        self._max_backoff = max_backoff
        self._timeout = timeout
        # Each thread's connection sits in a _Held in thread-local storage: when the thread ends,
        # or the reader is dropped without close() (a web app's store lives as long as its
        # process), the _Held goes and closes its socket, as urllib3's pools do.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held_by_threads: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._generation = 0  # bumped by close(): threads then drop the connection they hold

    def get(self, what: str, path: str, query: Mapping[str, str] | None = None) -> Answer:
        """GET ``<storage URL>/<path>[?query]`` (``path`` unquoted). Raises StoreError.

        Returns the final answer: 2xx, or another status swiftclient would
        not retry (404, 403, ...), for the caller to turn into its error.
        """
        suffix = "/" + urllib.parse.quote(path, safe="/")
        if query:
            suffix += "?" + urllib.parse.urlencode(query)
        backoff = self._starting_backoff
        refused: str | None = None
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            url = token = None
            reused = False
            try:
                url, token = self._credentials(refused)
                reused = self._held(url)
                answer = self._request(url, token, suffix)
            except (OSError, http.client.HTTPException) as err:
                self._drop()
                if reused:
                    # Swift closes idle kept-alive connections: try again at once on a new one.
                    attempt -= 1
                    continue
                if attempt > self._retries:
                    where = url or self._auth_url
                    raise StoreError(f"Swift {what} failed: cannot reach {where}: {_reason(err)}") from None
                log.debug("Swift %s: %s, retrying in %.1f s", what, _reason(err), backoff)
            else:
                if answer.status == 401:
                    if renewed:
                        raise StoreError(f"Swift authentication as {self._user} failed at {self._auth_url}: HTTP 401")
                    # Log in again (once for all threads) and retry at once, as swiftclient does.
                    refused, renewed = token, True
                    continue
                if answer.status not in RETRY_STATUSES:
                    return answer
                if answer.status in (408, 499):
                    self._drop()  # the server gave up mid-request: the framing may be off
                if attempt > self._retries:
                    raise StoreError(f"Swift {what} failed at {self._auth_url}: HTTP {answer.status} {answer.reason}")
                log.debug("Swift %s: HTTP %d, retrying in %.1f s", what, answer.status, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _request(self, url: str, token: str, suffix: str) -> Answer:
        conn = self._connection(url)
        base = urllib.parse.urlsplit(url).path.rstrip("/")
        conn.request("GET", base + suffix, headers={"X-Auth-Token": token})
        response = conn.getresponse()
        body = response.read()
        if response.will_close:
            self._drop()
        return Answer(response.status, response.reason, response.headers, body)

    def _held(self, url: str) -> bool:
        """Whether this thread has an open connection for ``url`` from an earlier request."""
        held = getattr(self._local, "held", None)
        return held is not None and held.url == url and held.generation == self._generation

    def _connection(self, url: str) -> http.client.HTTPConnection:
        if self._held(url):
            return self._local.held.conn
        self._drop()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._timeout)
        held = _Held(conn, url, self._generation)
        weakref.finalize(held, conn.close)
        self._local.held = held
        with self._lock:
            self._held_by_threads.add(held)
        return conn

    def _drop(self) -> None:
        """Close this thread's connection (broken, or for another storage URL)."""
        held = getattr(self._local, "held", None)
        if held is None:
            return
        self._local.held = None
        held.conn.close()

    def close(self) -> None:
        """Close every thread's connection; a thread that reads again opens a new one."""
        with self._lock:
            everyone = list(self._held_by_threads)
            self._generation += 1
        for held in everyone:
            held.conn.close()


class _Held:
    """One thread's connection, for one storage URL, made before the reader's ``generation``-th close."""

    __slots__ = ("__weakref__", "conn", "generation", "url")

    def __init__(self, conn: http.client.HTTPConnection, url: str, generation: int):
        self.conn = conn
        self.url = url
        self.generation = generation


def _reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    return str(err)[:200] or type(err).__name__
