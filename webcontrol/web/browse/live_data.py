# SPDX-License-Identifier: GPL-3.0-or-later
"""Data of the live pages: job and queue views, stuck-job hints, and their caches.

running.json is rewritten up to twice a second and holds thousands of jobs,
queued.json tens of thousands of requests, so what the pages show is
derived once per version of those files (and of the public DB, for the
average durations), not once per request; see
:mod:`~webcontrol.web.browse.live_cache`.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time

import flask
from markupsafe import Markup

from webcontrol import filecache, liveindex, livestate, results
from webcontrol.web.appbase import ServiceUnavailable, site_url
from webcontrol.web.browse import context
from webcontrol.web.browse.live_cache import (
    Derived,
    EncodedViews,
    JobFragments,
    RecentValues,
    ViewTexts,
    app_values,
    give_way,
)

log = logging.getLogger(__name__)

#: Seconds a rendered /running may lag behind a newer running.json (see Derived).
REFRESH_MIN_S = 3.0


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

#: A test's average is over its newest runs (a primary-key walk), not its whole history ...
AVERAGE_RUNS = 100
#: ... and is kept this long across republished DBs (a minute's new runs barely move it).
AVERAGE_MAX_AGE_S = 3600.0

_averages_lock = threading.Lock()
#: (DB path, package, release, arch) -> (monotonic time computed, average)
_averages: dict[tuple[str, str, str, str], tuple[float, float | None]] = {}


def average_durations(tests: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], float | None]:
    """Average duration of the newest AVERAGE_RUNS runs of each ``(package, release, arch)``.

    The cost follows the number of running tests, not the length of their
    histories; values are cached per process for AVERAGE_MAX_AGE_S, so a
    republished DB does not recompute them all.
    """
    where = context.public_db_path()
    wanted = {(where, *test) for test in tests}
    now = time.monotonic()
    with _averages_lock:
        known = {
            key: _averages[key][1] for key in wanted if key in _averages and now - _averages[key][0] < AVERAGE_MAX_AGE_S
        }
    missing = sorted(wanted - set(known))
    if missing:
        found = _query_averages(missing)
        if found is None:
            return {key[1:]: value for key, value in known.items()}
        with _averages_lock:
            for key in missing:
                _averages[key] = (now, found.get(key))
            for key in [k for k, (at, _v) in _averages.items() if now - at >= AVERAGE_MAX_AGE_S]:
                del _averages[key]
        known.update({key: found.get(key) for key in missing})
    return {key[1:]: value for key, value in known.items()}


def _query_averages(tests: list[tuple[str, str, str, str]]) -> dict | None:
    try:
        conn = context.get_db()
    except ServiceUnavailable:
        return None
    found = {}
    try:
        for key in tests:
            row = conn.execute(
                "SELECT AVG(duration) FROM (SELECT result.duration FROM result"
                " WHERE result.test_id = (SELECT id FROM test WHERE package = ? AND release = ? AND arch = ?)"
                " AND result.duration > 0 ORDER BY result.run_id DESC LIMIT ?)",
                (*key[1:], AVERAGE_RUNS),
            ).fetchone()
            found[key] = row[0] if row else None
    except sqlite3.Error as err:
        log.warning("no average durations for the stuck-job hints: %s", err)
        return None
    return found


# Caches of what the live routes derive, per version of the files --------------------------------

# New versions of the files are turned into views and HTML in the background, the previous
# version being served meanwhile (the page shows the files' age and updates itself).
views_cache = Derived(lambda: REFRESH_MIN_S, background=True)
jobs_html = Derived(lambda: REFRESH_MIN_S, background=True)
queue_data = Derived(lambda: REFRESH_MIN_S, background=True)
queue_html = Derived(lambda: REFRESH_MIN_S, background=True)
queue_summaries = Derived(lambda: REFRESH_MIN_S, background=True)
#: What each live route sends of a version, encoded or rendered once: a request adds only the files' ages.
running_json_jobs = Derived(lambda: REFRESH_MIN_S, background=True)
running_json_queues = Derived(lambda: REFRESH_MIN_S, background=True)
status_jobs = Derived(lambda: REFRESH_MIN_S, background=True)
status_queues = Derived(lambda: REFRESH_MIN_S, background=True)
admin_html = Derived(lambda: REFRESH_MIN_S, background=True)
admin_json = Derived(lambda: REFRESH_MIN_S, background=True)
#: The package index of /running, per set of running packages.
packages_html = RecentValues(size=2)
#: One queue's page (its rendered items, or their JSON text) per queue, offset, limit and file version.
queue_pages_html = RecentValues()
queue_pages_json = RecentValues()
#: Shared by /api/v1/running and /api/v1/admin (the same view text in both).
view_texts = EncodedViews()


def _status_shape(view: dict) -> dict:
    return {
        "package": view["package"],
        "release": view["release"],
        "arch": view["arch"],
        "duration": view["duration"],
        "human_duration": view["human_duration"],
        "tail": view["tail_id"],
        "hints": view["hints"],
    }


def _status_pair(view: dict) -> bytes:
    dumps = flask.current_app.json.dumps
    return (dumps(view["id"]) + ":" + dumps(_status_shape(view), separators=(",", ":"))).encode("utf-8")


#: A job's ``"id":{summary}`` member of the status endpoint's ``jobs`` object.
status_pairs = ViewTexts(_status_pair)


def _row(template: str):
    return lambda view: flask.current_app.jinja_env.get_template(template).render(job=view)


#: Rows of the two tables of /admin, rendered once per version of their job.
admin_long_rows = ViewTexts(_row("live/_admin_long_row.html"))
admin_stuck_rows = ViewTexts(_row("live/_admin_stuck_row.html"))
fragments = JobFragments()
#: Job views of the previous running.json version, reused for leaves that did not change, and
#: what each was made of (two dicts: see ViewTexts).
_view_cache: dict[tuple, dict] = {}
_view_signatures: dict[tuple, tuple] = {}


def ages() -> dict:
    return context.file_ages()


def running_views() -> tuple[object, list[dict]]:
    """``(key, views)`` of the current running.json, sorted by package, release, arch."""
    path = context.config().get("web", "running_cache")
    base = site_url()
    key = (path, base, filecache.stamp(path), filecache.stamp(context.public_db_path()))

    def compute() -> list[dict]:
        # Built in the background once the process has a version (see Derived), from the
        # collector's index: its rows are read one SQLite step at a time, letting request
        # threads run in between, where one parse of the multi-megabyte file holds the
        # interpreter for tens of milliseconds. Only the jobs that reported meanwhile are
        # derived again.
        rows = liveindex.running_rows(path)
        views = None if rows is None else _views(rows, lambda row: liveindex.job_from_row(row, path), base)
        if views is None:  # no current index (an older collector), or one with broken params
            jobs = livestate.running_jobs(livestate.running_cache.get(path))
            rows = [
                (j.package, j.run_key, j.release, j.arch, j, j.duration, j.logtail, j.uuid, j.private) for j in jobs
            ]
            views = _views(rows, lambda row: row[4], base)
        views.sort(key=lambda v: (v["package"], v["release"], v["arch"], -v["duration"]))
        return views

    return views_cache.get((path, base), key, compute)


def _views(rows: list[tuple], make_job, base: str) -> list[dict] | None:
    """The job views of ``rows`` in their order, reusing the previous version's for unchanged jobs.

    ``rows`` are in the order of :func:`webcontrol.liveindex.running_rows`;
    ``make_job(row)`` makes the RunningJob of a job that changed, or None,
    and then this returns None (the previous views are kept).
    """
    global _view_signatures, _view_cache
    averages = average_durations({(row[0], row[2], row[3]) for row in rows if not row[8]})
    signatures, known = _view_signatures, _view_cache
    fresh_signatures, fresh, views = {}, {}, []
    for number, row in enumerate(rows):
        if number % 16 == 0:
            give_way()
        leaf = row[:4]
        average = averages.get((row[0], row[2], row[3]))
        signature = (row[5], row[6], average, base)  # duration, log tail
        if signatures.get(leaf) == signature:
            view = known[leaf]
        else:
            job = make_job(row)
            if job is None:
                return None
            view = job_view(job, average)
        fresh_signatures[leaf] = signature
        fresh[leaf] = view
        views.append(view)
    _view_signatures, _view_cache = fresh_signatures, fresh
    return views


class ParsedQueues:
    """queued.json parsed, read like a :class:`webcontrol.liveindex.QueuedIndex` (the file has no current index)."""

    def __init__(self, raw: dict) -> None:
        self._raw = raw

    def entries(self) -> list[tuple[str, str, str, int]]:
        return list(livestate.queue_entries(self._raw))

    def requests(self, ctx: str, release: str, arch: str, offset: int = 0, limit: int | None = None) -> list:
        return livestate.queue_items(self._raw, ctx, release, arch, offset, limit)


def read_queued(read):
    """``read(queues)`` with queued.json's index, or with the parsed file when the index cannot answer.

    ``read`` returns None when a read of the index did; a web process parses
    queued.json (and keeps it) only then: with a current index from
    cache-amqp it never does.
    """
    path = context.config().get("web", "amqp_queue_cache")
    with liveindex.open_queued(path) as index:
        found = read(index) if index is not None else None
    if found is not None:
        return found
    return read(ParsedQueues(livestate.queued_cache.get(path)))


def queue_sizes(entries: list[tuple[str, str, str, int]]) -> dict[str, dict[str, dict[str, int]]]:
    """``{ctx: {rel: {arch: N}}}`` in file order (livestate.queue_sizes)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for ctx, release, arch, size in entries:
        out.setdefault(ctx, {}).setdefault(release, {})[arch] = size
    return out


