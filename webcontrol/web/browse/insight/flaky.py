# SPDX-License-Identifier: GPL-3.0-or-later
"""``/flaky`` and ``/api/v1/flaky``: the flakiest tests per release/arch.

Read from the ``test_flakiness`` table that publish-db maintains
(:mod:`webcontrol.flakiness`), so the page costs one small index read per
release/arch whatever the size of the DB.
"""

from __future__ import annotations

import flask

from webcontrol import flakiness, insight, results
from webcontrol.filecache import FileCache
from webcontrol.web.appbase import BadRequest, site_url
from webcontrol.web.browse import context, links
from webcontrol.web.browse.api import page, query_param
from webcontrol.web.browse.insight import bp

LIMIT_DEFAULT = 10
LIMIT_MAX = 1000
CACHE_SIZE = 64

_PARAMS = [
    query_param("release", "only this release"),
    query_param("arch", "only this architecture"),
    query_param("limit", f"tests per release/arch, 1..{LIMIT_MAX} (default {LIMIT_DEFAULT})", "integer", 1, LIMIT_MAX),
]
_SCHEMA = {
    "type": "object",
    "properties": {
        "computed": {"type": "boolean"},
        "window": {"type": "integer"},
        "min_flips": {"type": "integer"},
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "release": {"type": "string"},
                    "arch": {"type": "string"},
                    "tests": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    },
}


def _group_order(groups: list[tuple[str, str]]) -> list[tuple[str, str]]:
    order = context.catalogue().releases
    return sorted(groups, key=lambda g: (order.index(g[0]) if g[0] in order else len(order), g[0], g[1]))


@page(bp, "/flaky", "insight/flaky.html", "Flakiest tests per release and arch", _PARAMS, _SCHEMA)
def flaky():
    args = flask.request.args
    release = args.get("release") or None
    arch = args.get("arch") or None
    if release and not results.SERIES_RE.match(release):
        raise BadRequest(f"invalid release {release!r}")
    if arch and not results.ARCH_RE.match(arch):
        raise BadRequest(f"invalid arch {arch!r}")
    limit = context.int_param("limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    # Links are absolute: a site without [web] site_url builds them from the request's host.
    return _cache.get(context.public_db_path(), release, arch, limit, site_url())


def _flaky_data(_path: str, release: str | None, arch: str | None, limit: int, _site: str) -> dict:
    conn = context.get_db()
    data = {
        "window": insight.WINDOW,
        "min_flips": insight.MIN_FLIPS,
        "release": release,
        "arch": arch,
        "limit": limit,
        "computed": flakiness.has_table(conn),
        "groups": [],
    }
    if not data["computed"]:
        return data
    groups = [
        (rel, each)
        for rel, each in flakiness.flaky_groups(conn)
        if (release is None or rel == release) and (arch is None or each == arch)
    ]
    for rel, each in _group_order(groups):
        tests = [
            {
                "package": row.package,
                "score": row.score,
                "flips": row.flips,
                "pairs": row.pairs,
                "runs": row.runs,
                "last_run_id": row.last_run_id,
                "last_date": results.human_date(row.last_run_id),
                "classification": row.classification,
                "history_url": links.history_url(row.package, rel, each),
            }
            for row in flakiness.ranking(conn, rel, each, limit)
        ]
        data["groups"].append({"release": rel, "arch": each, "tests": tests})
    return data


#: Per published DB file and query: the ranking only changes when publish-db swaps the file.
_cache: FileCache[dict] = FileCache(_flaky_data, max_entries=CACHE_SIZE)
