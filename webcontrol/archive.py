# SPDX-License-Identifier: GPL-3.0-or-later
"""The archive's ``Sources.gz`` indexes: conditional fetch and parsing.

Used by publish-db to keep ``current_version`` up to date. The archive may
be ``http(s)://`` (a mirror, with ``If-Modified-Since``) or ``file://`` (a
local mirror or the demo, where the file's mtime plays ``Last-Modified``).
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import os
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from debian.debian_support import Version

log = logging.getLogger(__name__)

COMPONENTS = ("main", "restricted", "universe", "multiverse")
FETCH_TIMEOUT_S = 60
#: A mirror that drops a connection or answers 5xx gets one more immediate try (publish-db runs
#: every minute, so the next run is the slower retry).
FETCH_ATTEMPTS, FETCH_BACKOFF_S = 2, 1.0


class FetchFailed(Exception):
    """The index could not be fetched (HTTP error, reset, timeout, bad gzip)."""


@dataclass
class Fetched:
    """A fetched index: ``body`` is None when it was not modified."""

    url: str
    last_modified: str | None
    body: bytes | None


def sources_url(archive_url: str, pocket: str, component: str) -> str:
    return f"{archive_url.rstrip('/')}/dists/{pocket}/{component}/source/Sources.gz"


def fetch(url: str, if_modified_since: str | None) -> Fetched:
    """Fetch ``url`` unless unchanged since the given HTTP date. Raises FetchFailed."""
    if url.startswith("file://"):
        return _fetch_file(url, if_modified_since)
    # Imported here: the web apps import this module (strip_epoch) and every recycled mod_wsgi
    # daemon would otherwise load requests and urllib3 before its first page.
    from webcontrol import httpclient

    headers = {"If-Modified-Since": if_modified_since} if if_modified_since else {}
    retries = httpclient.RetryPolicy(attempts=FETCH_ATTEMPTS, backoff=FETCH_BACKOFF_S)
    try:
        response = httpclient.session(retries).get(url, headers=headers, timeout=FETCH_TIMEOUT_S)
    except httpclient.Error as err:
        raise FetchFailed(f"{url}: {httpclient.describe(err)}") from None
    if response.status_code == 304:
        return Fetched(url, if_modified_since, None)
    if response.status_code != 200:
        raise FetchFailed(f"{url}: HTTP {response.status_code} {response.reason}")
    return Fetched(url, response.headers.get("Last-Modified"), _gunzip(url, response.content))


def _fetch_file(url: str, if_modified_since: str | None) -> Fetched:
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    try:
        mtime = os.stat(path).st_mtime
        stamp = email.utils.formatdate(mtime, usegmt=True)
        if if_modified_since and stamp == if_modified_since:
            return Fetched(url, stamp, None)
        with open(path, "rb") as handle:
            return Fetched(url, stamp, _gunzip(url, handle.read()))
    except OSError as err:
        raise FetchFailed(f"{url}: {err.strerror}") from None


def _gunzip(url: str, body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as err:
        raise FetchFailed(f"{url}: not a gzip file: {err}") from None


def source_versions(text: bytes) -> Iterator[tuple[str, str]]:
    """``(package, version)`` of each stanza of a Sources index."""
    package = version = None
    for raw in text.split(b"\n"):
        if not raw.strip():
            if package and version:
                yield package, version
            package = version = None
        elif raw.startswith(b"Package:"):
            package = raw[8:].strip().decode("utf-8", "replace")
        elif raw.startswith(b"Version:"):
            version = raw[8:].strip().decode("utf-8", "replace")
    if package and version:
        yield package, version


def highest_versions(text: bytes) -> dict[str, str]:
    """The highest version of each package in an index (Debian ordering)."""
    best: dict[str, str] = {}
    for package, version in source_versions(text):
        current = best.get(package)
        if current is None or Version(version) > Version(current):
            best[package] = version
    return best


def strip_epoch(version: str) -> str:
    return version.split(":", 1)[1] if ":" in version else version
