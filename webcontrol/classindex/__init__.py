# SPDX-License-Identifier: GPL-3.0-or-later
"""The classification index sidecar DB: built and updated by publish-db (:mod:`.build`), read by /recent (:mod:`.read`)."""

from webcontrol.classindex.build import (
    ANY,
    CODES,
    FILE_NAME,
    REBUILD_BUDGET_S,
    REBUILD_THRESHOLD,
    RefreshSummary,
    index_path,
    publish_stage,
    rebuild,
    refresh,
)
from webcontrol.classindex.read import (
    LIVE_MAX,
    RECLASSIFY_MAX,
    Freshness,
    Query,
    attach,
    classifications,
    freshness,
    recent_page,
)

__all__ = [
    "ANY",
    "CODES",
    "FILE_NAME",
    "LIVE_MAX",
    "RECLASSIFY_MAX",
    "REBUILD_BUDGET_S",
    "REBUILD_THRESHOLD",
    "Freshness",
    "Query",
    "RefreshSummary",
    "attach",
    "classifications",
    "freshness",
    "index_path",
    "publish_stage",
    "rebuild",
    "recent_page",
    "refresh",
]
