# SPDX-License-Identifier: GPL-3.0-or-later
"""The one reader of the live-state files ``running.json`` and ``queued.json``.

browse.cgi and request.cgi never parse these files themselves: they call
the loaders here (a missing or broken file is empty, docs/formats.rst, Live-state files), walk the
typed views (:class:`RunningJob`, :class:`QueuedRequest`), and ask the
duplicate checks of docs/formats.rst, Duplicates (:func:`is_running`, :func:`is_queued`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from webcontrol import messages, results
from webcontrol.filecache import FileCache

#: Package name under which every private run is stored (docs/formats.rst, running.json).
PRIVATE_PACKAGE = "private-test"
PRIVATE_LOGTAIL = "Running private test"
#: Queue items that stand for a hidden or unreadable request (docs/formats.rst, queued.json).
PRIVATE_JOB = "private job"
MALFORMED_REQUEST = "malformed request"
#: Contexts whose queued requests count as duplicates (never ``huge``: users may jump the bulk queue).
DUPLICATE_CONTEXTS = ("ubuntu", "ppa", "upstream")


#: A request or run whose details must never be shown (docs/formats.rst, Live-state files).
is_hidden = results.is_private_request


# running.json -------------------------------------------------------------------------


@dataclass
class RunningJob:
    """One leaf of running.json: a run in progress on one release/arch."""

    package: str
    run_key: str
    release: str
    arch: str
    params: dict[str, Any]
    duration: int
    logtail: str
    uuid: str | None
    private: bool


def _read_object(path: str | os.PathLike | None) -> dict:
    """A JSON object file; ``{}`` when missing, unreadable, invalid or not an object.

    These files reach several megabytes (2,000 running jobs, 50,000 queued
    requests) and web pages re-read them after every rewrite, so orjson
    parses them; anything it refuses gets a second chance with the
    standard parser.
    """
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return {}
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(data)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def load_running(path: str | os.PathLike | None) -> dict:
    """running.json as a dict; ``{}`` when missing, unreadable or not an object."""
    return _read_object(path)


def _leaf(value: Any) -> tuple[dict, int, str] | None:
    """``(params, seconds, logtail)`` of a leaf, or None for a shape we do not know."""
    if not isinstance(value, list) or len(value) < 3:
        return None
    params, duration, logtail = value[0], value[1], value[2]
    if not isinstance(params, dict):
        params = {}
    try:
        duration = int(duration)
    except (TypeError, ValueError):
        duration = 0
    return params, duration, logtail if isinstance(logtail, str) else ""


def running_jobs(raw: Mapping) -> list[RunningJob]:
    """Every leaf of running.json, in file order. Odd shapes are skipped, never raised."""
    jobs = []
    for package, by_key in raw.items():
        if not isinstance(by_key, dict):
            continue
        for key, by_release in by_key.items():
            if not isinstance(by_release, dict):
                continue
            for release, by_arch in by_release.items():
                if not isinstance(by_arch, dict):
                    continue
                for arch, value in by_arch.items():
                    leaf = _leaf(value)
                    if leaf is None:
                        continue
                    params, duration, logtail = leaf
                    uuid = params.get("uuid")
                    jobs.append(
                        RunningJob(
                            package=package,
                            run_key=key,
                            release=release,
                            arch=arch,
                            params=params,
                            duration=duration,
                            logtail=logtail,
                            uuid=uuid if isinstance(uuid, str) and uuid else None,
                            private=package == PRIVATE_PACKAGE or is_hidden(params),
                        )
                    )
    return jobs


def running_count(raw: Mapping) -> int:
    """Number of running jobs: leaves, not run keys (docs/formats.rst, running.json)."""
    return len(running_jobs(raw))


# queued.json ----------------------------------------------------------------------------


@dataclass
class QueuedRequest:
    """One request string of queued.json with its place in the queue."""

    context: str
    release: str
    arch: str
    position: int  # 1-based
    package: str  # "" for private and malformed items
    params: dict[str, Any]  # {} for private and malformed items
    private: bool
    text: str  # the item as written in queued.json
    malformed: bool = field(default=False)


def load_queued(path: str | os.PathLike | None) -> dict:
    """queued.json as a dict; ``{}`` when missing, unreadable or not an object."""
    return _read_object(path)


def _queues(raw: Mapping) -> Iterator[tuple[str, str, str, dict]]:
    """``(context, release, arch, entry)`` for every queue entry, in file order."""
    queues = raw.get("queues")
    if not isinstance(queues, dict):
        return
    for context, by_release in queues.items():
        if not isinstance(by_release, dict):
            continue
        for release, by_arch in by_release.items():
            if not isinstance(by_arch, dict):
                continue
            for arch, entry in by_arch.items():
                if isinstance(entry, dict):
                    yield context, release, arch, entry


def _requests(entry: Mapping) -> list:
    requests = entry.get("requests")
    return requests if isinstance(requests, list) else []


def parse_request_text(text: str) -> tuple[str, dict[str, Any]] | None:
    """``(package, params)`` of a queue item split on its first whitespace, or None.

    A bare package has params ``{}``; ``private job``, ``malformed request``
    and anything whose JSON part is not an object give None.
    """
    if not isinstance(text, str) or text in (PRIVATE_JOB, MALFORMED_REQUEST):
        return None
    try:
        text.encode("utf-8")  # a lone surrogate: no page can carry it
    except UnicodeEncodeError:
        return None
    parts = text.strip().split(None, 1)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0], {}
    try:
        # What a consumer of the queue would accept (no lone-surrogate escapes, no nesting
        # deeper than a page's stack allows, an object).
        return parts[0], messages.json_object(parts[1])
    except messages.MalformedMessage:
        return None


def queued_requests(raw: Mapping) -> Iterator[QueuedRequest]:
    """Every queued item, queue by queue in file order, with 1-based positions."""
    for context, release, arch, entry in _queues(raw):
        for position, text in enumerate(_requests(entry), 1):
            yield queued_item(context, release, arch, position, text)


def queued_item(context: str, release: str, arch: str, position: int, text: Any) -> QueuedRequest:
    text = text if isinstance(text, str) else MALFORMED_REQUEST
    parsed = parse_request_text(text)
    if parsed is None:
        private = text == PRIVATE_JOB
        return QueuedRequest(context, release, arch, position, "", {}, private, text, malformed=not private)
    package, params = parsed
    private = is_hidden(params)
    return QueuedRequest(context, release, arch, position, package, {} if private else params, private, text)


def queue_requests(raw: Mapping) -> Iterator[tuple[str, str, str, list]]:
    """``(context, release, arch, items)`` of every queue in file order, the items as written."""
    for context, release, arch, entry in _queues(raw):
        yield context, release, arch, _requests(entry)


def queues_json(raw: Mapping) -> dict[str, dict[str, dict[str, list[str]]]]:
    """``/queues.json``: ``{ctx: {rel: {arch: [request strings]}}}`` (docs/formats.rst, /queues.json and /queue_size.json)."""
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for context, release, arch, entry in _queues(raw):
        out.setdefault(context, {}).setdefault(release, {})[arch] = list(_requests(entry))
    return out


def queue_sizes(raw: Mapping) -> dict[str, dict[str, dict[str, int]]]:
    """``/queue_size.json``: ``{ctx: {rel: {arch: N}}}``; ``size`` counts private items too."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for context, release, arch, entry in _queues(raw):
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            size = len(_requests(entry))
        out.setdefault(context, {}).setdefault(release, {})[arch] = size
    return out


