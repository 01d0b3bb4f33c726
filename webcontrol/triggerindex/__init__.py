# SPDX-License-Identifier: GPL-3.0-or-later
"""The trigger index sidecar DB: built and updated by publish-db (:mod:`.build`), read by /trigger (:mod:`.read`)."""

from webcontrol.triggerindex.build import (
    FILE_NAME,
    RANK,
    REBUILD_BUDGET_S,
    REBUILD_THRESHOLD,
    RefreshSummary,
    index_path,
    publish_stage,
    rebuild,
    refresh,
)
from webcontrol.triggerindex.read import (
    Summary,
    TestRow,
    page_results,
    parse_cursor,
    runs_of,
    summary,
    tests_page,
)

__all__ = [
    "FILE_NAME",
    "RANK",
    "REBUILD_BUDGET_S",
    "REBUILD_THRESHOLD",
    "RefreshSummary",
    "Summary",
    "TestRow",
    "index_path",
    "page_results",
    "parse_cursor",
    "publish_stage",
    "rebuild",
    "refresh",
    "runs_of",
    "summary",
    "tests_page",
]