def size_tables(entries: list[tuple[str, str, str, int]]) -> list[dict]:
    """Per context: releases × arches table of queue sizes with anchors to the listings."""
    tables: dict[str, dict] = {}
    for ctx, release, arch, size in entries:
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


def anchor(ctx: str, release: str, arch: str) -> str:
    return f"queue-{ctx}-{release}-{arch}"


def queues(queue_limit: int) -> tuple[object, dict]:
    """``(key, data)``: size tables, counts and the head of every non-empty queue."""
    path = context.config().get("web", "amqp_queue_cache")
    base = site_url()
    key = (path, filecache.stamp(path), queue_limit, base)

    def heads(source) -> dict | None:
        entries = source.entries()
        if entries is None:
            return None
        queues = []
        for ctx, release, arch, size in entries:
            if not size:
                continue
            items = source.requests(ctx, release, arch, 0, queue_limit)
            if items is None:
                return None
            queues.append(
                {
                    "context": ctx,
                    "release": release,
                    "arch": arch,
                    "size": size,
                    "anchor": anchor(ctx, release, arch),
                    "requests": [queued_view(item) for item in items],
                    "url": f"{base}/running/queue/{ctx}/{release}/{arch}",
                }
            )
        return {
            "queued_count": sum(entry[3] for entry in entries),
            "size_tables": size_tables(entries),
            "queues": queues,
        }

    return queue_data.get((path, queue_limit, base), key, lambda: read_queued(heads))