def queued_count(raw: Mapping) -> int:
    return sum(n for rels in queue_sizes(raw).values() for arches in rels.values() for n in arches.values())


# Files ----------------------------------------------------------------------------------


def file_age(path: str | os.PathLike | None) -> float | None:
    """Seconds since the file was last written, or None when it is missing."""
    if not path:
        return None
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None


def file_ages(queued_path: str | None, running_path: str | None) -> dict[str, int | None]:
    """The ages pages show: ``{"running", "queued"}`` in whole seconds, None for a missing file."""
    ages = {"running": file_age(running_path), "queued": file_age(queued_path)}
    return {key: (round(value) if value is not None else None) for key, value in ages.items()}


#: The parsed files, shared by every thread of a web process (a missing file is empty).
running_cache: FileCache[dict] = FileCache(load_running, missing={})
queued_cache: FileCache[dict] = FileCache(load_queued, missing={})


# Duplicate detection (docs/formats.rst, Duplicates) ------------------------------------------------------


def _all_proposed(params: Mapping) -> bool:
    value = params.get("all-proposed")
    return bool(value) and value not in ("0", 0)


def _list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _queued_signature(params: Mapping) -> tuple:
    """The fields a queued duplicate must share: sorted triggers, all-proposed, ppas."""
    return (
        tuple(sorted(str(t) for t in _list(params.get("triggers")))),
        _all_proposed(params),
        tuple(str(p) for p in _list(params.get("ppas"))),
    )


