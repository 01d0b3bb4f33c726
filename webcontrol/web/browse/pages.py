# SPDX-License-Identifier: GPL-3.0-or-later
"""Site-wide pages: home, run by uuid, recent results, statistics, test list, release health."""

from __future__ import annotations

import logging
import os
import re
import string
import threading
import urllib.parse

import flask

import webcontrol
from webcontrol import history, insight, results
from webcontrol.atomicfile import read_json
from webcontrol.web.appbase import BadRequest, NotFound, site_url
from webcontrol.web.browse import context, links, live_views
from webcontrol.web.browse.api import RESULT_SCHEMA, RESULTS_LIST, object_schema, page, query_param
from webcontrol.web.browse.packages import run_view_data

log = logging.getLogger(__name__)

bp = flask.Blueprint("pages", __name__)

HOME_RESULTS = 15
RECENT_LIMITS = (10, 100, 500, 1000, 5000, 10000)
RELEASE_PAGE = 200
INDEX_LETTERS = list(string.ascii_lowercase) + [f"lib{c}" for c in string.ascii_lowercase]


@page(bp, "/", "home.html", "Home: latest results, live counts, data links", schema=object_schema(latest=RESULTS_LIST))
def home():
    conn = context.get_db()
    latest = history.recent(conn, HOME_RESULTS)
    base = site_url()
    return {
        "version": webcontrol.__version__,
        "latest": links.result_views(conn, latest),
        "alert": context.alert(),
        "live": live_views.counts(),
        "index": [{"prefix": p, "url": f"{base}/testlist#index-{p}"} for p in INDEX_LETTERS],
        "data_links": {
            "database": f"{base}/static/autopkgtest.db",
            "database_sha256": f"{base}/static/autopkgtest.db.sha256",
            "running": f"{base}/static/running.json",
            "queues": f"{base}/queues.json",
        },
    }


@page(
    bp, "/run/<uuid>", "run.html", "One run, found by the uuid of its request", schema=object_schema(run=RESULT_SCHEMA)
)
def run_by_uuid(uuid: str):
    found = history.result_by_uuid(context.get_db(), uuid) if results.UUID_RE.match(uuid) else None
    if found is None:
        state = live_views.find_live_uuid(uuid) if results.UUID_RE.match(uuid) else None
        message = f"uuid {uuid} not found"
        raise NotFound(f"{message}\n{state}" if state else message)
    return run_view_data(found)


# Recent -------------------------------------------------------------------------------------------

_RECENT_PARAMS = [
    query_param("limit", "number of results, 1..10000 (default 100)", "integer", 1, 10000),
    query_param("offset", "skip this many results", "integer"),
    query_param("release", "only this release"),
    query_param("arch", "only this architecture"),
    query_param("user", "only results requested by this Launchpad user"),
    query_param("result", "pass, fail, neutral, denylisted, tmpfail or error"),
    query_param("classification", "pass, regression, always_failed, fixed, flaky, neutral, tmpfail or denylisted"),
]


def _recent_rows():
    args = flask.request.args
    limit = context.limit_param()
    offset = context.int_param("offset", 0, 0)
    release = args.get("release") or None
    arch = args.get("arch") or None
    user = args.get("user") or None
    result = args.get("result") or None
    classification = args.get("classification") or None
    if release and not results.SERIES_RE.match(release):
        raise BadRequest(f"invalid release {release!r}")
    if arch and not results.ARCH_RE.match(arch):
        raise BadRequest(f"invalid arch {arch!r}")
    if result and result not in results.FILTERABLE_RESULTS:
        raise BadRequest(f"result must be one of {', '.join(results.FILTERABLE_RESULTS)}")
    if classification and classification not in insight.CLASSIFICATIONS:
        raise BadRequest(f"classification must be one of {', '.join(insight.CLASSIFICATIONS)}")
    filters = history.RecentFilter(release=release, arch=arch, requester=user, result=result)
    conn = context.get_db()
    index = context.catalogue().requester_run_index
    if classification:
        # Classification is computed, not stored: classify newest-first pages until enough match (bounded scan).
        rows, _complete = insight.select_classified(
            conn, lambda n, skip: history.recent(conn, n, skip, filters, index), classification, limit, offset
        )
    else:
        rows = history.recent(conn, limit, offset, filters, index)
    return (
        conn,
        rows,
        {
            "limit": limit,
            "offset": offset,
            "release": release,
            "arch": arch,
            "user": user,
            "result": result,
            "classification": classification,
        },
    )


@page(
    bp, "/recent", "recent.html", "Most recent results, filterable", _RECENT_PARAMS, object_schema(results=RESULTS_LIST)
)
def recent():
    conn, rows, filters = _recent_rows()
    catalogue = context.catalogue()
    older = None
    if len(rows) == filters["limit"]:
        query = {key: value for key, value in flask.request.args.items() if key != "offset"}
        query["offset"] = str(filters["offset"] + filters["limit"])
        older = f"{site_url()}/recent?{urllib.parse.urlencode(query)}"
    return {
        "filters": filters,
        "older_url": older,
        "results": links.result_views(conn, rows),
        "limits": list(RECENT_LIMITS),
        "releases": catalogue.releases,
        "arches": catalogue.all_arches(),
        "result_names": list(results.FILTERABLE_RESULTS),
        "classifications": list(insight.CLASSIFICATIONS),
    }


