# SPDX-License-Identifier: GPL-3.0-or-later
"""``/user/<user>/``: a requester's queued, running and finished tests, and their PPA results."""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections import OrderedDict

import flask

from webcontrol import history, results
from webcontrol.atomicfile import read_json
from webcontrol.store import ContainerNotFound, InvalidRequest, StoreError
from webcontrol.web.appbase import NotFound, ServiceUnavailable
from webcontrol.web.browse import context, links, live_views
from webcontrol.web.browse.api import API_PREFIX, RESULTS_LIST, object_schema, page, query_param

log = logging.getLogger(__name__)

bp = flask.Blueprint("users", __name__)

SHOW_MORE_LIMIT = 10000
#: A user page lists this many queued requests and running jobs at most, with their totals and a link
#: to the next ones: a requester may have thousands queued, and the page must not grow with the queue.
QUEUED_SHOWN = 100
RUNNING_SHOWN = 50
SWIFT_CONTAINER_NAME_MAX = 256
#: A PPA container's listing is reused for this many seconds (a PPA page lists one container per release).
PPA_LISTING_SECONDS = 60.0
#: Listings kept per process, least recently used dropped first.
PPA_LISTINGS_MAX = 64

_USER_PARAMS = [
    query_param("limit", "results per page, 1..10000 (default 100)", "integer", 1, 10000),
    query_param("before", "only results with run_id < this (keyset paging; the next link uses it)"),
    query_param("offset", f"skip this many results, 0..{history.OFFSET_MAX} (old links; use before)", "integer"),
    query_param("queued-offset", f"skip this many queued requests (the page lists {QUEUED_SHOWN})", "integer", 0),
    query_param("running-offset", f"skip this many running jobs (the page lists {RUNNING_SHOWN})", "integer", 0),
    query_param("show-running", "false hides running jobs"),
    query_param("show-queued", "false hides queued requests"),
    query_param("show-results", "false hides finished results"),
    query_param("only-results", "present: results only"),
]


def _check_user(user: str) -> None:
    if not results.is_launchpad_name(user):
        raise NotFound(f"{user!r} is not a valid Launchpad user name")


@bp.route("/user/<user>")
@bp.route(API_PREFIX + "/user/<user>")
def user_redirect(user: str):
    """The canonical user page ends with a slash (docs/formats.rst, Routes)."""
    # An invalid name is a 404 here too; redirecting would put it (CR/LF included) into a Location header.
    _check_user(user)
    target = flask.request.path + "/"
    if flask.request.query_string:
        target += "?" + flask.request.query_string.decode("latin-1")
    return flask.redirect(target, 301)


def _page_url(user: str, drop: tuple[str, ...] = (), **query) -> str:
    args = {key: value for key, value in flask.request.args.items() if key not in drop}
    args.update({key: str(value) for key, value in query.items()})
    return f"{links.user_url(user)}?{urllib.parse.urlencode(args)}"


@page(
    bp,
    "/user/<user>/",
    "user.html",
    "A requester's queued, running and finished tests",
    _USER_PARAMS,
    object_schema(
        results=RESULTS_LIST,
        running={"type": "array"},
        queued={"type": "array"},
        running_total={"type": "integer"},
        queued_total={"type": "integer"},
    ),
)
def user_page(user: str):
    _check_user(user)
    limit = context.limit_param()
    offset = context.offset_param()
    before = context.before_param()
    only_results = "only-results" in flask.request.args
    show_running = context.flag_param("show-running") and not only_results
    show_queued = context.flag_param("show-queued") and not only_results
    show_results = context.flag_param("show-results")
    conn = context.get_db()
    found = (
        history.user_page(
            conn, user, limit, offset, requester_run_index=context.catalogue().requester_run_index, before=before
        )
        if show_results
        else history.Page([], None)
    )
    rows = found.rows
    queued_offset = context.int_param("queued-offset", 0, 0)
    running_offset = context.int_param("running-offset", 0, 0)
    queued, queued_total = (
        live_views.queued_window(requester=user, offset=queued_offset, limit=QUEUED_SHOWN) if show_queued else ([], 0)
    )
    running, running_total = (
        live_views.running_window(requester=user, offset=running_offset, limit=RUNNING_SHOWN)
        if show_running
        else ([], 0)
    )
    return {
        "user": user,
        "limit": limit,
        "offset": offset,
        "show": {"running": show_running, "queued": show_queued, "results": show_results},
        "queued": queued,
        "queued_total": queued_total,
        "queued_offset": queued_offset,
        "running": running,
        "running_total": running_total,
        "running_offset": running_offset,
        "results": links.page_views(conn, rows),
        "launchpad_url": links.requester_url(user),
        "links": {
            "summary": links.user_url(user),
            "queued": _page_url(user, **{"show-running": "false", "show-results": "false"}),
            "running": _page_url(user, **{"show-queued": "false", "show-results": "false"}),
            "results": f"{links.user_url(user)}?only-results=1",
            "ppa": f"{links.user_url(user)}ppa",
            "previous": _page_url(user, offset=max(0, offset - limit)) if offset > 0 and not before else None,
            # Keyset paging: the next page starts below this page's oldest run, however deep it is.
            "next": _page_url(user, before=found.next_before, drop=("offset",)) if found.next_before else None,
            "show_more": _page_url(user, limit=SHOW_MORE_LIMIT, offset=0) if len(rows) == limit else None,
            **_live_links(user, "queued", queued_offset, len(queued), queued_total, QUEUED_SHOWN),
            **_live_links(user, "running", running_offset, len(running), running_total, RUNNING_SHOWN),
        },
    }


