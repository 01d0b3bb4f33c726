# SPDX-License-Identifier: GPL-3.0-or-later
"""Live state pages: /running, /admin, one queue's listing, and the live-update endpoints.

Data comes from :mod:`webcontrol.livestate` (files parsed once per change,
see ``context.running_raw``). Pages stay fast with thousands of running jobs
and tens of thousands of queued requests: queue listings on /running show
the head of each queue (``queue_limit``) and link to the paginated queue
page, and only the shown items are parsed.

Live updates are polled, not pushed (a long-lived SSE response would pin a
mod_wsgi thread per open tab): ``/api/v1/running/status`` is small, carries
an ETag of the two files, and answers 304 while nothing changed;
``/api/v1/running/job/<id>`` returns one job with its log tail for
following it live.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time

import flask
from markupsafe import Markup

from webcontrol import livestate, results
from webcontrol.web.appbase import NotFound, ServiceUnavailable, site_url
from webcontrol.web.browse import context
from webcontrol.web.browse.api import API_PREFIX, describe, page, query_param

log = logging.getLogger(__name__)

bp = flask.Blueprint("live", __name__, template_folder="templates")

QUEUE_HEAD_DEFAULT = 50
QUEUE_PAGE_DEFAULT = 1000
QUEUE_PAGE_MAX = 10000
_CHUNK = 500  # SQLite parameters per IN (...) query


# Views -------------------------------------------------------------------------------------------


def job_id(job: livestate.RunningJob) -> str:
    """A stable, URL-safe id of one running leaf (the run key itself can be kilobytes)."""
    raw = "\0".join((job.package, job.run_key, job.release, job.arch))
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def job_view(job: livestate.RunningJob, average: float | None = None) -> dict:
    """A running job for templates and JSON; private runs show nothing of their params."""
    params = {} if job.private else job.params
    hints = []
    if livestate.is_abnormally_long(job, average):
        hints.append("abnormally long")
    if livestate.is_likely_stuck(job):
        hints.append("likely stuck")
    base = site_url()
    return {
        "id": job_id(job),
        "package": job.package,
        "release": job.release,
        "arch": job.arch,
        "params": params,
        "duration": job.duration,
        "human_duration": results.human_duration(job.duration),
        "logtail": livestate.PRIVATE_LOGTAIL if job.private else job.logtail,
        "log_seconds": None if job.private else livestate.log_tail_seconds(job.logtail),
        # Lets the browser tell that the log moved on without downloading it.
        "tail_id": hashlib.sha1(job.logtail.encode("utf-8", "surrogatepass")).hexdigest()[:12],
        "uuid": job.uuid,
        "run_url": f"{base}/run/{job.uuid}" if job.uuid else None,
        "private": job.private,
        "average_duration": round(average) if average else None,
        "hints": hints,
    }


def queued_view(item: livestate.QueuedRequest) -> dict:
    params = item.params
    triggers = params.get("triggers")
    return {
        "position": item.position,
        "package": item.package,
        "private": item.private,
        "malformed": item.malformed,
        # Never the raw text of a hidden item: it is what carries credentials.
        "text": livestate.PRIVATE_JOB if item.private else item.text,
        "triggers": [str(t) for t in triggers] if isinstance(triggers, list) else [],
        "requester": params.get("requester") if isinstance(params.get("requester"), str) else "",
        "submit_time": params.get("submit-time") if isinstance(params.get("submit-time"), str) else "",
        "uuid": params.get("uuid") if isinstance(params.get("uuid"), str) else None,
        "params": params,
    }


# Average durations (abnormally-long hint) -------------------------------------------------------------

_averages_lock = threading.Lock()
_averages: dict[str, object] = {"stamp": None, "values": {}}


def _db_stamp() -> tuple | None:
    try:
        stat = os.stat(context.public_db_path())
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def average_durations(jobs: list[livestate.RunningJob]) -> dict[tuple[str, str, str], float | None]:
    """Average duration per (package, release, arch) of the jobs' tests, cached per public DB file."""
    wanted = {(j.package, j.release, j.arch) for j in jobs if not j.private}
    stamp = _db_stamp()
    if stamp is None:
        return {}
    with _averages_lock:
        if _averages["stamp"] != stamp:
            _averages["stamp"], _averages["values"] = stamp, {}
        known: dict = _averages["values"]  # type: ignore[assignment]
        missing = sorted({key[0] for key in wanted if key not in known})
    if missing:
        found = _query_averages(missing)
        if found is None:
            return {}
        with _averages_lock:
            if _averages["stamp"] == stamp:
                for key in wanted:
                    if key[0] in missing:
                        known[key] = found.get(key)
    return {key: known.get(key) for key in wanted}


