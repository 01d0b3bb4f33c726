# SPDX-License-Identifier: GPL-3.0-or-later
"""Anonymous, read-only Launchpad API calls (docs/formats.rst, Launchpad calls).

Plain HTTP GETs returning JSON: no launchpadlib, no WADL, no credentials.
Named-operation string arguments are JSON-quoted (``"main"``) as
launchpadlib does. Collections are followed through every
``next_collection_link`` page. Any 5xx, timeout, connection error or
non-JSON answer raises :class:`LaunchpadUnavailable`, which request.cgi
turns into a 503 and private-results into a denial; a Launchpad failure is
never read as "allowed".

Positive team answers are cached in the ``team_cache`` file
(``{"<nick>": <unix time>}``), shared between processes under an flock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from webcontrol import atomicfile

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
#: Launchpad pages hold at most a few hundred entries; a loop guard only.
MAX_PAGES = 1000
#: Positive answers about PPAs and publications are reused this long: retry links
#: come in bursts for the same triggers, and "published" rarely flips back.
POSITIVE_TTL_S = 600.0
POSITIVE_CACHE_SIZE = 4096
USER_AGENT = "autopkgtest-web"


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

    def __init__(self, service_root: str, timeout: float = DEFAULT_TIMEOUT_S, positive_ttl_s: float = POSITIVE_TTL_S):
        self.base = service_root.rstrip("/") + "/1.0/"
        self.timeout = timeout
        self._opener = urllib.request.build_opener()
        self._positive = _PositiveCache(positive_ttl_s)

    @classmethod
    def from_config(cls, config) -> Launchpad:
        return cls(config.get("web", "launchpad_api"))

    # Low level -----------------------------------------------------------------------

    def url(self, path: str, **args: Any) -> str:
        """``<LP><path>?<args>`` with string arguments JSON-quoted (``name="x"``)."""
        if path.startswith(("http://", "https://")):
            url = path
        else:
            url = self.base + path.lstrip("/")
        if args:
            pairs = []
            for key, value in args.items():
                if isinstance(value, _Raw):
                    pairs.append((key, value.text))
                else:
                    pairs.append((key, json.dumps(value)))
            url += "?" + urllib.parse.urlencode(pairs)
        return url

    def get(self, url: str) -> Any:
        """GET a URL and decode its JSON. Raises LaunchpadRefused (4xx), LaunchpadUnavailable."""
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            detail = _safe_body(err)
            if 400 <= err.code < 500:
                raise LaunchpadRefused(err.code, f"Launchpad answered {err.code} for {url}: {detail}") from None
            log.warning("Launchpad answered %s for %s: %s", err.code, url, detail)
            raise LaunchpadUnavailable(f"Launchpad answered {err.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            log.warning("Launchpad unreachable for %s: %s", url, err)
            raise LaunchpadUnavailable(f"Launchpad unreachable: {err}") from None
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            log.warning("Launchpad answered non-JSON for %s: %r", url, body[:200])
            raise LaunchpadUnavailable("Launchpad answered non-JSON") from None

    def collection(self, url: str) -> Iterator[dict]:
        """Every entry of a collection, following ``next_collection_link``. Raises as get()."""
        seen = 0
        while url:
            page = self.get(url)
            if not isinstance(page, dict):
                raise LaunchpadUnavailable(f"Launchpad collection {url} is not a JSON object")
            for entry in page.get("entries") or []:
                if isinstance(entry, dict):
                    yield entry
            url = page.get("next_collection_link")
            seen += 1
            if seen > MAX_PAGES:
                raise LaunchpadUnavailable(f"Launchpad collection has more than {MAX_PAGES} pages")

    # Operations (docs/formats.rst, Launchpad calls) ----------------------------------------------------------

    def ppa_exists(self, owner: str, name: str) -> bool:
        """Raises LaunchpadUnavailable."""
        return self._positive.get_or(("ppa", owner, name), lambda: self._ppa_exists(owner, name))

    def _ppa_exists(self, owner: str, name: str) -> bool:
        url = self.url(
            "~" + urllib.parse.quote(owner),
            **{"ws.op": _Raw("getPPAByName"), "distribution": self.base + "ubuntu", "name": name},
        )
        try:
            answer = self.get(url)
        except LaunchpadRefused:
            return False
        return isinstance(answer, dict) and answer.get("name") == name

    def publication(self, source: str, release: str, version: str | None = None, ppa: str | None = None) -> Publication:
        """Whether ``source`` (at ``version``) is published in the primary archive or a PPA.

        Raises LaunchpadUnavailable.
        """
        key = ("published", source, release, version, ppa)
        return self._positive.get_or(key, lambda: self._publication(source, release, version, ppa))

    def _publication(self, source: str, release: str, version: str | None, ppa: str | None) -> Publication:
        if ppa:
            owner, name = ppa.split("/", 1)
            archive = f"~{urllib.parse.quote(owner)}/+archive/ubuntu/{urllib.parse.quote(name)}"
        else:
            archive = "ubuntu/+archive/primary"
        args: dict[str, Any] = {
            "ws.op": _Raw("getPublishedSources"),
            "source_name": source,
            "distro_series": f"{self.base}ubuntu/{release}",
            "status": _Raw("Published"),
            "exact_match": _Raw("true"),
        }
        if version is not None:
            args["version"] = version
        try:
            answer = self.get(self.url(archive, **args))
        except LaunchpadRefused:
            return Publication(False)
        if not isinstance(answer, dict):
            raise LaunchpadUnavailable("getPublishedSources did not answer a JSON object")
        if not answer.get("total_size"):
            return Publication(False)
        entries = answer.get("entries") or []
        component = entries[0].get("component_name") if entries and isinstance(entries[0], dict) else None
        return Publication(True, component)

    def can_upload(self, nick: str, release: str, package: str, component: str) -> bool:
        """checkUpload on the primary archive: 2xx allowed, 4xx not. Raises LaunchpadUnavailable."""
        url = self.url(
            "ubuntu/+archive/primary",
            **{
                "ws.op": _Raw("checkUpload"),
                "distroseries": f"{self.base}ubuntu/{release}",
                "person": f"{self.base}~{nick}",
                "component": _Raw(component),
                "pocket": _Raw("Proposed"),
                "sourcepackagename": package,
            },
        )
        try:
            self.get(url)
        except LaunchpadRefused:
            return False
        return True

    def super_teams(self, nick: str) -> list[str]:
        """Names of every team ``nick`` belongs to (all pages). Raises LaunchpadUnavailable."""
        try:
            return [
                e["name"] for e in self.collection(self.url(f"~{urllib.parse.quote(nick)}/super_teams")) if "name" in e
            ]
        except LaunchpadRefused:
            return []

    def participants(self, team: str) -> list[str]:
        """Names of every participant of a team (all pages). Raises LaunchpadUnavailable."""
        try:
            return [
                e["name"] for e in self.collection(self.url(f"~{urllib.parse.quote(team)}/participants")) if "name" in e
            ]
        except LaunchpadRefused:
            return []


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


class _Raw:
    """A named-operation argument sent as is, not JSON-quoted (ws.op, enums, booleans)."""

    def __init__(self, text: str):
        self.text = text


def _safe_body(err: urllib.error.HTTPError) -> str:
    """The start of an error answer's body; the error, which holds the connection, is closed."""
    try:
        return err.read(300).decode("utf-8", errors="replace")
    except OSError:
        return ""
    finally:
        err.close()


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