def _live_links(user: str, kind: str, offset: int, shown: int, total: int, page_size: int) -> dict:
    """``<kind>_next``/``<kind>_previous``: the neighbouring pages of the queued or running list, else None.

    They show that list alone, so paging through a long queue does not repeat the rest of the page.
    """
    others = [name for name in ("queued", "running") if name != kind]
    alone = {f"show-{others[0]}": "false", "show-results": "false"}
    key = f"{kind}-offset"
    return {
        f"{kind}_next": _page_url(user, **alone, **{key: offset + shown}) if offset + shown < total else None,
        f"{kind}_previous": _page_url(user, **alone, **{key: max(0, offset - page_size)}) if offset > 0 else None,
    }


# PPAs ------------------------------------------------------------------------------------------------


def _known_releases() -> list[str]:
    catalogue = context.catalogue()
    return sorted(set(catalogue.releases) | set(catalogue.arches), key=len, reverse=True)


def _user_ppas(user: str) -> dict[str, list[str]]:
    """``ppa -> releases`` from ppa_containers.json, parsing names exactly (docs/formats.rst, Routes)."""
    folder = context.config().get("web", "ppa_containers_cache_dir")
    names = read_json(os.path.join(folder, "ppa_containers.json") if folder else None, [])
    order = context.catalogue().releases
    found: dict[str, set[str]] = {}
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str):
            continue
        for release in _known_releases():
            ppa = results.ppa_of_container(name, release, user)
            if ppa is not None:
                found.setdefault(ppa, set()).add(release)
                break
    return {
        ppa: sorted(rels, key=lambda r: (order.index(r) if r in order else len(order), r))
        for ppa, rels in sorted(found.items())
    }


@page(bp, "/user/<user>/ppa", "user_ppas.html", "A user's PPAs with results")
def user_ppas(user: str):
    _check_user(user)
    ppas = _user_ppas(user)
    return {
        "user": user,
        "ppas": [
            {"ppa": ppa, "releases": rels, "url": f"{links.user_url(user)}ppa/{urllib.parse.quote(ppa)}"}
            for ppa, rels in ppas.items()
        ],
    }


class _Listings:
    """Recent PPA container listings: ``container -> (time, log.gz names)``; None for a missing container."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, list[str] | None]] = OrderedDict()

    def log_names(self, container: str) -> list[str] | None:
        """Raises StoreError (other than a missing container), which is not remembered."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(container)
            if entry is not None and now - entry[0] < PPA_LISTING_SECONDS:
                self._entries.move_to_end(container)
                return entry[1]
        try:
            names = [info.name for info in context.store().iter_objects(container, page_size=10000)]
            found = [name for name in names if name.endswith("/log.gz")]
        except (ContainerNotFound, InvalidRequest):
            found = None
        with self._lock:
            self._entries[container] = (now, found)
            self._entries.move_to_end(container)
            while len(self._entries) > PPA_LISTINGS_MAX:
                self._entries.popitem(last=False)
        return found


def _listings() -> _Listings:
    return flask.current_app.extensions.setdefault("browse_ppa_listings", _Listings())


@page(bp, "/user/<user>/ppa/<ppa>", "user_ppa.html", "Results of one PPA, grouped by package")
def user_ppa(user: str, ppa: str):
    _check_user(user)
    if not results.is_ppa_name(ppa):
        raise NotFound(f"{ppa!r} is not a valid PPA name")
    packages: dict[str, list[dict]] = {}
    for release in context.catalogue().releases:
        container = results.ppa_container(release, f"{user}/{ppa}")
        if len(container.encode("utf-8")) > SWIFT_CONTAINER_NAME_MAX:
            continue  # no such container can exist (Swift would answer 400, not "not found")
        try:
            names = _listings().log_names(container)
        except StoreError as err:
            log.error("cannot list %s: %s", container, err)
            raise ServiceUnavailable("The result store is not answering; please try again later.") from None
        for name in names or []:
            parsed = results.parse_run_dir(name)
            if parsed is None:
                continue
            rel, arch, package, run_id = parsed
            directory = name[: -len("/log.gz")]
            packages.setdefault(package, []).append(
                {
                    "release": rel,
                    "arch": arch,
                    "run_id": run_id,
                    "date": results.human_date(run_id),
                    "log_url": links.object_url(container, f"{directory}/log.gz"),
                    "artifacts_url": links.object_url(container, f"{directory}/artifacts.tar.gz"),
                }
            )
    groups = []
    for package in sorted(packages):
        runs = sorted(packages[package], key=lambda run: run["run_id"], reverse=True)
        groups.append({"package": package, "runs": runs})
    return {"user": user, "ppa": ppa, "packages": groups}
