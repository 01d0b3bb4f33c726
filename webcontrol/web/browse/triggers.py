# SPDX-License-Identifier: GPL-3.0-or-later
"""``/trigger/<source>/<version>``: every run an upload triggered, regressions first.

Read from the trigger index (:mod:`webcontrol.triggerindex`), a sidecar DB
that publish-db maintains next to the public DB and that this page attaches
read-only, so a trigger with tens of thousands of runs costs one index walk
for the page and one row for the summary. The full result rows of the page
come from the public DB by primary key; what is running or queued for the
trigger now comes from running.json and queued.json.
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.parse

import flask

from webcontrol import history, liveindex, livestate, results, triggerindex
from webcontrol.web.appbase import BadRequest, NotFound, form_token, session_token_subject, site_url
from webcontrol.web.browse import context, links, live_views
from webcontrol.web.browse.api import RESULT_SCHEMA, describe, object_schema, page, query_param

log = logging.getLogger(__name__)

bp = flask.Blueprint("triggers", __name__)

LIMIT_DEFAULT = 50
LIMIT_MAX = 1000
SCHEMA_NAME = "tix"

_PARAMS = [
    query_param("after", "paging cursor: the next_after of the previous page"),
    query_param("limit", f"tests per page, 1..{LIMIT_MAX} (default {LIMIT_DEFAULT})", "integer", 1, LIMIT_MAX),
]
_TEST = {
    "type": "object",
    "properties": {
        "result": RESULT_SCHEMA,
        "runs": {"type": "integer"},
        "earlier_runs": {"type": "array", "items": {"type": "object"}},
    },
}
_SCHEMA = object_schema(
    trigger={"type": "string"},
    indexed={"type": "boolean"},
    summary=object_schema(
        text={"type": "string"},
        runs={"type": "integer"},
        tests={"type": "integer"},
        packages={"type": "integer"},
        regressions={"type": "integer"},
        regression_packages={"type": "integer"},
        running={"type": "integer"},
        queued={"type": "integer"},
        counts={"type": "object"},
    ),
    groups={
        "type": "array",
        "items": object_schema(package={"type": "string"}, tests={"type": "array", "items": _TEST}),
    },
    running={"type": "array", "items": {"type": "object"}},
    queued={"type": "array", "items": {"type": "object"}},
    next_after={"type": "string", "nullable": True},
    next_url={"type": "string", "nullable": True},
    first_url={"type": "string", "nullable": True},
)


_RETRY_ITEM = object_schema(
    release={"type": "string"},
    arch={"type": "string"},
    package={"type": "string"},
    triggers={"type": "array", "items": {"type": "string"}},
)
# /api/v1/retry is served by request.cgi; the browse app publishes the one OpenAPI document.
describe(
    bp,
    "/api/v1/retry",
    "Retry many tests in one request (API key: Authorization: Bearer <lpuser>:<key>); per-item outcome",
    schema=object_schema(
        queued={"type": "integer"},
        skipped={"type": "integer"},
        refused={"type": "integer"},
        items={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    **_RETRY_ITEM["properties"],
                    "outcome": {"type": "string", "enum": ["queued", "skipped", "refused"]},
                    "reason": {"type": "string"},
                    "status": {"type": "integer"},
                    "uuid": {"type": "string", "nullable": True},
                    "result_url": {"type": "string"},
                },
            },
        },
    ),
    method="post",
    request_body={
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": _RETRY_ITEM, "maxItems": 100},
            "triggers": {"type": "array", "items": {"type": "string"}, "description": "added to every item"},
            "all-proposed": {"type": "boolean"},
        },
    },
)


def trigger_url(trigger: str, site: str | None = None) -> str | None:
    """``<site>/trigger/<source>/<version>``; None for a trigger that is not ``source/version``.

    ``site``: links.site(), when the caller (a table of thousands of rows) has it already.
    """
    path = trigger_path(trigger)
    return f"{site or links.site()}{path}" if path else None


def trigger_path(trigger: str) -> str | None:
    """``/trigger/<source>/<version>`` of :func:`trigger_url`; None for a trigger that is not ``source/version``.

    Neither the path nor the trigger holds a character that URL quoting or HTML escaping changes.
    """
    if not results.SOURCE_VERSION_RE.match(trigger):
        return None
    # VERSION_RE allows only characters that quote(version, safe="+:~") keeps: the version is its own quoting.
    return f"/trigger/{trigger}"


def retry_token() -> str | None:
    """The login's form token for the retry forms (request.cgi checks it; the apps share the key)."""
    subject = session_token_subject()
    return form_token(subject) if subject else None


def check_trigger(source: str, version: str) -> str:
    """``source/version`` when both parts are well formed. Raises NotFound."""
    if not results.PACKAGE_RE.fullmatch(source) or not results.VERSION_RE.fullmatch(version):
        raise NotFound(f"trigger {source}/{version} is not a valid source/version")
    return f"{source}/{version}"


def attach_index(conn: sqlite3.Connection) -> bool:
    """Attach the trigger index read-only to the request's public-DB connection; False when missing."""
    cfg = context.config()
    path = triggerindex.index_path(context.public_db_path(), cfg.get("web", "trigger_index"))
    attached = {row[1] for row in conn.execute("PRAGMA database_list")}
    if SCHEMA_NAME in attached:
        return True
    if not path.exists():
        log.warning("trigger index %s does not exist (has publish-db run?)", path)
        return False
    try:
        conn.execute(f"ATTACH DATABASE ? AS {SCHEMA_NAME}", (path.resolve().as_uri() + "?mode=ro",))
        conn.execute(f"SELECT 1 FROM {SCHEMA_NAME}.trigger_summary LIMIT 1").fetchall()
    except sqlite3.Error as err:
        log.error("trigger index %s unreadable: %s", path, err)
        return False
    return True


