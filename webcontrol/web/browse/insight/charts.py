# SPDX-License-Identifier: GPL-3.0-or-later
"""History chart: one bar per run, oldest on the left, height = duration, colour = result.

Rendered on the server as SVG (no JavaScript). Text and axes use
``currentColor`` and the result colours switch with
``prefers-color-scheme``, so the chart reads in light and dark themes,
inline in a page (``partials/history_chart.html``) or alone at
``/packages/<pkg>/<rel>/<arch>/history.svg``, whose JSON twin at
``/api/v1/packages/<pkg>/<rel>/<arch>/history.svg`` carries the plotted data.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import flask
from markupsafe import Markup

from webcontrol import history, insight, results
from webcontrol.web.browse import context, links
from webcontrol.web.browse.api import API_PREFIX, describe, query_param
from webcontrol.web.browse.insight import bp
from webcontrol.web.browse.insight.common import check_package, check_prefix, check_release_arch
from webcontrol.web.browse.markup import escape as _escape

LIMIT_DEFAULT = 100
#: Runs a chart shows at most: history.svg's limit, and the newest runs of a longer history page
#: (``limit=10000``), whose 800-pixel plot could not tell more bars apart.
LIMIT_MAX = 1000
WIDTH = 800
HEIGHT = 180
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 30
#: Result names that have their own colour; anything else is drawn as "fail".
COLOURED = ("pass", "fail", "neutral", "tmpfail", "error", "denylisted")


def chart_geometry(views: Sequence[dict]) -> dict:
    """Bars and labels for result views (dicts of links.result_view), given newest first."""
    points = list(reversed(views))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    longest = max((p.get("duration") or 0 for p in points), default=0) or 1
    step = plot_w / max(1, len(points))
    bars = []
    for index, point in enumerate(points):
        duration = point.get("duration") or 0
        height = max(2.0, plot_h * duration / longest)
        name = point.get("result") or "fail"
        bars.append(
            {
                "x": round(LEFT + index * step, 2),
                "y": round(TOP + plot_h - height, 2),
                "width": round(max(1.0, step - 1), 2),
                "height": round(height, 2),
                "result": name if name in COLOURED else "fail",
                "title": f"{point.get('date', '')}: {name}"
                + (f" ({point['classification']})" if point.get("classification") else "")
                + f", {point.get('human_duration') or 'no duration'}, version {point.get('version') or '?'}",
                "url": point.get("run_url"),
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "top": TOP,
        "plot_width": plot_w,
        "plot_height": plot_h,
        "bottom": TOP + plot_h,
        "bars": bars,
        "max_label": results.human_duration(longest) if points else "",
        "max_short": _short(longest) if points else "",
        "first_date": points[0].get("date", "") if points else "",
        "last_date": points[-1].get("date", "") if points else "",
        "legend": [name for name in COLOURED if any(b["result"] == name for b in bars)],
    }


def _short(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 600:
        return f"{round(seconds / 60)} min"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds} s"


@bp.app_template_global("insight_history_chart")
def insight_history_chart(views: Sequence[dict]) -> dict:
    """The chart of a history page's results (newest first): of its newest LIMIT_MAX when it has more.

    A page of 10,000 rows makes its views as it is sent (links.LazyViews):
    only the charted ones are made for the chart, and its table is made
    from the rows.
    """
    if len(views) > LIMIT_MAX:
        views = list(itertools.islice(views, LIMIT_MAX))
    return chart_geometry(views)


@bp.app_template_global("insight_chart_bars")
def insight_chart_bars(bars: Sequence[dict]) -> Markup:
    """The bars of ``chart_geometry`` as the SVG ``partials/history_chart.html`` shows, escaped as there.

    A history of 10,000 runs has 10,000 bars: the numbers, and the result
    (one of COLOURED), have nothing to escape; the link and title are escaped.
    """
    return Markup(
        "".join(
            f'\n<a href="{_escape(bar["url"])}"><rect class="ic-bar ic-{bar["result"]}" x="{bar["x"]}"'
            f' y="{bar["y"]}" width="{bar["width"]}" height="{bar["height"]}">'
            f"<title>{_escape(bar['title'])}</title></rect></a>"
            for bar in bars
        )
    )


def _points(package: str, release: str, arch: str, prefix: str | None) -> tuple[list[dict], int]:
    check_package(package)
    check_prefix(prefix, package)
    check_release_arch(release, arch)
    limit = context.int_param("limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    conn = context.get_db()
    test = history.find_test(conn, package, release, arch)
    rows = history.history(conn, test, limit) if test else []
    classes = insight.classify_rows(conn, rows)
    return list(links.views_of(rows, classes)), limit


@bp.route("/packages/<package>/<release>/<arch>/history.svg")
@bp.route("/packages/<prefix>/<package>/<release>/<arch>/history.svg")
def history_svg(package: str, release: str, arch: str, prefix: str | None = None):
    views, _limit = _points(package, release, arch, prefix)
    body = flask.render_template(
        "insight/history.svg",
        standalone=True,
        chart=chart_geometry(views),
        title=f"{package} {release}/{arch}: last {len(views)} runs",
    )
    response = flask.make_response(body)
    response.headers["Content-Type"] = "image/svg+xml; charset=utf-8"
    response.headers["Cache-Control"] = "max-age=60"
    return response


@bp.route(API_PREFIX + "/packages/<package>/<release>/<arch>/history.svg")
@bp.route(API_PREFIX + "/packages/<prefix>/<package>/<release>/<arch>/history.svg")
def history_svg_json(package: str, release: str, arch: str, prefix: str | None = None):
    views, limit = _points(package, release, arch, prefix)
    keys = ("run_id", "date", "result", "classification", "duration", "version", "triggers", "run_url")
    return flask.jsonify(
        {
            "package": package,
            "release": release,
            "arch": arch,
            "limit": limit,
            "points": [{key: view.get(key) for key in keys} for view in reversed(views)],
        }
    )


for _rule in (
    "/packages/<package>/<release>/<arch>/history.svg",
    "/packages/<prefix>/<package>/<release>/<arch>/history.svg",
):
    describe(
        bp,
        API_PREFIX + _rule,
        "Data of the history chart: the newest runs, oldest first",
        [query_param("limit", f"runs, 1..{LIMIT_MAX} (default {LIMIT_DEFAULT})", "integer")],
    )
