# SPDX-License-Identifier: GPL-3.0-or-later
"""``/packages/…``: package matrix, release page, history, run page and log viewer.

The path shapes are disambiguated as docs/formats.rst, Routes says: the first segment
is a prefix iff it equals the prefix of the second (``h/hello``,
``libp/libpng``); run ids end with ``@``. Each page also answers at
``/api/v1/packages/…`` with the same data.
"""

from __future__ import annotations

import logging

import flask

from webcontrol import history, logviewer, newest, results
from webcontrol.store import ContainerNotFound, InvalidRequest, ObjectNotFound, StoreError
from webcontrol.web.appbase import BadRequest, NotFound, ServiceUnavailable
from webcontrol.web.browse import context, links, live_views
from webcontrol.web.browse.api import (
    API_PREFIX,
    RESULT_SCHEMA,
    RESULTS_LIST,
    describe,
    object_schema,
    page,
    query_param,
)
from webcontrol.web.browse.live_cache import app_values

log = logging.getLogger(__name__)

bp = flask.Blueprint("packages", __name__)


def _check_package(package: str) -> None:
    if not results.is_package_name(package):
        raise NotFound(f"{package!r} is not a valid package name")


def _check_name(value: str, what: str) -> None:
    if not results.SERIES_RE.match(value) and not results.ARCH_RE.match(value):
        raise NotFound(f"{what} {value!r} is not valid")


def _is_prefix(first: str, package: str) -> bool:
    return results.is_package_name(package) and first == results.srchash(package)


# Route dispatch -------------------------------------------------------------------------------

_HISTORY_PARAMS = [
    query_param("limit", "results per page, 1..10000 (default 100)", "integer", 1, 10000),
    query_param("before", "only results with run_id < this (keyset paging)"),
    query_param("offset", f"skip this many results, 0..{history.OFFSET_MAX} (compatibility)", "integer"),
]


@page(bp, "/packages/<a>", "", "", document=False, endpoint="packages1")
def packages1(a: str):
    return package_data(a)


@page(bp, "/packages/<a>/<b>", "", "", document=False, endpoint="packages2")
def packages2(a: str, b: str):
    if _is_prefix(a, b):
        return package_data(b)
    return package_data(a, release=b)


@page(bp, "/packages/<a>/<b>/<c>", "", "", document=False, endpoint="packages3")
def packages3(a: str, b: str, c: str):
    if _is_prefix(a, b):
        return package_data(b, release=c)
    return history_data(a, b, c)


@page(bp, "/packages/<a>/<b>/<c>/<d>", "", "", document=False, endpoint="packages4")
def packages4(a: str, b: str, c: str, d: str):
    if _is_prefix(a, b):
        return history_data(b, c, d)
    if d.endswith("@"):
        return run_data(a, b, c, d)
    raise NotFound(f"no such page: /packages/{a}/{b}/{c}/{d}")


@page(bp, "/packages/<a>/<b>/<c>/<d>/<e>", "", "", document=False, endpoint="packages5")
def packages5(a: str, b: str, c: str, d: str, e: str):
    if _is_prefix(a, b) and e.endswith("@"):
        return run_data(b, c, d, e)
    if e == "log" and d.endswith("@"):
        return log_data(a, b, c, d)
    raise NotFound("no such page")


@page(bp, "/packages/<a>/<b>/<c>/<d>/<e>/<f>", "", "", document=False, endpoint="packages6")
def packages6(a: str, b: str, c: str, d: str, e: str, f: str):
    if _is_prefix(a, b) and e.endswith("@") and f == "log":
        return log_data(b, c, d, e)
    raise NotFound("no such page")


_MATRIX = object_schema(
    package={"type": "string"},
    releases={"type": "array", "items": {"type": "string"}},
    arches={"type": "array", "items": {"type": "string"}},
    has_results={"type": "boolean"},
    matrix={
        "type": "array",
        "items": object_schema(
            arch={"type": "string"},
            cells={"type": "array", "items": object_schema(release={"type": "string"}, result=RESULT_SCHEMA)},
        ),
    },
    running={"type": "array", "items": {"type": "object"}},
    queued={"type": "array", "items": {"type": "object"}},
)
_HISTORY = object_schema(
    results=RESULTS_LIST,
    running={"type": "array", "items": {"type": "object"}},
    queued={"type": "array", "items": {"type": "object"}},
    older_url={"type": "string", "nullable": True},
)
_RUN = object_schema(run=RESULT_SCHEMA)
_LOG = object_schema(run=RESULT_SCHEMA, log=object_schema(triggers={"type": "array"}, sections={"type": "array"}))