def _has_trigger(params: dict, trigger: str) -> bool:
    value = params.get("triggers")
    return isinstance(value, list) and trigger in value


def live_for(trigger: str) -> tuple[list[dict], list[dict]]:
    """Running jobs and queued requests whose triggers include ``trigger``.

    From the live files' indexes when they are current (indexed reads, and no
    web process holds a parsed queued.json for this page), else from the files.
    """
    indexed = liveindex.with_trigger(*live_views.live_paths(), trigger)
    if indexed is not None:
        jobs, items = indexed
        return [live_views.job_view(job) for job in jobs], [live_views.queued_view(item) for item in items]
    running = [
        live_views.job_view(job)
        for job in livestate.running_jobs(context.running_raw())
        if not job.private and _has_trigger(job.params, trigger)
    ]
    queued = []
    raw = context.queued_raw()
    quoted = f'"{trigger}"'
    for context_name, release, arch, _size in livestate.queue_entries(raw):
        requests = raw["queues"][context_name][release][arch].get("requests")
        for position, text in enumerate(requests if isinstance(requests, list) else [], 1):
            # Cheap substring test first: a queue may hold tens of thousands of items.
            if not isinstance(text, str) or quoted not in text:
                continue
            parsed = livestate.parse_request_text(text)
            if parsed is None or livestate.is_hidden(parsed[1]) or not _has_trigger(parsed[1], trigger):
                continue
            item = livestate.QueuedRequest(context_name, release, arch, position, parsed[0], parsed[1], False, text)
            queued.append(live_views.queued_view(item))
    return running, queued


def summary_text(regressions: int, regression_packages: int, running: int, queued: int) -> str:
    noun = "regression" if regressions == 1 else "regressions"
    where = "package" if regression_packages == 1 else "packages"
    return f"{regressions} {noun} in {regression_packages} {where}, {running} running, {queued} queued"


def _page_url(trigger: str, after: str | None, limit: int) -> str:
    query: dict = {"after": after} if after else {}
    if limit != LIMIT_DEFAULT:
        query["limit"] = limit
    prefix = "/api/v1" if flask.request.path.startswith("/api/") else ""
    source, _, version = trigger.partition("/")
    base = f"{site_url()}{prefix}/trigger/{source}/{urllib.parse.quote(version, safe='+:~')}"
    return f"{base}?{urllib.parse.urlencode(query)}" if query else base


def _test_view(conn: sqlite3.Connection, trigger: str, row: triggerindex.TestRow, columns: tuple | None) -> dict | None:
    if columns is None:  # the index can be a publish ahead of the request's DB
        return None
    found = history.Result(*columns)
    earlier = []
    if row.runs > 1:
        for run_id, exitcode, classification in triggerindex.runs_of(conn, SCHEMA_NAME, trigger, row.test_id)[1:]:
            earlier.append(
                {
                    "run_id": run_id,
                    "date": results.human_date(run_id),
                    "result": results.result_name(exitcode),
                    "classification": classification,
                    "run_url": links.run_page_url(row.package, row.release, row.arch, run_id),
                }
            )
    return {"result": links.result_view(found, row.classification), "runs": row.runs, "earlier_runs": earlier}


@page(
    bp, "/trigger/<source>/<version>", "trigger.html", "Every run of one trigger, regressions first", _PARAMS, _SCHEMA
)
def trigger_page(source: str, version: str):
    trigger = check_trigger(source, version)
    raw_after = flask.request.args.get("after") or None
    after = triggerindex.parse_cursor(raw_after) if raw_after else None
    if raw_after and after is None:
        raise BadRequest(f"after must be a cursor from next_after, not {raw_after!r}")
    limit = context.int_param("limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    conn = context.get_db()
    running, queued = live_for(trigger)
    data = {
        "trigger": trigger,
        "source": source,
        "version": version,
        "indexed": attach_index(conn),
        "groups": [],
        "running": running,
        "queued": queued,
        "after": raw_after,
        "limit": limit,
        "next_after": None,
        "next_url": None,
        "first_url": _page_url(trigger, None, limit) if raw_after else None,
    }
    found = triggerindex.summary(conn, SCHEMA_NAME, trigger) if data["indexed"] else None
    counts = found.counts if found else {}
    regressions, regression_packages = counts.get("regression", [0, 0])
    data["summary"] = {
        "text": summary_text(regressions, regression_packages, len(running), len(queued)),
        "runs": found.runs if found else 0,
        "tests": found.tests if found else 0,
        "packages": found.packages if found else 0,
        "regressions": regressions,
        "regression_packages": regression_packages,
        "running": len(running),
        "queued": len(queued),
        "counts": {name: {"tests": pair[0], "packages": pair[1]} for name, pair in sorted(counts.items())},
    }
    if not found:
        return data
    rows = triggerindex.tests_page(conn, SCHEMA_NAME, trigger, after, limit)
    if len(rows) == limit:
        data["next_after"] = rows[-1].cursor
        data["next_url"] = _page_url(trigger, rows[-1].cursor, limit)
    found_rows = triggerindex.page_results(conn, rows)
    for row in rows:
        view = _test_view(conn, trigger, row, found_rows.get((row.test_id, row.run_id)))
        if view is None:
            continue
        groups = data["groups"]
        if not groups or groups[-1]["package"] != row.package:
            groups.append({"package": row.package, "tests": []})
        groups[-1]["tests"].append(view)
    return data
