# SPDX-License-Identifier: GPL-3.0-or-later
"""SVG status badges for READMEs and dashboards, cacheable for five minutes.

``/packages/<pkg>/badge.svg`` shows the worst current state (classification
of the newest result, ranked by :data:`webcontrol.insight.SEVERITY`) over
the package's tests on the supported releases, or on ``?release=`` only;
``/packages/<pkg>/<rel>/<arch>/badge.svg`` shows one test. A package or
test without results gets a grey "no results" badge with status 200, so a
README never shows a broken image.
"""

from __future__ import annotations

import flask

from webcontrol import history, insight, results
from webcontrol.web.appbase import BadRequest
from webcontrol.web.browse import context
from webcontrol.web.browse.insight import bp
from webcontrol.web.browse.insight.common import (
    browse_fallback,
    check_package,
    check_prefix,
    check_release_arch,
    current_classification,
)

MAX_AGE = 300
#: classification -> (message, colour class)
MESSAGES = {
    "pass": ("passing", "good"),
    "fixed": ("passing", "good"),
    "neutral": ("neutral", "grey"),
    "tmpfail": ("tmpfail", "warn"),
    "flaky": ("flaky", "warn"),
    "always_failed": ("failing", "bad"),
    "regression": ("regression", "bad"),
    "denylisted": ("denylisted", "grey"),
    None: ("no results", "grey"),
}
COLOURS = {"good": "#2e8540", "warn": "#b26b00", "bad": "#c62828", "grey": "#6b6b6b"}
# Approximate advance of an 11px sans-serif character, for the box widths.
CHAR_WIDTH = 6.6
PADDING = 10


def _width(text: str) -> int:
    return int(len(text) * CHAR_WIDTH + PADDING)


def _render(label: str, classification: str | None) -> flask.Response:
    message, colour = MESSAGES.get(classification, MESSAGES[None])
    left, right = _width(label), _width(message)
    body = flask.render_template(
        "insight/badge.svg",
        label=label,
        message=message,
        colour=COLOURS[colour],
        left=left,
        right=right,
        classification=classification or "none",
    )
    response = flask.make_response(body)
    response.headers["Content-Type"] = "image/svg+xml; charset=utf-8"
    response.headers["Cache-Control"] = f"max-age={MAX_AGE}"
    return response


def worst(classifications: list[str]) -> str | None:
    """The most severe classification (ties keep the first, which show the same badge)."""
    return max(classifications, key=lambda value: insight.SEVERITY.get(value, 0), default=None)


@bp.route("/packages/<package>/badge.svg")
@bp.route("/packages/<prefix>/<package>/badge.svg")
def package_badge(package: str, prefix: str | None = None):
    fallback = browse_fallback(package, "badge.svg") if prefix is None else None
    if fallback is not None:
        return fallback
    check_package(package)
    check_prefix(prefix, package)
    release = flask.request.args.get("release") or None
    if release is not None and not results.SERIES_RE.match(release):
        raise BadRequest(f"invalid release {release!r}")
    conn = context.get_db()
    wanted = {release} if release else set(context.catalogue().releases)
    everything = not wanted
    states = []
    for test in history.tests_of_package(conn, package):
        if not everything and test.release not in wanted:
            continue
        found = current_classification(conn, test)
        if found is not None:
            states.append(found[1])
    return _render(f"autopkgtest {release}" if release else "autopkgtest", worst(states))


@bp.route("/packages/<package>/<release>/<arch>/badge.svg")
@bp.route("/packages/<prefix>/<package>/<release>/<arch>/badge.svg")
def test_badge(package: str, release: str, arch: str, prefix: str | None = None):
    check_package(package)
    check_prefix(prefix, package)
    check_release_arch(release, arch)
    conn = context.get_db()
    test = history.find_test(conn, package, release, arch)
    found = current_classification(conn, test) if test else None
    return _render(f"autopkgtest {release}/{arch}", found[1] if found else None)
