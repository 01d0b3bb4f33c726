# SPDX-License-Identifier: GPL-3.0-or-later
"""Anonymous, read-only Launchpad API calls through launchpadlib (docs/formats.rst, Launchpad calls).

One launchpadlib client per process and service root (``[web]
launchpad_api``), logged in anonymously, is shared by every thread: parsing
Launchpad's WADL description costs about 0.3 s, so it is done once, when
request.cgi or private-results start (:meth:`Launchpad.warm` on a worker
thread) or else on the first call, and the description is kept on disk
under ``<[web] runtime_dir>/launchpadlib`` for the next process. httplib2, under
launchpadlib, is not thread-safe, so each thread gets its own HTTP
connection (:class:`_PerThreadHttp`). Nothing else is cached on disk.

Collections are read through every ``next_collection_link`` page. A 4xx
answer raises :class:`LaunchpadRefused`; anything else that goes wrong (5xx,
timeout, connection error, an answer that is not JSON, a description that
does not parse) raises :class:`LaunchpadUnavailable`, which request.cgi
turns into a 503 and private-results into a denial; a Launchpad failure is
never read as "allowed". launchpadlib's own retries of 502/503 (sleeps of
up to half a minute) are cut short: the time a request may wait for
Launchpad is bounded by its caller (launchpad_limits).

Positive team answers are cached in the ``team_cache`` file
(``{"<nick>": <unix time>}``), shared between processes under an flock.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launchpadlib.launchpad import Launchpad as _LaunchpadLib
from lazr.restfulclient.errors import HTTPError
from lazr.restfulclient.resource import Collection, Entry

from webcontrol import atomicfile

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
#: Launchpad pages hold at most a few hundred entries; a loop guard only.
MAX_ENTRIES = 100_000
#: Positive answers about PPAs and publications are reused this long: retry links
#: come in bursts for the same triggers, and "published" rarely flips back.
POSITIVE_TTL_S = 600.0
POSITIVE_CACHE_SIZE = 4096
CONSUMER = "autopkgtest-web"
API_VERSION = "1.0"


class LaunchpadUnavailable(Exception):
    """Launchpad answered 5xx, timed out, or returned something that is not JSON."""


class LaunchpadRefused(Exception):
    """Launchpad answered 4xx (not found, not allowed); carries the status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Publication:
    published: bool
    component: str | None = None

    def __bool__(self) -> bool:
        return self.published


