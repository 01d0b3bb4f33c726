# SPDX-License-Identifier: GPL-3.0-or-later
"""Canonical links of the site and the JSON-ready view of a result row.

The URL forms are fixed by docs/formats.rst, Pages and API (britney, ppa-dev-tools and
autopkgtest-cli build or parse the same strings), so they are built here in
one place rather than through ``url_for`` of the catch-all package routes.
Every path segment is percent-quoted; templates escape the whole URL.
"""

from __future__ import annotations

import functools
import itertools
import re
import urllib.parse
from collections.abc import Iterable, Sequence

import flask

from webcontrol import results
from webcontrol.history import Result, classify_results
from webcontrol.web.appbase import app_config, site_url
from webcontrol.web.browse.api import StreamedList

LAUNCHPAD = "https://launchpad.net"
EXCUSES = "https://ubuntu-archive-team.ubuntu.com/proposed-migration"


# Names that passed validation (packages, releases, arches, run ids, uuids) need no quoting.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~@+:-]*\Z")


def _q(segment: str) -> str:
    if _URL_SAFE.match(segment):
        return segment
    return urllib.parse.quote(segment, safe="@+:~")


def _site() -> str:
    """``<site>``, computed once per request (pages build hundreds of links)."""
    if "links_site" not in flask.g:
        flask.g.links_site = site_url()
    return flask.g.links_site


def site() -> str:
    """``<site>`` for other modules (cached per request like every link here)."""
    return _site()


def results_base() -> str:
    if "links_results" not in flask.g:
        flask.g.links_results = app_config().external_results_url(_site())
    return flask.g.links_results


def object_url(container: str, path: str) -> str:
    return f"{results_base()}/{_q(container)}/{'/'.join(_q(part) for part in path.split('/'))}"


def run_object_url(release: str, arch: str, package: str, run_id: str, name: str) -> str:
    return object_url(results.distro_container(release), f"{results.run_dir(release, arch, package, run_id)}/{name}")


def package_url(package: str, release: str | None = None) -> str:
    base = f"{_site()}/packages/{_q(results.srchash(package))}/{_q(package)}"
    return f"{base}/{_q(release)}" if release else base


def history_url(package: str, release: str, arch: str) -> str:
    return f"{package_url(package)}/{_q(release)}/{_q(arch)}"


def run_page_url(package: str, release: str, arch: str, run_id: str) -> str:
    return f"{history_url(package, release, arch)}/{_q(run_id)}"


def uuid_url(uuid: str) -> str:
    return f"{_site()}/run/{_q(uuid)}"


def log_viewer_url(package: str, release: str, arch: str, run_id: str) -> str:
    return f"{run_page_url(package, release, arch, run_id)}/log"


def user_url(user: str) -> str:
    return f"{_site()}/user/{_q(user)}/"


def retry_url(
    release: str, arch: str, package: str, triggers: Iterable[str], all_proposed: bool = False, site: str | None = None
) -> str:
    """The request.cgi link britney also builds (docs/formats.rst, Pages and API); ``site``: :func:`site`, if known."""
    query = f"release={_qv(release)}&arch={_qv(arch)}&package={_qv(package)}"
    query += "".join(f"&trigger={_qv(trigger)}" for trigger in triggers)
    if all_proposed:
        query += "&all-proposed=1"
    return f"{site or _site()}/request.cgi?{query}"


# Characters urlencode() leaves as they are in a query value.
_QUERY_SAFE = re.compile(r"^[A-Za-z0-9_.~-]*\Z")


@functools.lru_cache(maxsize=4096)
def _qv(value: str) -> str:
    """A query value as ``urllib.parse.urlencode`` writes it (a release page builds ~1,200 retry links)."""
    return value if _QUERY_SAFE.match(value) else urllib.parse.quote_plus(value)


def launchpad_source_url(package: str, release: str | None = None) -> str:
    middle = f"{_q(release)}/" if release else ""
    return f"{LAUNCHPAD}/ubuntu/{middle}+source/{_q(package)}"