def _query_averages(packages: list[str]) -> dict | None:
    try:
        conn = context.get_db()
    except ServiceUnavailable:
        return None
    found = {}
    try:
        for start in range(0, len(packages), _CHUNK):
            chunk = packages[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT test.package, test.release, test.arch, AVG(result.duration) FROM test"
                " JOIN result ON result.test_id = test.id"
                f" WHERE test.package IN ({marks}) AND result.duration > 0 GROUP BY test.id",
                chunk,
            )
            for package, release, arch, average in rows:
                found[(package, release, arch)] = average
    except sqlite3.Error as err:
        log.warning("no average durations for the stuck-job hints: %s", err)
        return None
    return found


# Derived values, cached per version of the files ---------------------------------------------------


class _Derived:
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

    def __init__(self, min_interval=lambda: 0.0) -> None:
        self._lock = threading.Lock()
        self._scope: object = object()
        self._key: object = object()
        self._value: object = None
        self._computed = float("-inf")
        self._min_interval = min_interval

    def get(self, scope: object, key: object, compute) -> tuple[object, object]:
        """``(key, value)``: the key is the one the returned value was computed for."""
        with self._lock:
            if self._scope == scope and (self._key == key or time.monotonic() - self._computed < self._min_interval()):
                return self._key, self._value
        value = compute()
        with self._lock:
            self._scope, self._key, self._value, self._computed = scope, key, value, time.monotonic()
        return key, value