class Launchpad:
    """The calls request.cgi and private-results make, against one service root."""

    def __init__(
        self,
        service_root: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        positive_ttl_s: float = POSITIVE_TTL_S,
        cache_dir: str | os.PathLike | None = None,
    ):
        self.service_root = service_root.rstrip("/") + "/"
        self.base = self.service_root + API_VERSION + "/"
        #: Seconds for each socket operation; a new value takes effect on the next call.
        self.timeout = timeout
        #: launchpadlib's folder (the WADL description); None: a temporary one for the process.
        self.cache_dir = str(cache_dir) if cache_dir else None
        self._positive = _PositiveCache(positive_ttl_s)

    @classmethod
    def from_config(cls, config) -> Launchpad:
        return cls(
            config.get("web", "launchpad_api"), cache_dir=Path(config.get("web", "runtime_dir")) / "launchpadlib"
        )

    def warm(self) -> bool:
        """Build the shared client now (fetch and parse the WADL), so no request waits for it."""
        try:
            _session(self.service_root, self.cache_dir, self.timeout)
        except LaunchpadUnavailable as err:
            log.warning("Launchpad client not built yet: %s", err)
            return False
        return True

    # Low level -----------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[_Session], Any]) -> Any:
        """``action(session)``, its failures mapped: LaunchpadRefused (4xx), else LaunchpadUnavailable."""
        session = _session(self.service_root, self.cache_dir, self.timeout)
        try:
            return action(session)
        except (LaunchpadRefused, LaunchpadUnavailable):
            raise
        except (HTTPError, _Busy) as err:
            status = err.status if isinstance(err, _Busy) else err.response.status
            detail = _detail(err)
            if 400 <= status < 500:
                raise LaunchpadRefused(status, f"Launchpad answered {status} for {what}: {detail}") from None
            log.warning("Launchpad answered %s for %s: %s", status, what, detail)
            raise LaunchpadUnavailable(f"Launchpad answered {status}") from None
        except Exception as err:  # noqa: BLE001 - any other failure of the library or the network is "unavailable"
            log.warning("Launchpad failed for %s: %s: %s", what, type(err).__name__, err)
            raise LaunchpadUnavailable(f"Launchpad failed: {type(err).__name__}") from None

    def _names(self, collection: Any) -> list[str]:
        """The ``name`` of every entry of a collection, all pages."""
        if not isinstance(collection, Collection):
            raise LaunchpadUnavailable("Launchpad answered something that is not a collection")
        names = []
        for entry in collection:
            names.append(entry.name)
            if len(names) > MAX_ENTRIES:
                raise LaunchpadUnavailable(f"Launchpad collection has more than {MAX_ENTRIES} entries")
        return names

    # Operations (docs/formats.rst, Launchpad calls) ----------------------------------------------------------

    def ppa_exists(self, owner: str, name: str) -> bool:
        """Raises LaunchpadUnavailable."""
        return self._positive.get_or(("ppa", owner, name), lambda: self._ppa_exists(owner, name))

    def _ppa_exists(self, owner: str, name: str) -> bool:
        def ask(session: _Session) -> bool:
            person = session.lp.people(_quote(owner))
            answer = person.getPPAByName(distribution=self.base + "ubuntu", name=name)
            return _entry(answer).name == name

        try:
            return self._call(f"~{owner} getPPAByName", ask)
        except LaunchpadRefused:
            return False

    def publication(self, source: str, release: str, version: str | None = None, ppa: str | None = None) -> Publication:
        """Whether ``source`` (at ``version``) is published in the primary archive or a PPA.

        Raises LaunchpadUnavailable.
        """
        key = ("published", source, release, version, ppa)
        return self._positive.get_or(key, lambda: self._publication(source, release, version, ppa))

    def _publication(self, source: str, release: str, version: str | None, ppa: str | None) -> Publication:
        args: dict[str, Any] = {
            "source_name": source,
            "distro_series": f"{self.base}ubuntu/{release}",
            "status": "Published",
            "exact_match": True,
        }
        if version is not None:
            args["version"] = version

        def ask(session: _Session) -> Publication:
            if ppa:
                owner, name = ppa.split("/", 1)
                archive = _entry(session.lp.load(f"{self.base}~{_quote(owner)}/+archive/ubuntu/{_quote(name)}"))
            else:
                archive = session.primary_archive(self.base)
            sources = archive.getPublishedSources(**args)
            if not isinstance(sources, Collection):
                raise LaunchpadUnavailable("getPublishedSources did not answer a collection")
            first = next(iter(sources), None)
            return Publication(True, first.component_name) if first is not None else Publication(False)

        try:
            return self._call(f"{ppa or 'primary'} getPublishedSources {source}", ask)
        except LaunchpadRefused:
            return Publication(False)

    def can_upload(self, nick: str, release: str, package: str, component: str) -> bool:
        """checkUpload on the primary archive: 2xx allowed, 4xx not. Raises LaunchpadUnavailable."""

        def ask(session: _Session) -> bool:
            answer = session.primary_archive(self.base).checkUpload(
                distroseries=f"{self.base}ubuntu/{release}",
                person=f"{self.base}~{nick}",
                component=component,
                pocket="Proposed",
                sourcepackagename=package,
            )
            if isinstance(answer, (bytes, str)):  # launchpadlib hands back a body it could not decode as is
                raise LaunchpadUnavailable("checkUpload answered something that is not JSON")
            return True

        try:
            return self._call(f"checkUpload {nick} {package}", ask)
        except LaunchpadRefused:
            return False

    def super_teams(self, nick: str) -> list[str]:
        """Names of every team ``nick`` belongs to (all pages). Raises LaunchpadUnavailable."""
        try:
            return self._call(f"~{nick}/super_teams", lambda s: self._names(s.lp.people(_quote(nick)).super_teams))
        except LaunchpadRefused:
            return []

    def participants(self, team: str) -> list[str]:
        """Names of every participant of a team (all pages). Raises LaunchpadUnavailable."""
        try:
            return self._call(f"~{team}/participants", lambda s: self._names(s.lp.people(_quote(team)).participants))
        except LaunchpadRefused:
            return []


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _entry(answer: Any) -> Entry:
    if not isinstance(answer, Entry):
        raise LaunchpadUnavailable("Launchpad answered something that is not a JSON entry")
    return answer


