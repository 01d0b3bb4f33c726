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

from webcontrol import filecache, livestate
from webcontrol.web.appbase import NotFound, site_url
from webcontrol.web.browse import context, live_data
from webcontrol.web.browse.api import (
    API_PREFIX,
    Fragment,
    describe,
    encode_members,
    encoded_member,
    members_response,
    query_param,
    stream_page,
)
from webcontrol.web.browse.live_data import ages, queued_view, running_views

log = logging.getLogger(__name__)

bp = flask.Blueprint("live", __name__, template_folder="templates")

QUEUE_HEAD_DEFAULT = 50
QUEUE_PAGE_DEFAULT = 1000
QUEUE_PAGE_MAX = 10000


# /running ------------------------------------------------------------------------------------------------

THRESHOLDS = {"long_factor": livestate.LONG_FACTOR, "stuck_seconds": livestate.STUCK_SECONDS}


def _render(template: str, **values) -> Markup:
    return Markup(flask.current_app.jinja_env.get_template(template).render(**values))


def _running_views() -> tuple[object, tuple, list[dict]]:
    """``(scope, key, views)`` of running.json; what is derived from the views is cached under that scope and key."""
    views_key, views = running_views()
    return views_key[:2], views_key, views


def _queues() -> tuple[int, tuple, tuple, dict]:
    queue_limit = context.int_param("queue_limit", QUEUE_HEAD_DEFAULT, 0, QUEUE_PAGE_MAX)
    queues_key, queues = live_data.queues(queue_limit)
    # Scope: the same file, limit and site; key: its version (see live_data.queues).
    return queue_limit, (queues_key[0], *queues_key[2:]), queues_key, queues


def _packages_html(views: list[dict]) -> Markup:
    """The package index of /running: rendered again only when the set of packages changes, not on every report."""
    packages = tuple(sorted({v["package"] for v in views}))
    return live_data.packages_html.get(packages, lambda: _render("live/_packages.html", packages=packages))


@bp.route("/running")
def running():
    """Running jobs, queue sizes and the head of every non-empty queue (docs/formats.rst, Routes)."""
    scope, views_key, views = _running_views()
    queue_limit, queues_scope, queues_key, queues = _queues()
    _key, (packages_html, jobs_html) = live_data.jobs_html.get(
        scope,
        views_key,
        lambda: (_packages_html(views), live_data.fragments.render(views)),
    )
    _key, (sizes_html, queues_html) = live_data.queue_html.get(
        queues_scope,
        queues_key,
        lambda: (
            _render("live/_sizes.html", size_tables=queues["size_tables"]),
            Fragment(_render("live/_queues.html", queues=queues["queues"]).encode("utf-8")),
        ),
    )
    # Megabytes with thousands of jobs, from fragments cached per file version: sent in pieces,
    # so 32 concurrent requests do not each build (and leave in malloc's arenas) a copy of the page.
    return stream_page(
        "live/running.html",
        updated=ages(),
        running_count=len(views),
        thresholds=THRESHOLDS,
        sizes_html=sizes_html,
        packages_html=packages_html,
        jobs_html=jobs_html,
        queues_html=queues_html,
    )


@bp.route(API_PREFIX + "/running")
def running_json():
    scope, views_key, views = _running_views()
    queue_limit, queues_scope, queues_key, queues = _queues()

    def encode_jobs() -> dict:
        texts = live_data.view_texts.encode(views)
        return {
            "jobs": encoded_member("jobs", [texts[v["id"]] for v in views]),
            **encode_members({"packages": sorted({v["package"] for v in views}), "running_count": len(views)}),
        }

    _key, jobs = live_data.running_json_jobs.get(scope, views_key, encode_jobs)
    _key, queued = live_data.running_json_queues.get(
        queues_scope,
        queues_key,
        lambda: encode_members({**queues, "queue_limit": queue_limit}),
    )
    return members_response(jobs, queued, thresholds=THRESHOLDS, updated=ages())


describe(
    bp,
    API_PREFIX + "/running",
    "Running jobs, queue sizes and the head of every non-empty queue",
    parameters=[query_param("queue_limit", "items shown per queue, 0..10000 (default 50)", "integer")],
)


# /admin -------------------------------------------------------------------------------------------------


def _flagged(views: list[dict]) -> dict:
    flagged = [v for v in views if v["hints"]]
    return {
        "abnormally_long": [v for v in flagged if "abnormally long" in v["hints"]],
        "likely_stuck": [v for v in flagged if "likely stuck" in v["hints"]],
    }


@bp.route("/admin")
def admin():
    """Running jobs that are abnormally long or likely stuck; the tables are rendered once per version."""
    scope, views_key, views = _running_views()

    def tables() -> Markup:
        flagged = _flagged(views)
        long_rows = live_data.admin_long_rows.encode(flagged["abnormally_long"])
        stuck_rows = live_data.admin_stuck_rows.encode(flagged["likely_stuck"])
        return _render(
            "live/_admin_tables.html",
            thresholds=THRESHOLDS,
            long_rows=Markup("".join(long_rows[v["id"]] for v in flagged["abnormally_long"])),
            stuck_rows=Markup("".join(stuck_rows[v["id"]] for v in flagged["likely_stuck"])),
            **flagged,
        )

    _key, tables_html = live_data.admin_html.get(scope, views_key, tables)
    return flask.render_template(
        "live/admin.html", page="admin", updated=ages(), running_count=len(views), tables_html=tables_html
    )


