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
import re
import threading
import time
from collections import OrderedDict
from itertools import chain, zip_longest

import flask
from werkzeug.wsgi import ClosingIterator

from webcontrol.web.browse.api import Fragment
from webcontrol.web.browse.markup import escape

log = logging.getLogger(__name__)

#: A background rebuild runs this long (seconds) before it lets request threads run ...
GIVE_WAY_EVERY_S = 0.001
#: ... by sleeping in steps of this long while a request is in flight in the process, ...
GIVE_WAY_SLEEP_S = 0.0005
#: ... for at most this long each time, so that it ends even when requests never stop.
GIVE_WAY_MAX_S = 0.02

#: With 2,000 jobs a rebuild is tens of milliseconds of Python. Run in one go it holds the
#: interpreter lock in 5 ms turns (sys.getswitchinterval()), and a request waits a whole turn
#: each time it gives the lock up for I/O (a SQLite step, each piece of its page it writes):
#: a page of 6 ms of CPU took 100 ms while the collector rewrote running.json.
_in_flight = 0
_in_flight_lock = threading.Lock()


def _count_request(step: int) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight += step


class RequestsInFlight:
    """WSGI middleware: counts this process's requests from their start to their body's close().

    Background rebuilds (:func:`give_way`) wait while the count is not
    zero. A file handed to the server's ``wsgi.file_wrapper`` is sent
    without the interpreter: its request stops counting when it is returned.
    """

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        _count_request(1)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            _count_request(-1)
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            _count_request(-1)
            return body
        return ClosingIterator(body, lambda: _count_request(-1))


class _Rebuilding(threading.local):
    background = False
    since = 0.0


_rebuilding = _Rebuilding()


def give_way() -> None:
    """In a background rebuild that ran GIVE_WAY_EVERY_S since it last gave way: let requests run.

    It sleeps once (a thread waiting for the interpreter lock takes it),
    then on while requests are in flight, up to GIVE_WAY_MAX_S. Called
    between jobs in the loops of a rebuild; does nothing in a request
    thread (a request that builds a value is one others wait for).
    """
    state = _rebuilding
    if not state.background:
        return
    now = time.perf_counter()
    if now - state.since < GIVE_WAY_EVERY_S:
        return
    deadline = now + GIVE_WAY_MAX_S
    time.sleep(GIVE_WAY_SLEEP_S)
    while _in_flight and time.perf_counter() < deadline:
        time.sleep(GIVE_WAY_SLEEP_S)
    state.since = time.perf_counter()


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
            _rebuilding.background, _rebuilding.since = True, time.perf_counter()
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


#: The fields of a job block that change each time its job reports, in slot order.
_SLOTS = ("human_duration", "duration", "logtail")
#: Stands for a slot in a block's skeleton: what the template makes of it, unescaped.
_SLOT = "\x00slot{}\x00"
_SLOT_RE = re.compile("\x00slot(\\d)\x00")