class _JobFragments:
    """Rendered job blocks, re-rendered only for jobs whose duration, log or hints changed.

    Between two collector writes only the jobs that reported meanwhile
    change (a tenth of them with 10 s status intervals), so most blocks are
    reused as they are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple, Markup]] = {}

    def render(self, views: list[dict]) -> Markup:
        template = flask.current_app.jinja_env.get_template("partials/running_job.html")
        with self._lock:
            entries = self._entries
        fresh: dict[str, tuple[tuple, Markup]] = {}
        parts = []
        previous = None
        for view in views:
            first = view["package"] != previous
            previous = view["package"]
            signature = (first, view["duration"], view["logtail"], tuple(view["hints"]), view["run_url"])
            cached = entries.get(view["id"])
            html = cached[1] if cached and cached[0] == signature else Markup(template.render(job=view, first=first))
            fresh[view["id"]] = (signature, html)
            parts.append(html)
        with self._lock:
            self._entries = fresh
        # The parts are already escaped HTML: join them as plain text and mark the result once.
        return Markup("".join(parts))


#: Seconds a rendered /running may lag behind a newer running.json (see _Derived).
REFRESH_MIN_S = 3.0
_views = _Derived(lambda: REFRESH_MIN_S)
_jobs_html = _Derived()
_queue_data = _Derived()
_queue_html = _Derived()
_fragments = _JobFragments()
#: Job views of the previous running.json version, reused for leaves that did not change.
_view_cache: dict[tuple, tuple[tuple, dict]] = {}


def _ages() -> dict:
    return context.file_ages()


def _running_views() -> tuple[object, list[dict]]:
    """``(key, views)`` of the current running.json, sorted by package, release, arch."""
    path = context.config().get("web", "running_cache")
    stamp, raw = livestate.running_cache.get_with_stamp(path)
    base = site_url()
    key = (path, base, stamp, _db_stamp())

    def compute() -> list[dict]:
        global _view_cache
        jobs = livestate.running_jobs(raw)
        averages = average_durations(jobs)
        previous, fresh, views = _view_cache, {}, []
        for job in jobs:
            average = averages.get((job.package, job.release, job.arch))
            leaf = (job.package, job.run_key, job.release, job.arch)
            signature = (job.duration, job.logtail, average, base)
            cached = previous.get(leaf)
            view = cached[1] if cached and cached[0] == signature else job_view(job, average)
            fresh[leaf] = (signature, view)
            views.append(view)
        _view_cache = fresh
        views.sort(key=lambda v: (v["package"], v["release"], v["arch"], -v["duration"]))
        return views

    return _views.get((path, base), key, compute)


def _running() -> tuple[None, list[dict]]:
    return None, _running_views()[1]


def _size_tables(queued: dict) -> list[dict]:
    """Per context: releases × arches table of queue sizes with anchors to the listings."""
    tables: dict[str, dict] = {}
    for ctx, release, arch, size in livestate.queue_entries(queued):
        table = tables.setdefault(ctx, {"context": ctx, "releases": [], "arches": [], "sizes": {}})
        if release not in table["releases"]:
            table["releases"].append(release)
        if arch not in table["arches"]:
            table["arches"].append(arch)
        table["sizes"].setdefault(release, {})[arch] = size
    for table in tables.values():
        table["arches"].sort()
        table["total"] = sum(n for arches in table["sizes"].values() for n in arches.values())
    return list(tables.values())


def _anchor(ctx: str, release: str, arch: str) -> str:
    return f"queue-{ctx}-{release}-{arch}"


def _queues(queue_limit: int) -> tuple[object, dict]:
    """``(key, data)``: size tables, counts and the head of every non-empty queue."""
    path = context.config().get("web", "amqp_queue_cache")
    stamp, queued = livestate.queued_cache.get_with_stamp(path)
    base = site_url()
    key = (path, stamp, queue_limit, base)

    def compute() -> dict:
        queues = []
        for ctx, release, arch, size in livestate.queue_entries(queued):
            if not size:
                continue
            items = livestate.queue_items(queued, ctx, release, arch, 0, queue_limit)
            queues.append(
                {
                    "context": ctx,
                    "release": release,
                    "arch": arch,
                    "size": size,
                    "anchor": _anchor(ctx, release, arch),
                    "requests": [queued_view(item) for item in items],
                    "url": f"{base}/running/queue/{ctx}/{release}/{arch}",
                }
            )
        return {
            "queued_count": livestate.queued_count(queued),
            "size_tables": _size_tables(queued),
            "queues": queues,
        }

    return _queue_data.get(key, key, compute)


# /running ------------------------------------------------------------------------------------------------


def _running_page_data() -> tuple[dict, object, object, list[dict]]:
    queue_limit = context.int_param("queue_limit", QUEUE_HEAD_DEFAULT, 0, QUEUE_PAGE_MAX)
    views_key, views = _running_views()
    queues_key, queues = _queues(queue_limit)
    data = {
        "updated": _ages(),
        "running_count": len(views),
        "queued_count": queues["queued_count"],
        "size_tables": queues["size_tables"],
        "packages": sorted({v["package"] for v in views}),
        "jobs": views,
        "queues": queues["queues"],
        "queue_limit": queue_limit,
        "thresholds": {"long_factor": livestate.LONG_FACTOR, "stuck_seconds": livestate.STUCK_SECONDS},
    }
    return data, views_key, queues_key, views


@bp.route("/running")
def running():
    """Running jobs, queue sizes and the head of every non-empty queue (CONTRACT §7.1)."""
    data, views_key, queues_key, views = _running_page_data()
    _key, jobs_html = _jobs_html.get(views_key, views_key, lambda: _fragments.render(views))
    _key, queues_html = _queue_html.get(
        queues_key,
        queues_key,
        lambda: Markup(flask.current_app.jinja_env.get_template("live/_queues.html").render(queues=data["queues"])),
    )
    return flask.render_template("live/running.html", jobs_html=jobs_html, queues_html=queues_html, **data)


@bp.route(API_PREFIX + "/running")
def running_json():
    return flask.jsonify(_running_page_data()[0])


describe(
    bp,
    API_PREFIX + "/running",
    "Running jobs, queue sizes and the head of every non-empty queue",
    parameters=[query_param("queue_limit", "items shown per queue, 0..10000 (default 50)", "integer")],
)


@page(bp, "/admin", "live/admin.html", "Running jobs that are abnormally long or likely stuck")
def admin():
    _jobs, views = _running()
    flagged = [v for v in views if v["hints"]]
    return {
        "page": "admin",
        "updated": _ages(),
        "running_count": len(views),
        "abnormally_long": [v for v in flagged if "abnormally long" in v["hints"]],
        "likely_stuck": [v for v in flagged if "likely stuck" in v["hints"]],
        "thresholds": {"long_factor": livestate.LONG_FACTOR, "stuck_seconds": livestate.STUCK_SECONDS},
    }


@page(
    bp,
    "/running/queue/<context_name>/<release>/<arch>",
    "live/queue.html",
    "One queue's requests in order, a page at a time",
    parameters=[
        query_param("offset", "skip this many requests", "integer"),
        query_param("limit", "requests per page, 1..10000 (default 1000)", "integer"),
    ],
)
def queue_listing(context_name: str, release: str, arch: str):
    offset = context.int_param("offset", 0, 0)
    limit = context.int_param("limit", QUEUE_PAGE_DEFAULT, 1, QUEUE_PAGE_MAX)
    queued = context.queued_raw()
    sizes = livestate.queue_sizes(queued)
    size = sizes.get(context_name, {}).get(release, {}).get(arch)
    if size is None:
        raise NotFound(f"no queue {context_name} {release} {arch}")
    items = livestate.queue_items(queued, context_name, release, arch, offset, limit)
    base = f"{site_url()}/running/queue/{context_name}/{release}/{arch}"
    return {
        "page": "queue",
        "updated": _ages(),
        "context": context_name,
        "release": release,
        "arch": arch,
        "size": size,
        "offset": offset,
        "limit": limit,
        "requests": [queued_view(item) for item in items],
        "previous_url": f"{base}?offset={max(0, offset - limit)}&limit={limit}" if offset else None,
        "next_url": f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < size else None,
    }


# Live updates ------------------------------------------------------------------------------------------


@bp.route(API_PREFIX + "/running/status")
def running_status():
    """Small summary polled by running.js: counts, ages, and per job its duration and hints."""
    views_key, views = _running_views()
    queued_stamp = livestate.queued_cache.get_with_stamp(context.config().get("web", "amqp_queue_cache"))[0]
    # The versions the answer is made of: 304 until one of them changes.
    etag = hashlib.sha1(repr((views_key, queued_stamp)).encode()).hexdigest()[:20]
    if flask.request.if_none_match.contains(etag):
        response = flask.Response(status=304)
        response.set_etag(etag)
        return response
    queued = context.queued_raw()
    body = {
        "updated": _ages(),
        "running_count": len(views),
        "queued_count": livestate.queued_count(queued),
        "queue_sizes": livestate.queue_sizes(queued),
        "jobs": {
            v["id"]: {
                "package": v["package"],
                "release": v["release"],
                "arch": v["arch"],
                "duration": v["duration"],
                "human_duration": v["human_duration"],
                "tail": v["tail_id"],
                "hints": v["hints"],
            }
            for v in views
        },
    }
    response = flask.jsonify(body)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route(API_PREFIX + "/running/job/<job>")
def running_job(job: str):
    """One running job with its log tail (following a log live)."""
    for candidate in livestate.running_jobs(context.running_raw()):
        if job_id(candidate) == job:
            average = average_durations([candidate]).get((candidate.package, candidate.release, candidate.arch))
            response = flask.jsonify(job_view(candidate, average))
            response.headers["Cache-Control"] = "no-cache"
            return response
    raise NotFound(f"job {job} is not running")


describe(bp, API_PREFIX + "/running/status", "Live summary of running jobs (ETag; 304 while unchanged)")
describe(bp, API_PREFIX + "/running/job/<job>", "One running job with its log tail, by the id /running shows")
