# SPDX-License-Identifier: GPL-3.0-or-later
"""An HTTP relay on loopback in front of a real server: it records every request and can hold some.

Tests point a client at :attr:`HttpRelay.url` instead of the server (for
Swift, the auth URL: tempauth builds the storage URL from the ``Host``
header, which the relay passes on, so storage requests come through the
relay too). :attr:`requests` lists ``(method, path)`` in arrival order;
:meth:`hold` makes requests whose path contains a text wait until
:meth:`release`, which is how a test stalls one object while others flow;
:meth:`fail` answers the next few such requests with an error status
itself (a Swift proxy in trouble, a token the proxy no longer accepts).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
#: A held request is let through after this long at the latest, so a failing test cannot hang.
HOLD_MAX = 30.0


class HttpRelay:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.requests: list[tuple[str, str]] = []
        self.held = threading.Event()  # set when a request matching hold() arrived
        self._hold: str | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._failures: list[list] = []  # [text, status, times left]
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                relay._arrived(self.command, self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status = relay._failure(self.path)
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*relay.upstream, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length_header = answer.getheader("Content-Length")
                if self.command == "HEAD":
                    if length_header is not None:
                        self.send_header("Content-Length", length_header)
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _relay

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> HttpRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def hold(self, text: str) -> None:
        """Make requests whose path contains ``text`` wait for :meth:`release`."""
        self._release.clear()
        self.held.clear()
        self._hold = text

    def release(self) -> None:
        self._hold = None
        self._release.set()

    def fail(self, text: str, status: int, times: int) -> None:
        """Answer the next ``times`` requests whose path contains ``text`` with ``status``, unforwarded."""
        with self._lock:
            self._failures.append([text, status, times])

    def _failure(self, path: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure[0] in path and failure[2] > 0:
                    failure[2] -= 1
                    return failure[1]
        return None

    def count(self, method: str, path_start: str) -> int:
        """Requests of ``method`` whose path (unquoted) starts with ``path_start``."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and urllib.parse.unquote(p).startswith(path_start))

    def _arrived(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
        hold = self._hold
        if hold is not None and hold in path:
            self.held.set()
            self._release.wait(HOLD_MAX)
