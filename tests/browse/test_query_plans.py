# SPDX-License-Identifier: GPL-3.0-or-later
"""Browse queries are index lookups on the real schema (pages must not grow with the DB).

Each read function runs against a public DB built with the real schema;
every statement it issues is re-run under EXPLAIN QUERY PLAN, and no plan
may scan a whole table or sort an unbounded set.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest

from tests.browse import site as sitemod
from webcontrol import history, newest

FULL_SCAN = re.compile(r"\bSCAN (result|test|current_version)\b(?! USING (COVERING )?INDEX)")


@pytest.fixture(scope="module")
def conn(site):
    connection = sqlite3.connect(f"file:{site.public_db}?mode=ro", uri=True)
    yield connection
    connection.close()


def plans(conn, call) -> list[tuple[str, str]]:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        call(conn)
    finally:
        conn.set_trace_callback(None)
    found = []
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        found.append((sql, "\n".join(row[-1] for row in rows)))
    assert found, "the function ran no query"
    return found


TEST = history.Test(0, "hello", "noble", "amd64")

BOUNDED = {
    "package_matrix": lambda c: history.package_matrix(c, "hello"),
    "find_test": lambda c: history.find_test(c, "hello", "noble", "amd64"),
    "history": lambda c: history.history(c, history.find_test(c, "hello", "noble", "amd64"), 100),
    "history_before": lambda c: history.history(
        c, history.find_test(c, "hello", "noble", "amd64"), 100, before="20240210_000000@"
    ),
    "result_by_uuid": lambda c: history.result_by_uuid(c, sitemod.HELLO_UUID),
    "result_by_run_id": lambda c: history.result_by_run_id(c, "hello", "noble", "amd64", "20240213_102903_a00f9@"),
    "recent": lambda c: history.recent(c, 100),
    "recent_release": lambda c: history.recent(c, 100, filters=history.RecentFilter(release="noble", arch="amd64")),
    "user_heavy": lambda c: history.user_page(c, sitemod.HEAVY_USER, 100).rows,
    "user_light": lambda c: history.user_page(c, "joe", 100).rows,
    "release_health": lambda c: history.release_health(c, "noble", ["amd64", "arm64"]),
}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_browse_queries_use_indexes(conn, name):
    for sql, plan in plans(conn, BOUNDED[name]):
        assert not FULL_SCAN.search(plan), f"{name}: full scan in\n{sql}\n{plan}"
        # A user's rows are sorted only while there are at most _USER_SORT_MAX of them (see below).
        if not name.startswith("user_") and name != "release_health":
            assert "TEMP B-TREE FOR ORDER BY" not in plan, f"{name}: unbounded sort in\n{sql}\n{plan}"


def test_user_plan_switches_to_run_index_for_heavy_users(conn, monkeypatch):
    monkeypatch.setattr(newest, "_USER_SORT_MAX", 10)
    # 125 of ~270 results: walking the run index beats sorting for a page of 10.
    # A DB without the (requester, run_id) index (before migration 3).
    found = plans(conn, lambda c: history.user_page(c, sitemod.HEAVY_USER, 10, requester_run_index=False).rows)
    assert any("result_run_ix" in plan for _sql, plan in found)
    rows = history.user_page(conn, sitemod.HEAVY_USER, 10, offset=5, requester_run_index=False).rows
    found = plans(conn, lambda c: history.user_page(c, sitemod.HEAVY_USER, 100, requester_run_index=False).rows)
    assert any("result_requester_idx" in plan for _sql, plan in found)  # a page of 100: sorting is cheaper
    monkeypatch.setattr(newest, "_USER_SORT_MAX", 10**9)
    assert rows == history.user_page(conn, sitemod.HEAVY_USER, 10, offset=5, requester_run_index=False).rows
    assert rows == history.user_page(conn, sitemod.HEAVY_USER, 10, offset=5).rows


def test_release_order_fallback_without_config(conn):
    assert history.release_first_runs(conn, ["noble", "jammy"]) == ["jammy", "noble"]
    for _sql, plan in plans(conn, lambda c: history.release_first_runs(c, ["noble"])):
        assert "SCAN result" not in plan or "USING" in plan


def test_requester_run_index_is_in_the_schema_and_used(site):
    conn = sqlite3.connect(site.public_db)
    assert history.has_requester_run_index(conn)  # migration 3 of webcontrol.db
    expected = history.user_page(conn, sitemod.HEAVY_USER, 30).rows
    found = plans(conn, lambda c: history.user_page(c, sitemod.HEAVY_USER, 30, requester_run_index=True).rows)
    assert all("TEMP B-TREE" not in plan and "result_requester_run_ix" in plan for _sql, plan in found)
    assert history.user_page(conn, sitemod.HEAVY_USER, 30, requester_run_index=True).rows == expected
    conn.close()


def test_newest_and_history_import_in_either_order():
    for first in ("webcontrol.newest", "webcontrol.history"):
        subprocess.run(
            [sys.executable, "-c", f"import {first}; from webcontrol.history import recent_page"], check=True
        )


@pytest.mark.parametrize(
    "page",
    [
        lambda c, n, before: newest.recent_page(c, n, before=before),
        lambda c, n, before: newest.recent_page(c, n, offset=3, before=before),
        lambda c, n, before: newest.user_page(c, sitemod.HEAVY_USER, n, requester_run_index=True, before=before),
        lambda c, n, before: newest.user_page(c, sitemod.HEAVY_USER, n, 4, requester_run_index=True, before=before),
    ],
    ids=["recent", "recent offset", "user", "user offset"],
)
def test_big_pages_read_while_sent_hold_the_same_rows(conn, monkeypatch, page):
    """A page longer than LAZY_ROWS gets its rows chunk by chunk, each chunk an index walk: same rows, same next."""
    expected = {}
    for before in (None, "20240212_000000@"):
        for size in (7, 40, 1000):
            found = page(conn, size, before)
            expected[(before, size)] = (list(found.rows), found.next_before)
    monkeypatch.setattr(newest, "LAZY_ROWS", 5)
    monkeypatch.setattr(newest, "LAZY_CHUNK", 3)
    for (before, size), (rows, next_before) in expected.items():
        assert rows, (before, size)
        found = page(conn, size, before)
        assert isinstance(found.rows, newest.LazyRows) and len(found.rows) == len(rows)
        assert (list(found.rows), found.next_before) == (rows, next_before), (before, size)
        for sql, plan in plans(conn, lambda c, found=found: list(found.rows)):  # iterable again, read again
            assert not FULL_SCAN.search(plan) and "TEMP B-TREE" not in plan, f"{sql}\n{plan}"
        assert found.rows[-1] == rows[-1] and list(found.rows) == rows