class JobFragments:
    """Rendered job blocks, re-rendered only for jobs whose duration, log or hints changed.

    Between two collector writes only the jobs that reported meanwhile
    change (a tenth of them with 10 s status intervals), so most blocks are
    reused as they are. Only the joined HTML of the last version is kept (as
    UTF-8 bytes, see api.Fragment), with where each job's block lies in it:
    with thousands of jobs a second copy of every block would double what
    each web process holds.

    A job that reported has a new duration and log tail and little else: its
    block is its skeleton (the template rendered once with a marker in
    place of each of those fields, kept while the rest of the block stays
    the same) with the new values escaped into place, a fraction of the
    time of a render, which was most of a rebuild's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._joined = b""
        #: job id -> (signature, start, end) of its block in ``_joined``
        self._entries: dict[str, tuple[tuple, int, int]] = {}
        #: (job id, first, hints, run link) -> the block's text between its slots and each slot's
        #: field index, or None for a block that cannot be filled in (a marker in its parameters)
        self._skeletons: dict[tuple, tuple[list[str], list[int]] | None] = {}

    def render(self, views: list[dict]) -> Fragment:
        template = flask.current_app.jinja_env.get_template("partials/running_job.html")
        with self._lock:
            joined, entries, skeletons = self._joined, self._entries, self._skeletons
        fresh: dict[str, tuple[tuple, int, int]] = {}
        fresh_skeletons: dict[tuple, tuple[list[str], list[int]] | None] = {}
        parts = []
        offset = 0
        previous = None
        for view in views:
            give_way()
            first = view["package"] != previous
            previous = view["package"]
            signature = (first, view["duration"], view["logtail"], tuple(view["hints"]), view["run_url"])
            cached = entries.get(view["id"])
            if cached and cached[0] == signature:
                html = joined[cached[1] : cached[2]]
            else:
                shape = (view["id"], first, signature[3], view["run_url"])
                skeleton = skeletons[shape] if shape in skeletons else _skeleton(template, view, first)
                fresh_skeletons[shape] = skeleton
                if skeleton is None:
                    html = template.render(job=view, first=first).encode("utf-8")
                else:
                    texts, fields = skeleton
                    values = [escape(view[_SLOTS[field]]) for field in fields]
                    html = "".join(chain.from_iterable(zip_longest(texts, values, fillvalue=""))).encode("utf-8")
            fresh[view["id"]] = (signature, offset, offset + len(html))
            offset += len(html)
            parts.append(html)
        result = b"".join(parts)
        del parts
        # Kept: the skeletons of this version's changed jobs, and those of unchanged ones still in use.
        kept = {shape: skeleton for shape, skeleton in skeletons.items() if shape[0] in fresh}
        kept.update(fresh_skeletons)
        with self._lock:
            self._joined, self._entries, self._skeletons = result, fresh, kept
        return Fragment(result)


def _skeleton(template, view: dict, first: bool) -> tuple[list[str], list[int]] | None:
    """A job block split at its slots: ``(texts, fields)``, ``len(texts) == len(fields) + 1``.

    None when the markers do not each appear at most once (a parameter holding one).
    """
    marked = {**view, **{name: _SLOT.format(n) for n, name in enumerate(_SLOTS)}}
    pieces = _SLOT_RE.split(template.render(job=marked, first=first))
    fields = [int(field) for field in pieces[1::2]]
    if len(set(fields)) != len(fields):
        return None
    return pieces[0::2], fields


class ViewTexts:
    """A text made of each job view (``make(view)``, bytes), made again only for views that changed.

    running_views() keeps a job's view object while the job does not change,
    so between two versions of running.json most views are the same objects
    and their text is reused: a new version costs the jobs that reported,
    not all of them.
    """

    def __init__(self, make) -> None:
        self._make = make
        self._lock = threading.Lock()
        #: job id -> view, and job id -> its text, of the last version. Two dicts, not one of
        #: (view, text) pairs: a pair holding a dict is an object the garbage collector tracks, and
        #: thousands of them made anew for every version set off full collections (~100 ms each,
        #: every thread stopped) every few versions.
        self._views: dict[str, dict] = {}
        self._texts: dict[str, bytes] = {}

    def encode(self, views: list[dict]) -> dict[str, bytes]:
        """Job id -> its view's text, for every view."""
        with self._lock:
            known, texts = self._views, self._texts
        fresh_views: dict[str, dict] = {}
        fresh_texts: dict[str, bytes] = {}
        for number, view in enumerate(views):
            if number % 16 == 0:
                give_way()
            job = view["id"]
            fresh_views[job] = view
            fresh_texts[job] = texts[job] if known.get(job) is view else self._make(view)
        with self._lock:
            self._views, self._texts = fresh_views, fresh_texts
        return fresh_texts


class EncodedViews(ViewTexts):
    """The JSON text of each job view (or of what ``shape`` makes of it), re-encoded only for views that changed."""

    def __init__(self, shape=None) -> None:
        def make(view: dict) -> bytes:
            value = shape(view) if shape else view
            return flask.current_app.json.dumps(value, separators=(",", ":")).encode("utf-8")

        super().__init__(make)


_ABSENT = object()


class RecentValues:
    """The last few values of one kind, each keyed by the versions of the files it was made from.

    For pages with many possible keys (a queue page per queue, offset and
    limit): the values of keys not asked for lately go first.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple, compute, *, keep=None, supersedes=None):
        """The value kept for ``key``, else ``compute()``'s (an exception is raised and nothing kept).

        A computed value is kept unless ``keep(value)`` is false (an answer
        that may change, asked again next time). Keeping it first drops the
        values whose key ``supersedes(old_key)`` is true for: values made
        from an earlier version of the same file are never asked for again.
        """
        value = self.find(key, _ABSENT)
        if value is not _ABSENT:
            return value
        value = compute()
        if keep is None or keep(value):
            self.put(key, value, supersedes)
        return value

    def find(self, key: tuple, default=None):
        """The value kept for ``key`` (now the most recent), or ``default``."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        return default

    def put(self, key: tuple, value, supersedes=None) -> None:
        """Keep ``value`` for ``key`` in place of any earlier one (see get() for ``supersedes``)."""
        with self._lock:
            if supersedes is not None:
                for old in [old for old in self._values if supersedes(old)]:
                    del self._values[old]
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)


def app_values(name: str, size: int) -> RecentValues:
    """The app's own :class:`RecentValues` called ``name``, made on first use (values follow the app's config)."""
    extensions = flask.current_app.extensions
    return extensions.get(name) or extensions.setdefault(name, RecentValues(size))
