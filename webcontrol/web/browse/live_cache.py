# SPDX-License-Identifier: GPL-3.0-or-later
"""Caches of what live pages derive from a version of running.json and queued.json.

A version (the files' mtime and size, and the public DB's for the average
durations) is turned into views, HTML and JSON text once per web process,
not once per request; a new version re-renders or re-encodes only the jobs
that changed. :mod:`~webcontrol.web.browse.live_data` holds the caches of
each route.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import flask
from markupsafe import Markup

from webcontrol.web.browse.api import Fragment

log = logging.getLogger(__name__)


class Derived:
    """One value derived from specific versions of the live files, recomputed when they change.

    The collector rewrites running.json up to twice a second and pages are
    requested more often than that, so each version is turned into views
    and HTML once, not once per request. With ``min_interval`` (seconds, a
    callable so tests can change it), a value derived from an older version
    of the same files is served for that long before it is recomputed: the
    page shows its age, updates itself in the browser, and the files'
    own freshness target is 30 s, so a few seconds buy a page that never
    renders 2,000 jobs on most requests.
    """

    def __init__(self, min_interval=lambda: 0.0, background: bool = False) -> None:
        self._lock = threading.Lock()
        self._scope: object = object()
        self._key: object = object()
        self._value: object = None
        self._computed = float("-inf")
        self._min_interval = min_interval
        self._background = background
        self._refreshing = False
        #: Held while a request computes the value: the others wait for it rather than each computing a copy.
        self._building = threading.Lock()

    def get(self, scope: object, key: object, compute) -> tuple[object, object]:
        """``(key, value)``: the key is the one the returned value was computed for.

        With ``background`` (and a non-zero ``min_interval``), a value of the
        same scope that is out of date is still returned while a thread
        computes the new one, so no request waits for a rebuild. A value
        computed in a request is computed once: concurrent requests (32 on
        a cold process under load) wait for it instead of each parsing the
        files and holding a copy, whose peak the process keeps.
        """
        found = self._cached(scope, key, compute)
        if found is not None:
            return found
        with self._building:
            found = self._cached(scope, key, compute)
            if found is not None:
                return found
            value = compute()
            with self._lock:
                self._scope, self._key, self._value, self._computed = scope, key, value, time.monotonic()
        return key, value

    def _cached(self, scope: object, key: object, compute) -> tuple[object, object] | None:
        with self._lock:
            if self._scope == scope:
                if self._key == key or time.monotonic() - self._computed < self._min_interval():
                    return self._key, self._value
                if self._background and self._min_interval() > 0:
                    if not self._refreshing:
                        self._refreshing = True
                        self._start_refresh(scope, key, compute)
                    return self._key, self._value
        return None

    def _start_refresh(self, scope: object, key: object, compute) -> None:
        run = flask.copy_current_request_context(compute) if flask.has_request_context() else compute

        def refresh() -> None:
            try:
                value = run()
            except Exception:  # the request that started it has gone: log, keep the old value
                log.exception("background refresh of a live page failed; the previous version stays")
                with self._lock:
                    self._refreshing = False
                return
            with self._lock:
                if self._scope == scope:  # not replaced meanwhile by a value of another scope
                    self._key, self._value, self._computed = key, value, time.monotonic()
                self._refreshing = False

        threading.Thread(target=refresh, name="live-refresh", daemon=True).start()


class JobFragments:
    """Rendered job blocks, re-rendered only for jobs whose duration, log or hints changed.

    Between two collector writes only the jobs that reported meanwhile
    change (a tenth of them with 10 s status intervals), so most blocks are
    reused as they are. Only the joined HTML of the last version is kept (as
    UTF-8 bytes, see api.Fragment), with where each job's block lies in it:
    with thousands of jobs a second copy of every block would double what
    each web process holds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._joined = b""
        #: job id -> (signature, start, end) of its block in ``_joined``
        self._entries: dict[str, tuple[tuple, int, int]] = {}

    def render(self, views: list[dict]) -> Fragment:
        template = flask.current_app.jinja_env.get_template("partials/running_job.html")
        with self._lock:
            joined, entries = self._joined, self._entries
        fresh: dict[str, tuple[tuple, int, int]] = {}
        parts = []
        offset = 0
        previous = None
        for view in views:
            first = view["package"] != previous
            previous = view["package"]
            signature = (first, view["duration"], view["logtail"], tuple(view["hints"]), view["run_url"])
            cached = entries.get(view["id"])
            if cached and cached[0] == signature:
                html = joined[cached[1] : cached[2]]
            else:
                html = template.render(job=view, first=first).encode("utf-8")
            fresh[view["id"]] = (signature, offset, offset + len(html))
            offset += len(html)
            parts.append(html)
        result = b"".join(parts)
        del parts
        with self._lock:
            self._joined, self._entries = result, fresh
        return Fragment(result)


class EncodedViews:
    """The JSON text of each job view (or of a part of it), re-encoded only for views that changed.

    running_views() keeps a job's view object while the job does not change,
    so between two versions of running.json most views are the same objects
    and their text is reused: a new version costs the jobs that reported,
    not all of them.
    """

    def __init__(self, shape=None) -> None:
        self._shape = shape
        self._lock = threading.Lock()
        #: job id -> (view, its text) of the last version
        self._previous: dict[str, tuple[dict, bytes]] = {}

    def encode(self, views: list[dict]) -> dict[str, bytes]:
        """Job id -> its view's text, for every view."""
        dumps = flask.current_app.json.dumps
        with self._lock:
            previous = self._previous
        fresh: dict[str, tuple[dict, bytes]] = {}
        for view in views:
            cached = previous.get(view["id"])
            if cached is not None and cached[0] is view:
                fresh[view["id"]] = cached
            else:
                value = self._shape(view) if self._shape else view
                fresh[view["id"]] = (view, dumps(value, separators=(",", ":")).encode("utf-8"))
        with self._lock:
            self._previous = fresh
        return {job: text for job, (_view, text) in fresh.items()}


class RecentValues:
    """The last few values of one kind, each keyed by the versions of the files it was made from.

    For pages with many possible keys (a queue page per queue, offset and
    limit): the values of keys not asked for lately go first.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple, compute):
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = compute()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value


class JobBlocks:
    """Running-job blocks of package and user pages, each rendered once per state of its job.

    A page lists up to 50 running jobs with kilobytes of log tail each; the
    same jobs appear on every request of the page (and on several pages)
    until the job reports again, so a block is rendered when what it shows
    changes: its id (package, release, arch and parameters), duration, log
    tail, hints and run link. The least recently shown blocks go first.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple, Markup] = OrderedDict()

    def render(self, job: dict) -> Markup:
        key = (job["id"], job["duration"], job["logtail"], tuple(job["hints"]), job["run_url"])
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
                return block
        template = flask.current_app.jinja_env.get_template("partials/running_job.html")
        block = Markup(template.render(job=job))
        with self._lock:
            self._blocks[key] = block
            while len(self._blocks) > self._size:
                self._blocks.popitem(last=False)
        return block