def queue_summary() -> tuple[object, dict]:
    """``(key, {"queued_count", "queue_sizes"})`` of the current queued.json, for the status endpoint."""
    path = context.config().get("web", "amqp_queue_cache")
    key = (path, filecache.stamp(path))

    def summary(source) -> dict | None:
        entries = source.entries()
        if entries is None:
            return None
        return {"queued_count": sum(entry[3] for entry in entries), "queue_sizes": queue_sizes(entries)}

    return queue_summaries.get(path, key, lambda: read_queued(summary))


#: Running-job blocks kept per web process, the least recently shown dropped first.
JOB_BLOCKS = 4096


def running_job_block(job: dict) -> Markup:
    """A running job's block on a package or user page (a template global), rendered once per state of the job.

    A page lists up to 50 running jobs with kilobytes of log tail each, and
    the same jobs appear on every request of the page (and on several pages)
    until the job reports again: a block is rendered when what it shows
    changes, its id (package, release, arch and parameters), duration, log
    tail, hints or run link.
    """
    blocks = app_values("browse_job_blocks", JOB_BLOCKS)
    key = (job["id"], job["duration"], job["logtail"], tuple(job["hints"]), job["run_url"])
    template = "partials/running_job.html"
    return blocks.get(key, lambda: Markup(flask.current_app.jinja_env.get_template(template).render(job=job)))
