# SPDX-License-Identifier: GPL-3.0-or-later
"""Atom feeds with one entry per state change (not per run), newest first.

A state change is defined in :mod:`webcontrol.insight` (pass → fail,
fail → pass, → neutral, → denylisted; tmpfail never changes the state).

- ``/packages/<pkg>/feed.atom``: changes of every test of the package;
- ``/packages/<pkg>/<rel>/<arch>/feed.atom``: changes of one test;
- ``/user/<user>/feed.atom``: runs the user requested that changed their
  test's state (compared with the test's earlier runs, whoever asked).

Each test is read from its newest :data:`SCAN` results (:data:`PACKAGE_SCAN`
in a package feed; a primary-key walk), so a feed costs the same for a long
history as for a short one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import flask

from webcontrol import history, insight, results
from webcontrol.web.appbase import NotFound, site_url
from webcontrol.web.browse import context, links
from webcontrol.web.browse.insight import bp
from webcontrol.web.browse.insight.common import browse_fallback, check_package, check_prefix, check_release_arch

SCAN = 100
#: A package feed merges many tests into ENTRIES entries, so each test is read less deeply.
PACKAGE_SCAN = 50
ENTRIES = 50
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@dataclass(frozen=True)
class Entry:
    result: history.Result
    previous: str | None
    current: str
    classification: str | None


def _atom_time(run_id: str) -> str:
    try:
        return results.run_id_time(run_id).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return "1970-01-01T00:00:00Z"


def test_changes(conn, test: history.Test, scan: int = SCAN) -> list[Entry]:
    rows = history.history(conn, test, scan)
    complete = len(rows) < scan
    entries = []
    # Only the changes are classified: a feed has far fewer entries than runs.
    for change in insight.state_changes(rows, complete):
        row = rows[change.index]
        earlier = rows[change.index + 1 : change.index + 1 + insight.WINDOW]
        if complete or len(earlier) == insight.WINDOW:
            classification = insight.classify(row, earlier)
        else:
            classification = insight.classification_for(conn, test.id, row.run_id)
        entries.append(Entry(row, change.previous, change.current, classification))
    return entries


def user_changes(conn, user: str) -> list[Entry]:
    entries = []
    test_ids: dict[tuple[str, str, str], int | None] = {}
    for row in history.user_page(conn, user, SCAN).rows:
        current = insight.state(row.exitcode)
        if current is None:
            continue
        key = (row.package, row.release, row.arch)
        if key not in test_ids:
            test_ids[key] = insight.test_id(conn, *key)
        if test_ids[key] is None:
            continue
        earlier = insight.runs_before(conn, test_ids[key], row.run_id, insight.WINDOW)
        previous = next((s for s in (insight.state(r.exitcode) for r in earlier) if s is not None), None)
        if previous == current:
            continue
        if previous is None and len(earlier) == insight.WINDOW:
            continue  # only tmpfails in the window: unknown, so not reported as a change
        entries.append(Entry(row, previous, current, insight.classify(row, earlier)))
    return entries


def _entry_view(entry: Entry) -> dict:
    row = entry.result
    view = links.result_view(row, entry.classification)
    change = f"{entry.previous} → {entry.current}" if entry.previous else f"first result: {entry.current}"
    title = f"{row.package} {row.release}/{row.arch}: {change}"
    if entry.classification and entry.classification not in (entry.current, "pass"):
        title += f" ({entry.classification.replace('_', ' ')})"
    return {
        "id": links.run_page_url(row.package, row.release, row.arch, row.run_id),
        "title": title,
        "updated": _atom_time(row.run_id),
        "view": view,
    }


def _feed(title: str, alternate: str, entries: list[Entry]) -> flask.Response:
    entries = sorted(entries, key=lambda e: e.result.run_id, reverse=True)[:ENTRIES]
    views = [_entry_view(entry) for entry in entries]
    updated = (
        views[0]["updated"] if views else datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    self_url = site_url() + flask.request.path
    body = flask.render_template(
        "insight/feed.atom.xml", title=title, self_url=self_url, alternate=alternate, updated=updated, entries=views
    )
    response = flask.make_response(body)
    response.headers["Content-Type"] = ATOM_TYPE
    response.headers["Cache-Control"] = "max-age=60"
    return response


@bp.route("/packages/<package>/feed.atom")
@bp.route("/packages/<prefix>/<package>/feed.atom")
def package_feed(package: str, prefix: str | None = None):
    fallback = browse_fallback(package, "feed.atom") if prefix is None else None
    if fallback is not None:
        return fallback
    check_package(package)
    check_prefix(prefix, package)
    conn = context.get_db()
    entries = []
    for test in history.tests_of_package(conn, package):
        entries += test_changes(conn, test, PACKAGE_SCAN)
    return _feed(f"autopkgtest: {package}", links.package_url(package), entries)


@bp.route("/packages/<package>/<release>/<arch>/feed.atom")
@bp.route("/packages/<prefix>/<package>/<release>/<arch>/feed.atom")
def test_feed(package: str, release: str, arch: str, prefix: str | None = None):
    check_package(package)
    check_prefix(prefix, package)
    check_release_arch(release, arch)
    conn = context.get_db()
    test = history.find_test(conn, package, release, arch)
    entries = test_changes(conn, test) if test else []
    return _feed(f"autopkgtest: {package} on {release}/{arch}", links.history_url(package, release, arch), entries)


@bp.route("/user/<user>/feed.atom")
def user_feed(user: str):
    if not results.is_launchpad_name(user):
        raise NotFound(f"{user!r} is not a valid user name")
    conn = context.get_db()
    return _feed(f"autopkgtest: tests requested by {user}", links.user_url(user), user_changes(conn, user))
