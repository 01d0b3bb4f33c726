# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the insight views: name checks, current states, the browse fallback."""

from __future__ import annotations

import sqlite3

import flask

from webcontrol import history, insight, results
from webcontrol.web.appbase import NotFound


def check_package(package: str) -> None:
    if not results.is_package_name(package):
        raise NotFound(f"{package!r} is not a valid package name")


def check_prefix(prefix: str | None, package: str) -> None:
    """The ``/packages/<prefix>/<pkg>/…`` form: the prefix must be the package's (docs/formats.rst, Containers and object names)."""
    if prefix is not None and prefix != results.srchash(package):
        raise NotFound(f"{prefix!r} is not the prefix of {package!r}")


def check_release_arch(release: str, arch: str) -> None:
    if not results.SERIES_RE.match(release):
        raise NotFound(f"release {release!r} is not valid")
    if not results.ARCH_RE.match(arch):
        raise NotFound(f"arch {arch!r} is not valid")


def check_run_id(run_id: str) -> None:
    if not results.is_run_id(run_id):
        raise NotFound(f"{run_id!r} is not a run id")


def browse_fallback(first: str, name: str):
    """``/packages/<first>/<name>`` where ``first`` is the prefix of a package named ``name``.

    ``/packages/f/feed.atom`` is the package page of a package called
    ``feed.atom`` (the prefix form of docs/formats.rst, Routes), not a feed of package ``f``
    (no valid package has a one-letter name). Hand it to browse's view;
    None when it is not that case.
    """
    if results.is_package_name(first) or first != results.srchash(name):
        return None
    view = flask.current_app.view_functions.get("packages.packages2")
    if view is None:
        raise NotFound(f"no such page: /packages/{first}/{name}")
    return view(a=first, b=name)


def current_classification(conn: sqlite3.Connection, test: history.Test) -> tuple[history.Result, str] | None:
    """The newest result of a test and its classification (WINDOW+2 rows read)."""
    latest = history.latest_result(conn, test)
    if latest is None:
        return None
    return latest, insight.classification_for(conn, test.id, latest.run_id) or latest.result_name
