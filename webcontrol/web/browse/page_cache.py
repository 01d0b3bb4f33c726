# SPDX-License-Identifier: GPL-3.0-or-later
"""The home page, ``/run/<uuid>``, ``/statistics`` and the legacy recent.json for anonymous visitors, kept as the bytes
sent (docs/architecture.rst).

What these pages show is already kept per published DB file, or is made
from it alone; what a request still cost was Flask itself (request
context, session, hooks) and the layout around that content, three
quarters of its time under Apache. The legacy recent.json, which scripts
poll, is the newest 100 results of the published DB.
:class:`AnonymousPages`, a WSGI layer in front of the Flask app, keeps the
status, headers and body Flask sent and sends them again for the same
request while nothing the page is made of has changed.

Only a GET or HEAD with no cookie, no Authorization header and no query
string, of ``/``, ``/run/<uuid>``, ``/statistics`` or ``/api/experimental/recent.json``, is looked up here; every other
request goes through Flask as before. An entry is kept per request
(path, method, scheme and X-Forwarded-Proto, Host, server name and port,
script name: all the layout's links and its login form are made of) with
the state of what the page was made from, looked at again on every hit:

- the public DB file (inode, mtime, size) and, for the HTML pages, the
  alert banner's file;
- for the home page, queued.json, running.json and their indexes, and the
  files' ages in whole seconds, as the page shows them;
- for ``/statistics``, stats.json;
- any file the page said was missing while it was made (a result.tar not in
  the local result store, see :func:`depends_on_missing`): kept while it
  still is missing.

A page is kept only when it came with status 200, set no cookie, is at
most :data:`MAX_BODY` bytes, that state was the same before and after it
was made, and nothing called :func:`not_kept` while it was made (an answer
of a remote store, which may change). Not-found uuids and errors are
never kept. The last :data:`PAGES` requests asked for are kept per process.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import flask

from webcontrol import livestate, results
from webcontrol.config import Config
from webcontrol.filecache import identity
from webcontrol.liveindex import index_path
from webcontrol.web.browse import context
from webcontrol.web.browse.live_cache import RecentValues

#: Where the Flask path finds this request's :class:`_Notes` (in the WSGI environ).
ENVIRON_KEY = "autopkgtest.page_cache"
#: Pages kept per process: the home page once per host and scheme, and the uuids polled lately.
PAGES = 256
#: A bigger page goes through Flask each time (home and run pages are a few kB).
MAX_BODY = 64 * 1024
#: Longer Host or X-Forwarded-Proto headers, or script name, are not looked up (a key stays small).
MAX_HEADER = 255
_RUN_PREFIX = "/run/"
_LEGACY_RECENT = "/api/experimental/recent.json"


class _Notes:
    """What the Flask path tells this layer about the page it made."""

    __slots__ = ("absent", "endpoint", "keep")

    def __init__(self) -> None:
        self.keep = True
        self.absent: list[str] = []
        self.endpoint: str | None = None


def _notes() -> _Notes | None:
    return flask.request.environ.get(ENVIRON_KEY) if flask.has_request_context() else None


def not_kept() -> None:
    """The page of this request depends on something that cannot be looked at again cheaply: do not keep it."""
    notes = _notes()
    if notes is not None:
        notes.keep = False


def depends_on_missing(path: str | os.PathLike) -> None:
    """The page of this request says the file at ``path`` does not exist: keep it only while that holds."""
    notes = _notes()
    if notes is not None:
        notes.absent.append(os.fspath(path))


class _Page(NamedTuple):
    """A kept answer, with the state of the files it was made from."""

    state: tuple
    absent: tuple[str, ...]
    endpoint: str
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _request_key(environ) -> tuple[str, tuple] | None:
    """(the kind of page, what its bytes depend on in the request), or None when it goes through Flask."""
    method = environ.get("REQUEST_METHOD")
    if method != "GET" and method != "HEAD":
        return None
    if environ.get("HTTP_COOKIE") or environ.get("HTTP_AUTHORIZATION") or environ.get("QUERY_STRING"):
        return None
    path = environ.get("PATH_INFO", "")
    kind = _page_kind(path)
    if kind is None:
        return None
    host = environ.get("HTTP_HOST", "")
    proto = environ.get("HTTP_X_FORWARDED_PROTO", "")
    script = environ.get("SCRIPT_NAME", "")
    if len(host) > MAX_HEADER or len(proto) > MAX_HEADER or len(script) > MAX_HEADER:
        return None
    server = (environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
    return kind, (path, method, environ.get("wsgi.url_scheme"), proto, host, server, script)


def _page_kind(path: str) -> str | None:
    """The kind of a kept page (home, statistics, run or recent.json), None for any other path."""
    if path == "/":
        return "home"
    if path == "/statistics":
        return "statistics"
    if path == _LEGACY_RECENT:
        return "recent.json"
    if path.startswith(_RUN_PREFIX) and results.UUID_RE.match(path[len(_RUN_PREFIX) :]):
        return "run"
    return None


def _state(config: Config, kind: str) -> tuple | None:
    """The versions of the files the page is made from; None without a public DB (Flask answers 503)."""
    database = identity(config.get("web", "database_public"))
    if database is None:
        return None
    if kind == "recent.json":
        return (database,)
    alert = identity(config.get("web", "alert"))
    if kind == "run":
        return database, alert
    if kind == "statistics":
        return database, alert, identity(context.stats_path(config))
    queued, running = config.get("web", "amqp_queue_cache"), config.get("web", "running_cache")
    live = tuple(identity(path) for each in (queued, running) for path in (each, each and index_path(each)))
    return database, alert, live, livestate.file_ages(queued, running)


def _still_missing(paths: tuple[str, ...]) -> bool:
    return all(not os.path.lexists(path) for path in paths)


def _no_write(_data: bytes) -> None:
    raise RuntimeError("pages kept by page_cache are returned, never written")


class AnonymousPages:
    """WSGI layer: answers anonymous requests for kept pages, and keeps those Flask makes (see the module)."""

    def __init__(self, app, flask_app: flask.Flask) -> None:
        self.app = app
        self.flask_app = flask_app
        self._pages = RecentValues(PAGES)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        found = _request_key(environ)
        if found is None:
            return self.app(environ, start_response)
        kind, key = found
        state = _state(self.flask_app.config["AUTOPKGTEST"], kind)
        if state is None:
            return self.app(environ, start_response)
        page = self._pages.find(key)
        if page is not None and page.state == state and _still_missing(page.absent):
            start_response(page.status, list(page.headers))
            metrics = self.flask_app.extensions.get("insight_metrics")
            if metrics is not None:
                metrics.page_latency.labels(endpoint=page.endpoint).observe(time.perf_counter() - started)
            return [page.body]
        return self._make(environ, start_response, kind, key, state)

    def _make(self, environ, start_response, kind: str, key: tuple, state: tuple):
        """The page from Flask; kept when it may be (see the module)."""
        notes = _Notes()
        environ[ENVIRON_KEY] = notes
        answer: list = []
        passing = False

        def capture(status, headers, exc_info=None):
            if passing:
                return start_response(status, headers, exc_info)
            answer[:] = [status, headers, exc_info]
            return _no_write

        body = self.app(environ, capture)
        if not answer or not self._keepable(notes, *answer):
            passing = True
            if answer:
                start_response(*answer)
            return body
        status, headers, _exc_info = answer
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        start_response(status, headers)
        # A file renamed into place while the page was made: it may show either version, so it is not kept.
        if _state(self.flask_app.config["AUTOPKGTEST"], kind) == state:
            self._pages.put(key, _Page(state, tuple(notes.absent), notes.endpoint, status, tuple(headers), data))
        return [data]

    @staticmethod
    def _keepable(notes: _Notes, status: str, headers, exc_info) -> bool:
        if exc_info is not None or not notes.keep or notes.endpoint is None or not status.startswith("200 "):
            return False
        length = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "set-cookie":
                return False
            if lowered == "content-length":
                length = value
        return length is not None and length.isdigit() and int(length) <= MAX_BODY


def _note_endpoint(response: flask.Response) -> flask.Response:
    notes = _notes()
    if notes is not None and flask.request.url_rule is not None:
        notes.endpoint = flask.request.url_rule.endpoint
    return response


def install(app: flask.Flask) -> None:
    """Put :class:`AnonymousPages` in front of the app's WSGI stack (inside any layer added later)."""
    app.after_request(_note_endpoint)
    app.wsgi_app = AnonymousPages(app.wsgi_app, app)