def _running_signature(params: Mapping) -> tuple:
    """Queued fields plus the GitHub ones: build-git, the env set, testname."""
    return _queued_signature(params) + (
        params.get("build-git") or None,
        frozenset(str(e) for e in _list(params.get("env"))),
        params.get("testname") or None,
    )


def is_running(raw_running: Mapping, package: str, release: str, arch: str, params: Mapping) -> bool:
    """True when running.json holds the same test (docs/formats.rst, Duplicates). Private entries never match."""
    if package == PRIVATE_PACKAGE:
        return False
    by_key = raw_running.get(package)
    if not isinstance(by_key, dict):
        return False
    wanted = _running_signature(params)
    for by_release in by_key.values():
        if not isinstance(by_release, dict):
            continue
        by_arch = by_release.get(release)
        if not isinstance(by_arch, dict):
            continue
        leaf = _leaf(by_arch.get(arch))
        if leaf is None or is_hidden(leaf[0]):
            continue
        if _running_signature(leaf[0]) == wanted:
            return True
    return False


def is_queued(raw_queued: Mapping, package: str, release: str, arch: str, params: Mapping) -> bool:
    """True when queued.json holds the same request in ubuntu/ppa/upstream (docs/formats.rst, Duplicates).

    ``huge`` never counts, and ``private job`` items cannot match.
    """
    queues = raw_queued.get("queues")
    if not isinstance(queues, dict):
        return False
    wanted = _queued_signature(params)
    for context in DUPLICATE_CONTEXTS:
        entry = ((queues.get(context) or {}).get(release) or {}).get(arch)
        if not isinstance(entry, dict):
            continue
        for text in _requests(entry):
            # Cheap prefix test first: a queue may hold thousands of items.
            if not isinstance(text, str) or not text.startswith(package):
                continue
            if len(text) > len(package) and not text[len(package)].isspace():
                continue
            parsed = parse_request_text(text)
            if parsed is None or parsed[0] != package or is_hidden(parsed[1]):
                continue
            if _queued_signature(parsed[1]) == wanted:
                return True
    return False


def queue_entries(raw: Mapping) -> Iterator[tuple[str, str, str, int]]:
    """``(context, release, arch, size)`` of every queue in file order, without parsing items."""
    for context, release, arch, entry in _queues(raw):
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            size = len(_requests(entry))
        yield context, release, arch, size


def queue_items(raw: Mapping, context: str, release: str, arch: str, offset: int = 0, limit: int | None = None):
    """One page of one queue as QueuedRequest items; only that page is parsed.

    Large queues (tens of thousands of items) are shown a page at a time, so
    pages never pay for parsing items they do not show.
    """
    entry = (((raw.get("queues") or {}).get(context) or {}).get(release) or {}).get(arch)
    if not isinstance(entry, dict):
        return []
    requests = _requests(entry)
    end = len(requests) if limit is None else offset + limit
    items = []
    for position, text in enumerate(requests[offset:end], offset + 1):
        items.append(queued_item(context, release, arch, position, text))
    return items


# Stuck-job hints (/admin, docs/formats.rst, Routes) ------------------------------------------------------

#: A run is "abnormally long" beyond this many times its test's average duration.
LONG_FACTOR = 8
#: A run is "likely stuck" when its log's last elapsed-seconds prefix is this far behind its duration.
STUCK_SECONDS = 30 * 60
_ELAPSED_PREFIX = re.compile(r"^\s*(\d+)s ")


def log_tail_seconds(logtail: str) -> int | None:
    """The elapsed-seconds prefix (``  123s autopkgtest …``) of the last log line that has one."""
    for line in reversed(logtail.splitlines()):
        match = _ELAPSED_PREFIX.match(line)
        if match:
            return int(match.group(1))
    return None


def is_likely_stuck(job: RunningJob) -> bool:
    """The log tail stopped advancing: its last line is more than 30 min behind the duration."""
    if job.private:
        return False
    seconds = log_tail_seconds(job.logtail)
    return seconds is not None and job.duration - seconds > STUCK_SECONDS


def is_abnormally_long(job: RunningJob, average_duration: float | None) -> bool:
    """Running for more than 8 times the test's average duration."""
    return bool(average_duration) and job.duration > LONG_FACTOR * average_duration