def excuses_url(package: str, release: str | None = None) -> str:
    middle = f"{_q(release)}/" if release else ""
    return f"{EXCUSES}/{middle}update_excuses.html#{_q(package)}"


def requester_url(nick: str) -> str:
    return f"{LAUNCHPAD}/~{_q(nick)}"


def dsc_url(package: str, version: str) -> str:
    return f"{LAUNCHPAD}/ubuntu/+archive/primary/+files/{_q(package)}_{_q(version)}.dsc"


def _date(run_id: str) -> str:
    # Slicing a validated run id gives the same text as results.human_date, without strptime's cost.
    if results.RUN_ID_RE.match(run_id):
        return f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]} UTC"
    return results.human_date(run_id)


def result_view(result: Result, classification: str | None = None, retry: bool = True) -> dict:
    """A result as pages and JSON twins show it (one shape for every page)."""
    name = result.result_name
    triggers = result.trigger_list
    show_retry = retry and results.show_retry(result.exitcode) and bool(triggers)
    history = history_url(result.package, result.release, result.arch)
    run_page = f"{history}/{_q(result.run_id)}"
    objects = f"{results_base()}/{_q(results.distro_container(result.release))}/" + "/".join(
        _q(part) for part in results.run_dir(result.release, result.arch, result.package, result.run_id).split("/")
    )
    return {
        "package": result.package,
        "release": result.release,
        "arch": result.arch,
        "run_id": result.run_id,
        "version": result.version,
        "triggers": result.triggers or "",
        "trigger_list": triggers,
        "env": result.env or "",
        "all_proposed": result.all_proposed,
        "date": _date(result.run_id),
        "duration": result.duration,
        "human_duration": results.human_duration(result.duration),
        "requester": result.requester or "",
        "exitcode": result.exitcode,
        "result": name,
        "classification": classification,
        "uuid": result.uuid,
        "run_url": uuid_url(result.uuid) if result.uuid else run_page,
        "history_url": history,
        "log_url": f"{objects}/log.gz",
        "log_viewer_url": f"{run_page}/log",
        "artifacts_url": f"{objects}/artifacts.tar.gz",
        "show_retry": show_retry,
        "retry_url": retry_url(result.release, result.arch, result.package, triggers, result.all_proposed)
        if show_retry
        else None,
    }


def result_views(conn, rows: list[Result], newest_retry_only: bool = False) -> list[dict]:
    """Views of a page of rows with their classification.

    With ``newest_retry_only`` (history pages) only the newest row of each
    (version, triggers) pair keeps its ♻ link (docs/formats.rst, Pages and API).
    """
    return list(_views(conn, rows, newest_retry_only, set()))


def _views(conn, rows: list[Result], newest_retry_only: bool, seen: set[tuple]):
    for row, classification in zip(rows, classify_results(conn, rows), strict=True):
        retry = True
        if newest_retry_only:
            key = (row.version, row.triggers)
            retry = key not in seen
            seen.add(key)
        yield result_view(row, classification, retry)


#: Pages with more rows than this are sent while they are rendered (see LazyViews).
STREAM_ROWS = 500


class LazyViews(StreamedList):
    """The views of a big page, made a chunk of rows at a time while the response is sent.

    A page of 10,000 rows would otherwise hold every view and the whole
    rendered page in memory before the first byte leaves.
    """

    def __init__(self, conn, rows: Sequence[Result], newest_retry_only: bool = False, chunk: int = STREAM_ROWS) -> None:
        # ``rows`` may itself be read while the page is sent (webcontrol.newest.LazyRows): iterate, never slice.
        def produce():
            seen: set[tuple] = set()
            pending = iter(rows)
            while block := list(itertools.islice(pending, chunk)):
                yield from _views(conn, block, newest_retry_only, seen)

        super().__init__(produce, len(rows))


def page_views(conn, rows: Sequence[Result], newest_retry_only: bool = False) -> list[dict] | LazyViews:
    """:func:`result_views` for a small page; a :class:`LazyViews` (streamed) for a big one."""
    if len(rows) > STREAM_ROWS:
        return LazyViews(conn, rows, newest_retry_only)
    return result_views(conn, rows, newest_retry_only)
