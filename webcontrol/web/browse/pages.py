# SPDX-License-Identifier: GPL-3.0-or-later
"""Site-wide pages: home, run by uuid, recent results, statistics, test list, release health."""

from __future__ import annotations

import logging
import string
import urllib.parse
from collections.abc import Iterable, Iterator

import flask
from markupsafe import Markup, escape

import webcontrol
from webcontrol import classindex, history, insight, results, tested_versions
from webcontrol.atomicfile import read_json
from webcontrol.filecache import FileCache
from webcontrol.web.appbase import BadRequest, NotFound, site_url
from webcontrol.web.browse import context, links, live_views
from webcontrol.web.browse.api import (
    RESULT_SCHEMA,
    RESULTS_LIST,
    StreamedList,
    is_api_request,
    keep_db,
    object_schema,
    page,
    query_param,
    stream_json,
)
from webcontrol.web.browse.packages import run_view_data

log = logging.getLogger(__name__)

bp = flask.Blueprint("pages", __name__)

HOME_RESULTS = 15
RECENT_LIMITS = (10, 100, 500, 1000, 5000, 10000)
RELEASE_PAGE = 200
INDEX_LETTERS = list(string.ascii_lowercase) + [f"lib{c}" for c in string.ascii_lowercase]


@page(bp, "/", "home.html", "Home: latest results, live counts, data links", schema=object_schema(latest=RESULTS_LIST))
def home():
    base = site_url()
    return {
        "version": webcontrol.__version__,
        "latest": _latest(base).data,
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


class _KeptPage:
    """What a page shows, kept per published DB file and site URL (``key``), and the HTML made from it alone."""

    def __init__(self, data, key: tuple = ()) -> None:
        self.key = key
        self.data = data
        self.html: Markup | None = None


def _rendered_once(kept: _KeptPage | None, template: str, **context) -> Markup:
    """``template`` rendered with ``context``, kept with ``kept`` (None: the context is not what it keeps)."""
    if kept is None:
        return Markup(flask.render_template(template, **context))
    if kept.html is None:
        kept.html = Markup(flask.render_template(template, **context))
    return kept.html


def _latest(base: str) -> _KeptPage:
    """The home page's newest results, read and classified once per published DB file and site URL.

    They change only when publish-db replaces the file (every minute), and
    reading and classifying them was a third of the home page's time.
    """
    key = (context.public_db_identity(), base)
    cached = flask.current_app.extensions.get("browse_home_latest")
    if cached is not None and cached.key == key:
        return cached
    conn = context.get_db()
    latest = _KeptPage(links.result_views(conn, history.recent(conn, HOME_RESULTS)), key)
    flask.current_app.extensions["browse_home_latest"] = latest
    return latest


@bp.app_template_global("home_results_html")
def home_results_html(latest: list[dict], index: list[dict], data_links: dict, version: str) -> Markup:
    """The home page below its live counts (``_home_results.html``), rendered once per published DB and site URL.

    Rendering its fifteen results with their trigger links was two thirds
    of the home page's time. Everything in it comes from ``latest`` (kept
    per DB file and site URL) and the site URL: the HTML is kept with the
    ``latest`` it was made from, and made anew whenever that is replaced.
    """
    cached = flask.current_app.extensions.get("browse_home_latest")
    kept = cached if cached is not None and cached.data is latest else None
    return _rendered_once(
        kept, "_home_results.html", latest=latest, index=index, data_links=data_links, version=version
    )


#: /run/<uuid> pages kept per process (a few kB each): clients poll the uuids they wait for.
RUN_PAGES = 256


def _load_run_page(_path: str, _file: tuple, _site: str, uuid: str) -> _KeptPage:
    """Raises NotFound (with the live state of the uuid, never kept), ServiceUnavailable."""
    found = history.result_by_uuid(context.get_db(), uuid) if results.UUID_RE.match(uuid) else None
    if found is None:
        state = live_views.find_live_uuid(uuid) if results.UUID_RE.match(uuid) else None
        message = f"uuid {uuid} not found"
        raise NotFound(f"{message}\n{state}" if state else message)
    return _KeptPage(run_view_data(found))


def _run_pages() -> FileCache[_KeptPage]:
    """Per app (a page's links follow its config). A stored result never changes, but a new DB file may
    classify it anew (a backfilled history): kept per DB file, told apart by inode too (publish-db renames
    a new file into place), as the kept connections are."""
    extensions = flask.current_app.extensions
    return extensions.get("browse_run_pages") or extensions.setdefault(
        "browse_run_pages", FileCache(_load_run_page, max_entries=RUN_PAGES)
    )


@page(
    bp, "/run/<uuid>", "run.html", "One run, found by the uuid of its request", schema=object_schema(run=RESULT_SCHEMA)
)
def run_by_uuid(uuid: str):
    path, *file = context.public_db_identity()
    found = _run_pages().get(path, tuple(file), links.site(), uuid)
    flask.g.browse_run_page = found
    return found.data


@bp.app_template_global("run_table_html")
def run_table_html(run: dict, package_url: str) -> Markup:
    """A run page's table (``_run_table.html``), rendered once per kept /run/<uuid> page.

    Made from the run's view only, which is kept per DB file and site URL;
    the "changes since the last pass" below it are not kept (they read the
    result store, whose answers may change).
    """
    page = flask.g.get("browse_run_page")
    kept = page if page is not None and page.data["run"] is run else None
    return _rendered_once(kept, "_run_table.html", run=run, package_url=package_url)


# Recent -------------------------------------------------------------------------------------------

_RECENT_PARAMS = [
    query_param("limit", "number of results, 1..10000 (default 100)", "integer", 1, 10000),
    query_param("before", "only results with run_id < this (keyset paging; the older link uses it)"),
    query_param("offset", f"skip this many results, 0..{history.OFFSET_MAX} (old links; use before)", "integer"),
    query_param("release", "only this release"),
    query_param("arch", "only this architecture"),
    query_param("user", "only results requested by this Launchpad user"),
    query_param("result", "pass, fail, neutral, denylisted, tmpfail or error"),
    query_param("classification", "pass, regression, always_failed, fixed, flaky, neutral, tmpfail or denylisted"),
]


def _recent_rows():
    """``(conn, rows, filters, next_before)`` of the /recent page the query asks for. Raises BadRequest."""
    args = flask.request.args
    limit = context.limit_param()
    offset = context.offset_param()
    before = context.before_param()
    release = args.get("release") or None
    arch = args.get("arch") or None
    user = args.get("user") or None
    result = args.get("result") or None
    classification = args.get("classification") or None
    if release and not results.SERIES_RE.match(release):
        raise BadRequest(f"invalid release {release!r}")
    if arch and not results.ARCH_RE.match(arch):
        raise BadRequest(f"invalid arch {arch!r}")
    if user and not results.is_launchpad_name(user):
        raise BadRequest(f"invalid user {user!r}")
    if result and result not in results.FILTERABLE_RESULTS:
        raise BadRequest(f"result must be one of {', '.join(results.FILTERABLE_RESULTS)}")
    if classification and classification not in insight.CLASSIFICATIONS:
        raise BadRequest(f"classification must be one of {', '.join(insight.CLASSIFICATIONS)}")
    filters = history.RecentFilter(release=release, arch=arch, requester=user, result=result)
    shown = {
        "limit": limit,
        "offset": offset,
        "before": before,
        "release": release,
        "arch": arch,
        "user": user,
        "result": result,
        "classification": classification,
        "notice": None,
    }
    conn = context.get_db()
    catalogue = context.catalogue()
    # A release or arch without results matches nothing: answer without walking the whole index for it.
    if (release and release not in catalogue.arches) or (arch and arch not in catalogue.all_arches()):
        return conn, [], shown, None
    if release and arch and arch not in catalogue.arches.get(release, []):
        return conn, [], shown, None
    index = catalogue.requester_run_index
    if classification:
        rows, next_before, notice = _classified_rows(conn, classification, filters, limit, offset, before)
        shown["notice"] = notice
    else:
        # Filtered pages look at up to RECENT_SCAN_MAX candidates: in the index, a walk of its covering
        # entries instead of as many scattered reads of the results table.
        found = (
            _indexed_page(conn, None, filters, limit, offset, before) if (release or arch or user or result) else None
        )
        if found is None:
            found = history.recent_page(conn, limit, offset, filters, index, before)
        rows, next_before = found.rows, found.next_before
    return conn, rows, shown, next_before


#: Without a usable classification index, /recent?classification= classifies at most this many newest results.
FALLBACK_SCAN = 2_000


def _indexed_page(conn, classification: str | None, filters: history.RecentFilter, limit: int, offset: int, before):
    """The page from the classification index, or None when it is missing or does not describe the published DB."""
    fresh = context.classification_index()
    if fresh is not None:
        query = classindex.Query(classification, filters, before)
        found = classindex.recent_page(conn, context.CLASSINDEX_SCHEMA, fresh, query, limit, offset)
        if found is not None:
            return found
        log.warning("classification index entries do not match the published DB; reading /recent without it")
    return None


def _classified_rows(conn, classification: str, filters: history.RecentFilter, limit: int, offset: int, before):
    """``(rows, next_before, notice)`` of a /recent page filtered by classification.

    From the classification index (one index walk) when it describes the
    published DB; otherwise by classifying newest-first pages, at most
    :data:`FALLBACK_SCAN` results, with a notice saying the page may be
    incomplete and ``next_before`` continuing the scan.
    """
    found = _indexed_page(conn, classification, filters, limit, offset, before)
    if found is not None:
        return found.rows, found.next_before, None
    scanned: list = []

    def fetch(count: int, skip: int):
        page_rows = history.recent(conn, count, skip, filters, context.catalogue().requester_run_index, before)
        scanned[:] = page_rows[-1:]
        return page_rows

    rows, complete = insight.select_classified(conn, fetch, classification, limit, offset, scan_max=FALLBACK_SCAN)
    if len(rows) == limit:
        return rows, rows[-1].run_id, None
    if complete:
        return rows, None, None
    notice = (
        f"The classification index is not available right now: only the {FALLBACK_SCAN:,} newest results were classified"
        " for this page, so it may be incomplete; the older link continues."
    )
    return rows, scanned[0].run_id if scanned else None, notice


@page(
    bp, "/recent", "recent.html", "Most recent results, filterable", _RECENT_PARAMS, object_schema(results=RESULTS_LIST)
)
def recent():
    conn, rows, filters, next_before = _recent_rows()
    notice = filters.pop("notice")
    catalogue = context.catalogue()
    older = None
    if next_before:
        query = {key: value for key, value in flask.request.args.items() if key not in ("offset", "before")}
        query["before"] = next_before
        older = f"{site_url()}/recent?{urllib.parse.urlencode(query)}"
    return {
        "filters": filters,
        "notice": notice,
        "older_url": older,
        "results": links.page_views(conn, rows, classification=filters["classification"]),
        "limits": list(RECENT_LIMITS),
        "releases": catalogue.releases,
        "arches": catalogue.all_arches(),
        "result_names": list(results.FILTERABLE_RESULTS),
        "classifications": list(insight.CLASSIFICATIONS),
    }


@bp.route("/api/experimental/recent.json")
def experimental_recent():
    """The historical JSON list (docs/formats.rst, Routes), kept exactly as it was."""
    conn, rows, _filters, _next = _recent_rows()
    items = _legacy_items(rows)
    if len(rows) > links.STREAM_ROWS:
        return keep_db(stream_json(items, plain=True))  # str, bool and None values (see _legacy_items)
    return flask.jsonify(list(items))


def _legacy_items(rows: Iterable[history.Result]) -> Iterator[dict]:
    """The items of the legacy list: str, bool and None values only (its JSON may be written by orjson).

    The fields are those of the rows' views (links.ViewMaker.view), made
    without the rest of a view: the list has no classification, links but
    the log's, or retry link.
    """
    maker = links.ViewMaker()
    for result in rows:
        history_url, folder, _retry = maker.test_links(result.package, result.release, result.arch)
        _run_page, objects, date = links.run_places(history_url, folder, result.run_id)
        env = result.env
        yield {
            "package": result.package,
            "release": result.release,
            "arch": result.arch,
            "version": result.version,
            "triggers": result.triggers or "",
            "additional_params": env or "",
            "human_date": date,
            "human_sec": maker.duration_text(result.duration),
            "requester": result.requester or "",
            "code": result.result_name,
            "url": f"{objects}/log.gz",
            "show_retry": results.show_retry(result.exitcode),
            "all_proposed": bool(env) and "all-proposed" in env and result.all_proposed,
            "uuid": result.uuid,
            "run_id": result.run_id,
        }


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


def _testlist_from_db(_path: str) -> dict[str, list[list[str]]]:
    """``{prefix: [[pkg, version], ...]}`` when the indexed-packages JSON is missing.

    The same latest tested versions publish-db writes to the JSON file.
    """
    return tested_versions.index(context.get_db())


#: Per published DB file, since the index reads every package's newest run.
_testlist_cache: FileCache[dict] = FileCache(_testlist_from_db)


@page(bp, "/testlist", "testlist.html", "Packages with results, by prefix")
def testlist():
    if is_api_request():
        raw = _testlist_raw()
        prefixes = sorted(raw)
        # Tens of thousands of packages: the groups are made while the JSON is sent.
        return {
            "groups": StreamedList(lambda: (_testlist_group(prefix, raw[prefix]) for prefix in prefixes), len(prefixes))
        }
    # The HTML of each group is made once per version of its source and site URL, then sent in pieces.
    path = context.config().get("web", "indexed_packages")
    found = _testlist_html.get(path, links.site(), False) if path else None
    if found is None:
        found = _testlist_html.get(context.public_db_path(), links.site(), True)
    return {"groups": StreamedList(lambda: iter(found), len(found))}


def _testlist_raw() -> dict:
    raw = read_json(context.config().get("web", "indexed_packages"), None)
    return raw if isinstance(raw, dict) else _testlist_cache.get(context.public_db_path())


def _testlist_html_groups(path: str, _site: str, from_db: bool) -> list[dict] | None:
    """``[{"prefix", "html"}]`` from the indexed-packages JSON (None when unusable) or from the DB."""
    raw = _testlist_cache.get(path) if from_db else read_json(path, None)
    if not isinstance(raw, dict):
        return None
    groups = []
    for prefix in sorted(raw):
        items = []
        for entry in _testlist_group(prefix, raw[prefix])["packages"]:
            item = f'<li><a href="{escape(entry["url"])}">{escape(entry["package"])}</a>'
            if entry["version"]:
                item += f' <a class="muted" href="{escape(entry["dsc_url"])}">{escape(entry["version"])}</a>'
            items.append(item + "</li>")
        groups.append({"prefix": prefix, "html": Markup("".join(items))})
    return groups


#: Few entries: a value is about 1 MB at production size, and the site URL may follow the request's host.
_testlist_html: FileCache[list[dict] | None] = FileCache(_testlist_html_groups, max_entries=4)


def _testlist_group(prefix: str, items) -> dict:
    entries = []
    for item in items if isinstance(items, list) else []:
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
    return {"prefix": prefix, "packages": entries}


# Release health -------------------------------------------------------------------------------------------


def _health_rows(_path: str, release: str, arches: tuple[str, ...], after: str | None, limit: int) -> list:
    return history.release_health(context.get_db(), release, list(arches), after, limit)


#: Per published DB file: a page of 200 packages walks ~1,200 test histories (~30 ms at 10M results)
#: and its answer changes only when publish-db replaces the file.
_health_cache: FileCache[list] = FileCache(_health_rows)


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
    entries = _health_cache.get(context.public_db_path(), release, tuple(arches), after, limit)
    # One result_views call for the page's results: their tests are looked up together.
    found = [entry.results[each] for entry in entries for each in arches if each in entry.results]
    views = iter(links.result_views(conn, found))
    site = links.site()
    for entry in entries:
        cells = []
        for each in arches:
            cells.append(
                {
                    "arch": each,
                    "result": next(views) if each in entry.results else None,
                    "retry_url": links.retry_url(
                        release, each, entry.package, [results.MIGRATION_REFERENCE], site=site
                    ),
                }
            )
        rows.append({"package": entry.package, "version": entry.version, "cells": cells})
    more = None
    if len(entries) == limit:
        base = f"{site_url()}/releases/{release}" + (f"/{arch}" if arch else "")
        more = f"{base}?{urllib.parse.urlencode({'after': entries[-1].package, 'limit': limit})}"
    return {"release": release, "arch": arch, "arches": arches, "packages": rows, "after": after, "more_url": more}