def _detail(err: HTTPError | _Busy) -> str:
    content = err.content if isinstance(err.content, bytes) else str(err.content).encode()
    return content[:300].decode("utf-8", errors="replace")


# The shared client -------------------------------------------------------------------------


class _PerThreadHttp:
    """launchpadlib's HTTP connection, one httplib2 client per thread behind it.

    launchpadlib keeps one ``httplib2.Http`` per client and calls its
    ``request``; httplib2 reuses one socket per host without a lock, so two
    threads would interleave on it. Every other attribute is the calling
    thread's client's. Only the client that fetches the service root while
    the shared client is built gets the disk cache (the WADL description);
    later answers are not written to disk. A 502 or 503 raises :class:`_Busy`.
    """

    def __init__(self, make: Callable[[Any], Any], cache: Any):
        self._make = make
        self._cache = cache
        self._local = threading.local()

    def _http(self):
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._make(self._cache)
        return http

    def request(self, *args, **kwargs):
        response, content = self._http().request(*args, **kwargs)
        if response.status in (502, 503):
            # Ends the call here: launchpadlib would sleep and retry for about 30 s, holding a
            # worker thread, where the caller (launchpad_limits) bounds what a request may wait.
            raise _Busy(response.status, content)
        return response, content

    def stop_caching(self) -> None:
        self._cache = None
        self._http().cache = None

    def __getattr__(self, name: str):
        return getattr(self._http(), name)


class _Busy(Exception):
    def __init__(self, status: int, content: bytes):
        super().__init__(f"Launchpad answered {status}")
        self.status = status
        self.content = content


class _Client(_LaunchpadLib):
    """launchpadlib's anonymous client with a connection per thread."""

    per_thread_http: _PerThreadHttp

    def httpFactory(self, credentials, cache, timeout, proxy_info):  # noqa: N802 - launchpadlib's hook
        make = super().httpFactory
        self.per_thread_http = _PerThreadHttp(lambda c: make(credentials, c, timeout, proxy_info), cache)
        return self.per_thread_http


class _Session:
    """The launchpadlib client shared by a process for one service root, and the primary archive entry."""

    def __init__(self, lp: _Client):
        self.lp = lp
        self._primary: Entry | None = None

    def primary_archive(self, base: str) -> Entry:
        if self._primary is None:  # two threads may both load it: the same entry, harmless
            self._primary = _entry(self.lp.load(base + "ubuntu/+archive/primary"))
        return self._primary


#: By service root and timeout. The disk cache is only read while a client is built, so the
#: first caller's folder serves (one config, so one folder, per process outside tests).
_sessions: dict[tuple[str, float], _Session] = {}
_build_locks: dict[tuple[str, float], threading.Lock] = {}
_sessions_lock = threading.Lock()


def _session(service_root: str, cache_dir: str | None, timeout: float) -> _Session:
    """The process's client for this service root, built on first use. Raises LaunchpadUnavailable."""
    key = (service_root, timeout)
    session = _sessions.get(key)
    if session is not None:
        return session
    with _sessions_lock:
        build_lock = _build_locks.setdefault(key, threading.Lock())
    with build_lock:  # one build at a time per service root; a failed one is tried again next call
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = _Session(_build(service_root, cache_dir, timeout))
        return session