for _path, _summary, _params, _schema in (
    ("/packages/<package>", "Package matrix: newest result per release and arch, running and queued jobs", (), _MATRIX),
    ("/packages/<prefix>/<package>", "Package matrix (prefix form)", (), _MATRIX),
    ("/packages/<prefix>/<package>/<release>", "Package matrix restricted to one release", (), _MATRIX),
    ("/packages/<package>/<release>/<arch>", "Test history, newest first", _HISTORY_PARAMS, _HISTORY),
    ("/packages/<prefix>/<package>/<release>/<arch>", "Test history (prefix form)", _HISTORY_PARAMS, _HISTORY),
    ("/packages/<prefix>/<package>/<release>/<arch>/<run_id>", "One run", (), _RUN),
    ("/packages/<prefix>/<package>/<release>/<arch>/<run_id>/log", "Log split into sections", (), _LOG),
):
    describe(bp, API_PREFIX + _path, _summary, list(_params), _schema)


@bp.route("/packages")
def package_search():
    """The home page's package box without JavaScript: ``/packages?package=hello``."""
    name = (flask.request.args.get("package") or "").strip()
    if not name:
        raise BadRequest("give a package name: /packages/<name>")
    _check_package(name)
    return flask.redirect(links.package_url(name), 302)


# Package page ------------------------------------------------------------------------------


#: Package matrices kept per web process, the least recently asked for dropped first.
PACKAGE_MATRICES = 64


def _matrix_views(conn, package: str) -> tuple[dict, dict]:
    """``(matrix, views)``: a package's newest result per (release, arch) and their views.

    Kept per published DB file (inode, mtime, size) and site URL, of which
    they are a function: a package page reads and classifies them once per
    publish. Views are shared by the requests that get them, which must not
    change them.
    """
    kept = app_values("browse_package_matrices", PACKAGE_MATRICES)

    def compute() -> tuple[dict, dict]:
        matrix = history.package_matrix(conn, package)
        rows = list(matrix.values())
        views = dict(zip([(r.release, r.arch) for r in rows], links.result_views(conn, rows), strict=True))
        return matrix, views

    return kept.get((context.public_db_identity(), links.site(), package), compute)


def package_data(package: str, release: str | None = None) -> dict:
    _check_package(package)
    conn = context.get_db()
    catalogue = context.catalogue()
    if release is not None:
        _check_name(release, "release")
        releases = [release]
    else:
        releases = list(catalogue.releases)
    matrix, views = _matrix_views(conn, package)
    arches = sorted({arch for (rel, arch) in matrix if rel in releases})
    table = [
        {"arch": arch, "cells": [{"release": rel, "result": views.get((rel, arch))} for rel in releases]}
        for arch in arches
    ]
    return {
        "page": "package",
        "package": package,
        "release": release,
        "prefix": results.srchash(package),
        "releases": releases,
        "arches": arches,
        "matrix": table,
        "has_results": bool(matrix),
        "running": live_views.running_for(package, release=release),
        "queued": live_views.queued_for(package, release=release),
        "launchpad_url": links.launchpad_source_url(package),
        "excuses_url": links.excuses_url(package),
        "history_urls": {rel: {arch: links.history_url(package, rel, arch) for arch in arches} for rel in releases},
    }


# History ------------------------------------------------------------------------------------------