@bp.route(API_PREFIX + "/admin")
def admin_json():
    scope, views_key, views = _running_views()

    def encode_flagged() -> dict:
        texts = live_data.view_texts.encode(views)
        return {
            **{key: encoded_member(key, [texts[v["id"]] for v in jobs]) for key, jobs in _flagged(views).items()},
            **encode_members({"running_count": len(views)}),
        }

    _key, flagged = live_data.admin_json.get(scope, views_key, encode_flagged)
    return members_response(flagged, page="admin", thresholds=THRESHOLDS, updated=ages())


describe(bp, API_PREFIX + "/admin", "Running jobs that are abnormally long or likely stuck")


# One queue -----------------------------------------------------------------------------------------------


QUEUE_RULE = "/running/queue/<context_name>/<release>/<arch>"


def _queue_page(context_name: str, release: str, arch: str, cache: live_data.RecentValues, render):
    """``(data, rendered items)`` of one queue page; the items are read and rendered once per file version.

    Raises NotFound.
    """
    offset = context.int_param("offset", 0, 0)
    limit = context.int_param("limit", QUEUE_PAGE_DEFAULT, 1, QUEUE_PAGE_MAX)
    path = context.config().get("web", "amqp_queue_cache")
    base = f"{site_url()}/running/queue/{context_name}/{release}/{arch}"

    def listing(source) -> tuple[int | None, list] | None:
        entries = source.entries()
        if entries is None:
            return None
        size = next((n for c, r, a, n in entries if (c, r, a) == (context_name, release, arch)), None)
        if size is None:
            return size, []
        items = source.requests(context_name, release, arch, offset, limit)
        return None if items is None else (size, items)

    def compute() -> tuple[int, object] | None:
        size, items = live_data.read_queued(listing)
        return None if size is None else (size, render([queued_view(item) for item in items]))

    found = cache.get((path, filecache.stamp(path), base, context_name, release, arch, offset, limit), compute)
    if found is None:
        raise NotFound(f"no queue {context_name} {release} {arch}")
    size, rendered = found
    data = {
        "page": "queue",
        "updated": ages(),
        "context": context_name,
        "release": release,
        "arch": arch,
        "size": size,
        "offset": offset,
        "limit": limit,
        "previous_url": f"{base}?offset={max(0, offset - limit)}&limit={limit}" if offset else None,
        "next_url": f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < size else None,
    }
    return data, rendered


@bp.route(QUEUE_RULE)
def queue_listing(context_name: str, release: str, arch: str):
    """One queue's requests in order, a page at a time."""
    data, items_html = _queue_page(
        context_name,
        release,
        arch,
        live_data.queue_pages_html,
        lambda views: _render("live/_queue_items.html", requests=views),
    )
    return flask.render_template("live/queue.html", items_html=items_html, **data)


@bp.route(API_PREFIX + QUEUE_RULE)
def queue_listing_json(context_name: str, release: str, arch: str):
    data, requests = _queue_page(
        context_name, release, arch, live_data.queue_pages_json, lambda views: encode_members({"requests": views})
    )
    return members_response(requests, **data)


describe(
    bp,
    API_PREFIX + QUEUE_RULE,
    "One queue's requests in order, a page at a time",
    parameters=[
        query_param("offset", "skip this many requests", "integer"),
        query_param("limit", "requests per page, 1..10000 (default 1000)", "integer", 1, QUEUE_PAGE_MAX),
    ],
)


# Live updates ------------------------------------------------------------------------------------------


def _status_summary(views: list[dict]) -> dict:
    """Per job its duration and hints (keyed and sorted by job id, as jsonify sorts them), and the count."""
    texts = live_data.status_pairs.encode(views)
    pairs = [texts[job] for job in sorted(texts)]
    return {"jobs": encoded_member("jobs", pairs, object_items=True), **encode_members({"running_count": len(views)})}


@bp.route(API_PREFIX + "/running/status")
def running_status():
    """Small summary polled by running.js: counts, ages, and per job its duration and hints."""
    scope, views_key, views = _running_views()
    queued_key, summary = live_data.queue_summary()
    # The versions the answer is made of: 304 until one of them changes.
    etag = hashlib.sha1(repr((views_key, queued_key)).encode()).hexdigest()[:20]
    if flask.request.if_none_match.contains(etag):
        response = flask.Response(status=304)
        response.set_etag(etag)
        return response
    _key, jobs = live_data.status_jobs.get(scope, views_key, lambda: _status_summary(views))
    _key, queued = live_data.status_queues.get(queued_key[0], queued_key, lambda: encode_members(summary))
    response = members_response(jobs, queued, updated=ages())
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route(API_PREFIX + "/running/job/<job>")
def running_job(job: str):
    """One running job with its log tail (following a log live), from the views /running and the status show."""
    for view in running_views()[1]:
        if view["id"] == job:
            response = flask.jsonify(view)
            response.headers["Cache-Control"] = "no-cache"
            return response
    raise NotFound(f"job {job} is not running")


describe(bp, API_PREFIX + "/running/status", "Live summary of running jobs (ETag; 304 while unchanged)")
describe(bp, API_PREFIX + "/running/job/<job>", "One running job with its log tail, by the id /running shows")
