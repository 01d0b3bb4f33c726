# SPDX-License-Identifier: GPL-3.0-or-later
"""A web thread keeps its public-DB connection between requests: never past a new publish or a new index."""

from __future__ import annotations

import os
import shutil
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


RUN_UUID = "0b6a4f0e-3c1d-4e2f-9a8b-7c6d5e4f3a21"


def publish_with(public, staged, change: str, *values, same_stamp: bool = False) -> None:
    """publish-db's way: a changed copy of the published file renamed over it.

    ``same_stamp``: with the old file's mtime (made within one clock tick, of the same size).
    """
    shutil.copyfile(public, staged)
    conn = sqlite3.connect(staged, isolation_level=None)
    try:
        conn.execute(change, values)
    finally:
        conn.close()
    if same_stamp:
        old = os.stat(public)
        os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(staged, public)


def test_run_page_shows_each_published_db(tmp_path):
    public, staged = tmp_path / "public.db", tmp_path / "staged.db"
    build_public(public, seed=3, count=900)
    client = make_app(public)
    page = f"/run/{RUN_UUID}"
    assert client.get(page).status_code == 404
    # Published a minute later: found at once (a uuid that was not found is never kept).
    run_id = newest_runs(public, 40)[-1]
    publish_with(public, staged, "UPDATE result SET uuid = ?, version = '7.7-7' WHERE run_id = ?", RUN_UUID, run_id)
    first = client.get(page)
    assert first.status_code == 200 and b"7.7-7" in first.get_data()
    assert client.get(page).get_data() == first.get_data()
    assert client.get(f"/api/v1{page}").get_json()["run"]["version"] == "7.7-7"
    # The next DB file says otherwise (the same size, the same second): its answer, at once, HTML and JSON.
    publish_with(public, staged, "UPDATE result SET version = '9.9-9' WHERE uuid = ?", RUN_UUID, same_stamp=True)
    again = client.get(page)
    assert b"9.9-9" in again.get_data() and b"7.7-7" not in again.get_data()
    assert again.get_data() == make_app(public).get(page).get_data()
    assert client.get(f"/api/v1{page}").get_json()["run"]["version"] == "9.9-9"


def test_package_page_shows_each_published_db(tmp_path):
    """A package's matrix is kept per published file: the next one (even of the same size and second) shows at once."""
    public, staged = tmp_path / "public.db", tmp_path / "staged.db"
    build_public(public, seed=3, count=900)
    conn = sqlite3.connect(public)
    try:
        package, run_id = conn.execute(
            "SELECT test.package, result.run_id FROM result JOIN test ON test.id = result.test_id"
            " ORDER BY result.run_id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    client = make_app(public)
    page = f"/packages/{package}"

    def versions() -> set:
        cells = [cell["result"] for row in client.get(f"/api/v1{page}").get_json()["matrix"] for cell in row["cells"]]
        return {cell["version"] for cell in cells if cell}

    publish_with(public, staged, "UPDATE result SET version = '7.7-7', exitcode = 0 WHERE run_id = ?", run_id)
    first = client.get(page).get_data()
    assert "7.7-7" in versions()
    assert client.get(page).get_data() == first
    change = "UPDATE result SET version = '9.9-9', exitcode = 4 WHERE run_id = ?"
    publish_with(public, staged, change, run_id, same_stamp=True)
    assert versions() >= {"9.9-9"} and "7.7-7" not in versions()
    again = client.get(page).get_data()
    assert again != first and again == make_app(public).get(page).get_data()  # as a process that never saw the first