def history_data(package: str, release: str, arch: str) -> dict:
    _check_package(package)
    _check_name(release, "release")
    _check_name(arch, "arch")
    limit = context.limit_param()
    offset = context.offset_param()
    before = context.before_param()
    conn = context.get_db()
    test = history.find_test(conn, package, release, arch)
    first_page = before is None and offset == 0
    older = None
    if test and limit > newest.LAZY_ROWS and not offset:
        # A long history is read while it is sent: its head leaves first (the chart needs every row).
        found = newest.history_page(conn, test.id, limit, before)
        rows, oldest = found.rows, found.next_before
    else:
        rows = history.history(conn, test, limit, before, offset) if test else []
        oldest = rows[-1].run_id if len(rows) == limit else None
    if oldest:
        older = f"{links.history_url(package, release, arch)}?before={oldest}&limit={limit}"
    views = links.page_views(conn, rows, newest_retry_only=True)
    newest_view = None
    if isinstance(views, list):
        newest_view = views[0] if views else None
    elif rows:
        first = rows.first() if isinstance(rows, newest.LazyRows) else rows[0]
        newest_view = links.result_views(conn, [first], True)[0] if first else None
    return {
        "page": "history",
        "package": package,
        "release": release,
        "arch": arch,
        "limit": limit,
        "before": before,
        "offset": offset,
        "results": views,
        # The page's retry form offers the newest run (a streamed page cannot be indexed).
        "retry_newest": [newest_view] if newest_view and newest_view["show_retry"] else [],
        "running": live_views.running_for(package, release, arch) if first_page else [],
        "queued": live_views.queued_for(package, release, arch) if first_page else [],
        "older_url": older,
        "newest_url": None if first_page else links.history_url(package, release, arch),
        "package_url": links.package_url(package),
    }


# Run page ----------------------------------------------------------------------------------------


def run_view_data(found: history.Result) -> dict:
    conn = context.get_db()
    view = links.result_views(conn, [found])[0]
    return {"page": "run", "run": view, "package_url": links.package_url(found.package)}


def run_data(package: str, release: str, arch: str, run_id: str) -> dict:
    _check_package(package)
    if not results.is_run_id(run_id):
        raise NotFound(f"{run_id!r} is not a run id")
    found = history.result_by_run_id(context.get_db(), package, release, arch, run_id)
    if found is None:
        raise NotFound(f"run {run_id} of {package} on {release}/{arch} not found")
    return run_view_data(found)


# Log viewer ----------------------------------------------------------------------------------------


def _open_log(container: str, name: str, missing: str):
    try:
        return context.store().open_object(container, name)
    except (ObjectNotFound, ContainerNotFound, InvalidRequest):
        raise NotFound(missing) from None
    except StoreError as err:
        log.error("cannot fetch %s/%s: %s", container, name, err)
        raise ServiceUnavailable("The result store is not answering; please try again later.") from None


def _fetch_log(container: str, name: str, missing: str) -> logviewer.ParsedLog:
    """The parsed log, streamed from the store and cut at logviewer.MAX_LOG_BYTES of text."""
    stream = _open_log(container, name, missing)
    try:
        return logviewer.parse_gzip(stream.chunks)
    except logviewer.LogError as err:
        # Not gzip after all: show the raw start of the object (docs/formats.rst, Logs).
        log.warning("log %s/%s unreadable: %s", container, name, err)
    finally:
        stream.close()
    stream = _open_log(container, name, missing)
    try:
        raw = bytearray()
        for chunk in stream.chunks:
            raw += chunk[: logviewer.MAX_LOG_BYTES - len(raw)]
            if len(raw) >= logviewer.MAX_LOG_BYTES:
                return logviewer.parse(raw.decode("utf-8", errors="replace"), truncated=True)
        return logviewer.parse(raw.decode("utf-8", errors="replace"))
    finally:
        stream.close()


def log_data(package: str, release: str, arch: str, run_id: str) -> dict:
    _check_package(package)
    _check_name(release, "release")
    _check_name(arch, "arch")
    if not results.is_run_id(run_id):
        raise NotFound(f"{run_id!r} is not a run id")
    container = results.distro_container(release)
    name = f"{results.run_dir(release, arch, package, run_id)}/log.gz"
    parsed = _fetch_log(container, name, f"log of run {run_id} of {package} on {release}/{arch} not found")
    found = history.result_by_run_id(context.get_db(), package, release, arch, run_id)
    return {
        "page": "log",
        "package": package,
        "release": release,
        "arch": arch,
        "run_id": run_id,
        "run": links.result_views(context.get_db(), [found])[0] if found else None,
        "log_url": links.run_object_url(release, arch, package, run_id, "log.gz"),
        "history_url": links.history_url(package, release, arch),
        "log": parsed.to_json(),
    }
