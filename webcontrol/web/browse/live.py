# SPDX-License-Identifier: GPL-3.0-or-later
"""Live state pages: /running, /admin, one queue's listing, and the live-update endpoints.

Data comes from :mod:`webcontrol.livestate` through
:mod:`~webcontrol.web.browse.live_data`, which derives views and HTML once
per version of the files. Pages stay fast with thousands of running jobs
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

import flask
from markupsafe import Markup

from webcontrol import livestate
from webcontrol.web.appbase import NotFound, site_url
from webcontrol.web.browse import context, live_data
from webcontrol.web.browse.api import API_PREFIX, StreamedList, describe, page, query_param, stream_json, stream_page
from webcontrol.web.browse.live_data import ages, average_durations, job_id, job_view, queued_view, running_views

log = logging.getLogger(__name__)

bp = flask.Blueprint("live", __name__, template_folder="templates")

QUEUE_HEAD_DEFAULT = 50
QUEUE_PAGE_DEFAULT = 1000
QUEUE_PAGE_MAX = 10000


# /running ------------------------------------------------------------------------------------------------


def _running_page_data() -> tuple[dict, object, object, list[dict]]:
    queue_limit = context.int_param("queue_limit", QUEUE_HEAD_DEFAULT, 0, QUEUE_PAGE_MAX)
    views_key, views = running_views()
    queues_key, queues = live_data.queues(queue_limit)
    data = {
        "updated": ages(),
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
    """Running jobs, queue sizes and the head of every non-empty queue (docs/formats.rst, Routes)."""
    data, views_key, queues_key, views = _running_page_data()
    # Scopes: the same files and site; keys: their versions (see live_data.running_views and queues).
    _key, jobs_html = live_data.jobs_html.get(views_key[:2], views_key, lambda: live_data.fragments.render(views))
    _key, queues_html = live_data.queue_html.get(
        (queues_key[0], *queues_key[2:]),
        queues_key,
        lambda: Markup(flask.current_app.jinja_env.get_template("live/_queues.html").render(queues=data["queues"])),
    )
    # Megabytes with thousands of jobs, from a fragment cached per file version: sent in pieces,
    # so 32 concurrent requests do not each build (and leave in malloc's arenas) a copy of the page.
    return stream_page("live/running.html", jobs_html=jobs_html, queues_html=queues_html, **data)


@bp.route(API_PREFIX + "/running")
def running_json():
    data = _running_page_data()[0]
    jobs = data["jobs"]
    return stream_json({**data, "jobs": StreamedList(lambda: iter(jobs), len(jobs))})


describe(
    bp,
    API_PREFIX + "/running",
    "Running jobs, queue sizes and the head of every non-empty queue",
    parameters=[query_param("queue_limit", "items shown per queue, 0..10000 (default 50)", "integer")],
)


@page(bp, "/admin", "live/admin.html", "Running jobs that are abnormally long or likely stuck")
def admin():
    views = running_views()[1]
    flagged = [v for v in views if v["hints"]]
    return {
        "page": "admin",
        "updated": ages(),
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
        query_param("limit", "requests per page, 1..10000 (default 1000)", "integer", 1, QUEUE_PAGE_MAX),
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
        "updated": ages(),
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
    views_key, views = running_views()
    queued_stamp = livestate.queued_cache.get_with_stamp(context.config().get("web", "amqp_queue_cache"))[0]
    # The versions the answer is made of: 304 until one of them changes.
    etag = hashlib.sha1(repr((views_key, queued_stamp)).encode()).hexdigest()[:20]
    if flask.request.if_none_match.contains(etag):
        response = flask.Response(status=304)
        response.set_etag(etag)
        return response
    queued = context.queued_raw()
    body = {
        "updated": ages(),
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