@bp.route("/api/experimental/recent.json")
def experimental_recent():
    """The historical JSON list (docs/formats.rst, Routes), kept exactly as it was."""
    conn, rows, _filters = _recent_rows()
    out = []
    for view in links.result_views(conn, rows):
        out.append(
            {
                "package": view["package"],
                "release": view["release"],
                "arch": view["arch"],
                "version": view["version"],
                "triggers": view["triggers"],
                "additional_params": view["env"],
                "human_date": view["date"],
                "human_sec": view["human_duration"],
                "requester": view["requester"],
                "code": view["result"],
                "url": view["log_url"],
                "show_retry": results.show_retry(view["exitcode"]),
                "all_proposed": view["all_proposed"],
                "uuid": view["uuid"],
                "run_id": view["run_id"],
            }
        )
    return flask.jsonify(out)


# Statistics -----------------------------------------------------------------------------------------


@page(bp, "/statistics", "statistics.html", "Per release and arch: packages, pass rate, runs (from stats.json)")
def statistics():
    raw = read_json(context.stats_path(), None)
    rows = []
    if isinstance(raw, dict):
        order = context.catalogue().releases
        for release in sorted(raw, key=lambda r: (order.index(r) if r in order else len(order), r)):
            arches = raw[release] if isinstance(raw[release], dict) else {}
            for arch in sorted(arches):
                entry = arches[arch] if isinstance(arches[arch], dict) else {}
                numbers = {key: _int(entry.get(key)) for key in ("numpkgs", "numpkgspass", "passruns", "failruns")}
                rate = round(100.0 * numbers["numpkgspass"] / numbers["numpkgs"], 2) if numbers["numpkgs"] else 0.0
                rows.append({"release": release, "arch": arch, **numbers, "pass_rate": rate})
    return {"computed": isinstance(raw, dict), "stats": rows}


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# Test list ----------------------------------------------------------------------------------------------

_testlist_lock = threading.Lock()
_testlist_cache: dict[str, tuple[tuple, dict]] = {}


def _testlist_from_db() -> dict[str, list[list[str]]]:
    """``{prefix: [[pkg, version], ...]}`` when the indexed-packages JSON is missing (cached per DB file)."""
    from debian.debian_support import Version

    path = context.public_db_path()
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _testlist_lock:
        cached = _testlist_cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
    conn = context.get_db()
    best: dict[str, str] = {}
    for package, _release, version in history.current_versions(conn):
        if not version:
            continue
        current = best.get(package)
        try:
            if current is None or Version(version) > Version(current):
                best[package] = version
        except ValueError:
            continue
    index: dict[str, list[list[str]]] = {}
    for package in history.package_names(conn):
        version = best.get(package, "")
        index.setdefault(results.srchash(package), []).append([package, re.sub(r"^\d+:", "", version)])
    with _testlist_lock:
        _testlist_cache[path] = (stamp, index)
    return index


@page(bp, "/testlist", "testlist.html", "Packages with results, by prefix")
def testlist():
    raw = read_json(context.config().get("web", "indexed_packages"), None)
    if not isinstance(raw, dict):
        raw = _testlist_from_db()
    groups = []
    for prefix in sorted(raw):
        entries = []
        for item in raw[prefix] if isinstance(raw[prefix], list) else []:
            if not (isinstance(item, list) and item and isinstance(item[0], str)):
                continue
            package = item[0]
            version = item[1] if len(item) > 1 and isinstance(item[1], str) else ""
            entries.append(
                {
                    "package": package,
                    "version": version,
                    "url": links.package_url(package),
                    "dsc_url": links.dsc_url(package, version) if version else None,
                }
            )
        groups.append({"prefix": prefix, "packages": entries})
    return {"groups": groups}


# Release health -------------------------------------------------------------------------------------------


@page(
    bp,
    ["/releases/<release>", "/releases/<release>/<arch>"],
    "release.html",
    "Release health: migration-reference results of current versions, a page of packages at a time",
    [
        query_param("after", "packages after this name (paging)"),
        query_param("limit", "packages per page, 1..1000", "integer", 1, 1000),
    ],
)
def release_health(release: str, arch: str | None = None):
    if not results.SERIES_RE.match(release):
        raise NotFound(f"invalid release {release!r}")
    if arch is not None and not results.ARCH_RE.match(arch):
        raise NotFound(f"invalid arch {arch!r}")
    catalogue = context.catalogue()
    arches = [arch] if arch else catalogue.arches.get(release, [])
    after = flask.request.args.get("after") or None
    if after is not None and not results.is_package_name(after):
        raise BadRequest(f"after must be a package name, not {after!r}")
    limit = context.int_param("limit", RELEASE_PAGE, 1, 1000)
    conn = context.get_db()
    rows = []
    entries = history.release_health(conn, release, arches, after, limit)
    for entry in entries:
        cells = []
        for each in arches:
            found = entry.results.get(each)
            view = links.result_views(conn, [found])[0] if found else None
            cells.append(
                {
                    "arch": each,
                    "result": view,
                    "retry_url": links.retry_url(release, each, entry.package, [results.MIGRATION_REFERENCE]),
                }
            )
        rows.append({"package": entry.package, "version": entry.version, "cells": cells})
    more = None
    if len(entries) == limit:
        base = f"{site_url()}/releases/{release}" + (f"/{arch}" if arch else "")
        more = f"{base}?{urllib.parse.urlencode({'after': entries[-1].package, 'limit': limit})}"
    return {"release": release, "arch": arch, "arches": arches, "packages": rows, "after": after, "more_url": more}
