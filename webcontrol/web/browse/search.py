# SPDX-License-Identifier: GPL-3.0-or-later
"""``/search?q=…``: find a failure message in the failure excerpts of every failing run.

Reads the FTS5 index that ``index-failures`` writes (read-only). Matches
come newest first (the index's ids sort like time), one page at a time,
grouped by package and release in the order of their newest match. Each
run shows the excerpt lines that match, split into (text, match) segments
that the template escapes; the JSON twin carries the same segments.
"""

from __future__ import annotations

import datetime
import logging
import sqlite3
import urllib.parse

import flask

from webcontrol import db, failureindex, results
from webcontrol.web.appbase import BadRequest, ServiceUnavailable, site_url
from webcontrol.web.browse import context, links
from webcontrol.web.browse.api import object_schema, page, query_param

log = logging.getLogger(__name__)

bp = flask.Blueprint("search", __name__)

LIMIT_DEFAULT = 50
LIMIT_MAX = 200
STATEMENT_TIMEOUT_MS = 5000

_PARAMS = [
    query_param("q", 'words or "quoted phrases" that must all appear in the failure excerpt'),
    query_param("release", "only this release"),
    query_param("arch", "only this architecture"),
    query_param("since", "only runs on or after this date (YYYY-MM-DD)"),
    query_param("until", "only runs on or before this date (YYYY-MM-DD)"),
    query_param("before", "paging cursor: the next_before of the previous page", "integer", 0),
    query_param("limit", f"runs per page, 1..{LIMIT_MAX} (default {LIMIT_DEFAULT})", "integer", 1, LIMIT_MAX),
]
_SEGMENTS = {"type": "array", "items": {"type": "array", "items": {"type": "object"}}}
_SCHEMA = object_schema(
    q={"type": "string"},
    indexed={"type": "boolean"},
    groups={
        "type": "array",
        "items": object_schema(
            package={"type": "string"},
            release={"type": "string"},
            runs={"type": "array", "items": object_schema(lines=_SEGMENTS, run_id={"type": "string"})},
        ),
    },
    matches={"type": "integer"},
    next_url={"type": "string", "nullable": True},
    next_before={"type": "integer", "nullable": True},
)


def _date(name: str) -> datetime.date | None:
    raw = flask.request.args.get(name) or ""
    if not raw:
        return None
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD, not {raw!r}") from None


def _open_index() -> sqlite3.Connection | None:
    path = failureindex.index_path(context.config())
    if not path.exists():
        return None
    if "search_db" not in flask.g:
        try:
            flask.g.search_db = db.connect_ro(path, timeout_ms=STATEMENT_TIMEOUT_MS)
        except db.DatabaseError as err:
            log.error("%s", err)
            raise ServiceUnavailable("The failure index is not available; please try again later.") from None
    return flask.g.search_db


@bp.teardown_app_request
def _close(_exc: BaseException | None = None) -> None:
    conn = flask.g.pop("search_db", None)
    if conn is not None:
        conn.close()


def _run_view(hit: failureindex.Hit) -> dict:
    trigger_list = results.split_triggers(hit.triggers)
    history = links.history_url(hit.package, hit.release, hit.arch)
    return {
        "arch": hit.arch,
        "run_id": hit.run_id,
        "date": results.human_date(hit.run_id),
        "version": hit.version,
        "triggers": trigger_list,
        "exitcode": hit.exitcode,
        "result": results.result_name(hit.exitcode),
        "history_url": history,
        "run_url": links.run_page_url(hit.package, hit.release, hit.arch, hit.run_id),
        "log_url": links.run_object_url(hit.release, hit.arch, hit.package, hit.run_id, "log.gz"),
        "log_viewer_url": links.log_viewer_url(hit.package, hit.release, hit.arch, hit.run_id),
        "lines": [
            [{"text": text, "match": match} for text, match in line] for line in failureindex.marked_lines(hit.marked)
        ],
    }


@page(bp, "/search", "search.html", "Full-text search in the failure part of failing runs' logs", _PARAMS, _SCHEMA)
def search_page():
    args = flask.request.args
    query = (args.get("q") or "").strip()
    release = args.get("release") or None
    arch = args.get("arch") or None
    if release and not results.SERIES_RE.fullmatch(release):
        raise BadRequest(f"invalid release {release!r}")
    if arch and not results.ARCH_RE.fullmatch(arch):
        raise BadRequest(f"invalid arch {arch!r}")
    since, until = _date("since"), _date("until")
    before = context.int_param("before", 0, 0) or None
    limit = context.int_param("limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    conn = _open_index()
    data = {
        "q": query,
        "release": release,
        "arch": arch,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "indexed": conn is not None,
        "releases": context.catalogue().releases,
        "arches": context.catalogue().all_arches(),
        "groups": [],
        "matches": 0,
        "next_url": None,
        "next_before": None,
    }
    if not query or conn is None:
        return data
    try:
        hits = failureindex.search(conn, query, release, arch, since, until, before, limit)
    except failureindex.QueryError as err:
        raise BadRequest(str(err)) from None
    except sqlite3.OperationalError as err:
        log.warning("search %r failed: %s", query, err)
        raise ServiceUnavailable("The search took too long; add words or filters to narrow it.") from None
    index: dict[tuple[str, str], dict] = {}
    for hit in hits:
        key = (hit.package, hit.release)
        if key not in index:
            index[key] = {
                "package": hit.package,
                "release": hit.release,
                "package_url": links.package_url(hit.package, hit.release),
                "runs": [],
            }
            data["groups"].append(index[key])
        index[key]["runs"].append(_run_view(hit))
    data["matches"] = len(hits)
    if len(hits) == limit:
        data["next_before"] = hits[-1].key
        query_args = {k: v for k, v in args.items() if k != "before"}
        query_args["before"] = hits[-1].key
        prefix = "/api/v1" if flask.request.path.startswith("/api/") else ""
        data["next_url"] = f"{site_url()}{prefix}/search?{urllib.parse.urlencode(query_args)}"
    return data
