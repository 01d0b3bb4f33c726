# SPDX-License-Identifier: GPL-3.0-or-later
"""What changed since the test last passed: testbed-packages of a failing run against the last passing run.

``/packages/<pkg>/<rel>/<arch>/<run_id>/changes`` (and its ``/api/v1``
twin) compares the ``testbed-packages`` member of both runs' result.tar
(read from the result store) and lists packages added, removed, upgraded
and downgraded (Debian version order). The template global
``insight_run_changes(run)`` gives the same data to
``partials/package_diff.html`` on the run page.

The last passing run is searched among the :data:`PASS_SCAN` results
before the failing one (a bounded primary-key walk).
"""

from __future__ import annotations

import logging

from webcontrol import history, insight, results, resulttar
from webcontrol.store import ContainerNotFound, InvalidRequest, ObjectNotFound, StoreError
from webcontrol.web.appbase import NotFound
from webcontrol.web.browse import context, links, page_cache
from webcontrol.web.browse.api import page
from webcontrol.web.browse.insight import bp
from webcontrol.web.browse.insight.common import check_package, check_prefix, check_release_arch, check_run_id
from webcontrol.web.browse.live_cache import app_values

log = logging.getLogger(__name__)

PASS_SCAN = 500
#: Parsed testbed-package lists kept per app (only successes: a missing result may appear later).
CACHE_RUNS = 512
_CACHE = "insight_testbed_packages"


class Unavailable(Exception):
    """The testbed packages of a run cannot be read."""


def _testbed_packages(release: str, arch: str, package: str, run_id: str) -> dict[str, str]:
    """A run's testbed packages; cached per app, since a stored result.tar never changes.

    Without the cache every view of a failing run's page costs two store GETs.
    """
    return app_values(_CACHE, CACHE_RUNS).get(
        (release, arch, package, run_id), lambda: _read_testbed_packages(release, arch, package, run_id)
    )


def _read_testbed_packages(release: str, arch: str, package: str, run_id: str) -> dict[str, str]:
    name = f"{results.run_dir(release, arch, package, run_id)}/result.tar"
    container = results.distro_container(release)
    store = context.store()
    try:
        tar = resulttar.parse(store.get_object(container, name))
    except (ObjectNotFound, ContainerNotFound, InvalidRequest):
        _page_shows_missing(store, container, name)
        raise Unavailable(f"result.tar of run {run_id} is not in the result store") from None
    except StoreError as err:
        log.warning("cannot fetch %s/%s: %s", container, name, err)
        page_cache.not_kept()
        raise Unavailable("the result store is not answering") from None
    except resulttar.DamagedResult as err:
        log.warning("%s/%s: %s", container, name, err)
        page_cache.not_kept()
        raise Unavailable(f"result.tar of run {run_id} is damaged") from None
    if tar.testbed_packages is None:
        page_cache.not_kept()
        raise Unavailable(f"run {run_id} did not record its testbed packages")
    return insight.parse_testbed_packages(tar.testbed_packages)


def _page_shows_missing(store, container: str, name: str) -> None:
    """A page that says the object is missing is kept for anonymous visitors only while a stat says so."""
    try:
        path = store.local_file(container, name)
    except InvalidRequest:
        path = None
    if path is None:
        page_cache.not_kept()
    else:
        page_cache.depends_on_missing(path)


def run_changes(conn, found: history.Result) -> dict:
    """The diff data for one stored run (never raises for store problems: they become ``unavailable``)."""
    data: dict = {"run_id": found.run_id, "result": found.result_name, "applicable": False, "base": None}
    if results.verdict(found.exitcode) != "fail":
        data["reason"] = "the run did not fail"
        return data
    test = history.find_test(conn, found.package, found.release, found.arch)
    base = insight.last_passing_run(conn, test.id, found.run_id, PASS_SCAN) if test else None
    if base is None:
        data["reason"] = f"no passing run among the {PASS_SCAN} runs before this one"
        return data
    data["base"] = {
        "run_id": base.run_id,
        "version": base.version,
        "date": results.human_date(base.run_id),
        "url": links.run_page_url(found.package, found.release, found.arch, base.run_id),
    }
    try:
        old = _testbed_packages(found.release, found.arch, found.package, base.run_id)
        new = _testbed_packages(found.release, found.arch, found.package, found.run_id)
    except Unavailable as err:
        data["reason"] = str(err)
        return data
    data["applicable"] = True
    data["reason"] = None
    data["diff"] = insight.package_diff(old, new)
    data["counts"] = {key: len(value) for key, value in data["diff"].items()}
    return data


#: Run pages' changes kept per app, with the DB file and site URL they were made on.
_KEPT = "insight_run_changes"


@bp.app_template_global("insight_run_changes")
def insight_run_changes(run: dict) -> dict | None:
    """For partials/package_diff.html: the changes of a run view dict (None if the run is unknown).

    Kept per published DB file (the last passing run is found in it) and
    site URL (links) when they are final: the run did not fail, no run
    passed before it, or both runs' testbed packages were read (a stored
    result.tar never changes). An answer that depends on the result store
    being reachable, or a result.tar that may appear later, is made anew
    on the next request. A failing run's page polled by its requester would
    otherwise read the DB and diff both package lists on every request.
    """
    key = (context.public_db_identity(), links.site(), run["package"], run["release"], run["arch"], run["run_id"])
    kept = app_values(_KEPT, CACHE_RUNS)

    def changes_of_run() -> dict | None:
        found = history.result_by_run_id(context.get_db(), run["package"], run["release"], run["arch"], run["run_id"])
        return None if found is None else run_changes(context.get_db(), found)

    return kept.get(
        key, changes_of_run, keep=lambda data: data is not None and (data["applicable"] or data["base"] is None)
    )


@page(
    bp,
    [
        "/packages/<package>/<release>/<arch>/<run_id>/changes",
        "/packages/<prefix>/<package>/<release>/<arch>/<run_id>/changes",
    ],
    "insight/changes.html",
    "Testbed packages changed since the last passing run",
)
def changes(package: str, release: str, arch: str, run_id: str, prefix: str | None = None):
    check_package(package)
    check_prefix(prefix, package)
    check_release_arch(release, arch)
    check_run_id(run_id)
    conn = context.get_db()
    found = history.result_by_run_id(conn, package, release, arch, run_id)
    if found is None:
        raise NotFound(f"run {run_id} of {package} on {release}/{arch} not found")
    data = run_changes(conn, found)
    data.update(
        package=package,
        release=release,
        arch=arch,
        run_url=links.run_page_url(package, release, arch, run_id),
        history_url=links.history_url(package, release, arch),
    )
    return data
