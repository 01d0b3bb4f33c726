# SPDX-License-Identifier: GPL-3.0-or-later
"""A web thread keeps its public-DB connection between requests: never past a new publish or a new index."""

from __future__ import annotations

import os
import sqlite3

from tests.browse.test_classindex import build_public, check_pages, make_app
from webcontrol import classindex
from webcontrol.web.browse import pages


def test_pages_read_each_published_db_and_index_as_soon_as_it_is_in_place(tmp_path):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public, seed=3, count=900)
    classindex.refresh(public, index)
    client = make_app(public)
    check_pages(client, public)
    # publish-db's way: a new file renamed over the old one, then a new index for it.
    staged = tmp_path / "staged.db"
    build_public(staged, seed=11, count=1500)
    os.replace(staged, public)
    os.unlink(index)
    classindex.refresh(public, index)
    check_pages(client, public)


def newest_runs(public, count: int) -> list[str]:
    conn = sqlite3.connect(public)
    try:
        return [row[0] for row in conn.execute("SELECT run_id FROM result ORDER BY run_id DESC LIMIT ?", (count,))]
    finally:
        conn.close()


def test_home_shows_the_latest_results_of_each_published_db(tmp_path):
    public, staged = tmp_path / "public.db", tmp_path / "staged.db"
    build_public(public, seed=3, count=900)
    client = make_app(public)
    for seed in (None, 11, 5):
        if seed is not None:
            build_public(staged, seed=seed, count=600 + seed * 50)
            os.replace(staged, public)
        want = newest_runs(public, pages.HOME_RESULTS)
        assert [r["run_id"] for r in client.get("/api/v1/").get_json()["latest"]] == want
        # The same page as a process that never saw an earlier DB.
        assert client.get("/").get_data() == make_app(public).get("/").get_data()