def _cache_folder(cache_dir: str | None) -> str:
    """``cache_dir`` if it can be written, else a folder of this process's own, removed at exit.

    The cache only spares the next process a download of the WADL: a folder
    that cannot be used must not stop Launchpad calls.
    """
    if cache_dir:
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            if os.access(cache_dir, os.W_OK | os.X_OK):
                return cache_dir
            log.warning("Launchpad cache folder %s is not writable; using a temporary one", cache_dir)
        except OSError as err:
            log.warning("cannot create the Launchpad cache folder %s: %s; using a temporary one", cache_dir, err)
    folder = tempfile.mkdtemp(prefix="launchpadlib-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _build(service_root: str, cache_dir: str | None, timeout: float) -> _Client:
    started = time.monotonic()
    try:
        lp = _Client.login_anonymously(
            CONSUMER, service_root, launchpadlib_dir=_cache_folder(cache_dir), timeout=timeout, version=API_VERSION
        )
    except (HTTPError, _Busy) as err:
        status = err.status if isinstance(err, _Busy) else err.response.status
        log.warning("Launchpad answered %s for its service root %s", status, service_root)
        raise LaunchpadUnavailable(f"Launchpad answered {status}") from None
    except Exception as err:  # noqa: BLE001 - network, cache folder, or a description that does not parse
        log.warning("cannot start a Launchpad client for %s: %s: %s", service_root, type(err).__name__, err)
        raise LaunchpadUnavailable(f"Launchpad failed: {type(err).__name__}") from None
    lp.per_thread_http.stop_caching()
    log.info("Launchpad client for %s ready in %.2f s", service_root, time.monotonic() - started)
    return lp


class _PositiveCache:
    """Truthy answers for a while, bounded in size; falsy answers are always asked again."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def get_or(self, key: tuple, compute):
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit and now - hit[0] < self.ttl_s:
                return hit[1]
        value = compute()
        if value and self.ttl_s > 0:
            with self._lock:
                if len(self._entries) >= POSITIVE_CACHE_SIZE:
                    self._entries.clear()
                self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class TeamCache:
    """``{"<nick>": <unix time>}`` of positive team answers, shared under an flock."""

    def __init__(self, path: str | os.PathLike | None, lifetime_s: int):
        self.path = str(path) if path else None
        self.lifetime_s = lifetime_s

    def fresh(self, nick: str, now: float | None = None) -> bool:
        if not self.path:
            return False
        now = time.time() if now is None else now
        with self._locked(fcntl.LOCK_SH):
            data = atomicfile.read_json(self.path, {})
        stamp = data.get(nick) if isinstance(data, dict) else None
        return isinstance(stamp, (int, float)) and 0 <= now - stamp < self.lifetime_s

    def remember(self, nick: str, now: float | None = None) -> None:
        if not self.path:
            return
        now = time.time() if now is None else now
        try:
            with self._locked(fcntl.LOCK_EX):
                data = atomicfile.read_json(self.path, {})
                if not isinstance(data, dict):
                    data = {}
                data = {k: v for k, v in data.items() if isinstance(v, (int, float)) and now - v < self.lifetime_s}
                data[nick] = int(now)
                atomicfile.write_json_atomic(self.path, data, mode=0o600)
        except OSError as err:
            # The cache only saves Launchpad calls; failing to write it is not an error for the user.
            log.warning("cannot update team cache %s: %s", self.path, err)

    def _locked(self, mode: int):
        return _FileLock(self.path + ".lock", mode)


class _FileLock:
    def __init__(self, path: str, mode: int):
        self.path = path
        self.mode = mode
        self.handle = None

    def __enter__(self):
        try:
            self.handle = open(self.path, "a")
            fcntl.flock(self.handle, self.mode)
        except OSError as err:
            log.warning("cannot lock %s: %s", self.path, err)
            if self.handle:
                self.handle.close()
            self.handle = None
        return self

    def __exit__(self, *exc):
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


class Membership:
    """Is a requester in one of the ``allowed_requestors`` teams? Cached positive answers."""

    def __init__(self, launchpad: Launchpad, allowed_teams: Iterable[str], cache: TeamCache):
        self.launchpad = launchpad
        self.allowed = set(allowed_teams)
        self.cache = cache

    def is_member(self, nick: str, login_teams: Iterable[str] = ()) -> bool:
        """Raises LaunchpadUnavailable when the answer is not cached and Launchpad fails."""
        if not self.allowed:
            return False
        if self.allowed & set(login_teams):
            return True
        if self.cache.fresh(nick):
            return True
        member = bool(self.allowed & set(self.launchpad.super_teams(nick)))
        if member:
            self.cache.remember(nick)
        return member
