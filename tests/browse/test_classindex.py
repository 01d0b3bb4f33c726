# SPDX-License-Identifier: GPL-3.0-or-later
"""The classification index: stored classifications equal insight's, and /recent?classification= reads it.

Ground truth is :func:`webcontrol.insight.classification_for` (each result
against the WINDOW results of its test before it) and, for pages, every
result of the DB classified and filtered in Python.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3

import pytest

from webcontrol import classindex, config, db, insight, newest, results
from webcontrol.services import publish_db
from webcontrol.web.browse import create_app
from webcontrol.web.browse import links as browse_links
from webcontrol.web.browse import pages as browse_pages

RELEASES = ["jammy", "noble"]
ARCHES = ["amd64", "arm64", "s390x"]
USERS = ["alice", "bob"]
CODES = (0, 0, 0, 0, 2, 4, 4, 4, 8, 12, 16, 20, 99)


def trace_statements(monkeypatch) -> list[str]:
    """The SQL of every read-only connection opened from now on, as it runs."""
    statements: list[str] = []
    original = db.connect_ro

    def traced(path, timeout_ms=None):
        conn = original(path, timeout_ms=timeout_ms)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(db, "connect_ro", traced)
    return statements


def _run_id(n: int) -> str:
    day, second = divmod(n, 2000)
    return f"2025{1 + day // 28:02d}{1 + day % 28:02d}_{second // 3600:02d}{(second // 60) % 60:02d}{second % 60:02d}_{n:05x}@"


def _rows(rng: random.Random, tests: int, _count: int, numbers) -> list[tuple]:
    rows = []
    for n in numbers:
        test_id = 1 + rng.randrange(tests)
        version = f"1.{rng.randrange(3)}-1"
        triggers = rng.choice((f"pkg/{version}", f"pkg/{version} glib2.0/2.80-1", f"glib2.0/2.80-1 pkg/{version}"))
        requester = rng.choice(["", "", "", *USERS])
        rows.append((test_id, _run_id(n), version, triggers, 60, rng.choice(CODES), requester, "", None))
    return rows


def build_public(path, seed: int = 3, count: int = 3000) -> None:
    """A public DB of ``count`` results over 24 tests, run ids unique, in run order."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    db.create_public_schema(conn)
    tests = [(f"pkg{n}", release, arch) for n in range(4) for release in RELEASES for arch in ARCHES]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO test(id, package, release, arch) VALUES (?, ?, ?, ?)", [(n + 1, *t) for n, t in enumerate(tests)]
    )
    # Every 3rd run id is left out: back-fills put results there later.
    conn.executemany(
        "INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _rows(rng, len(tests), count, (n for n in range(count) if n % 3)),
    )
    conn.execute("COMMIT")
    conn.close()


def back_fill(path, seed: int = 4, count: int = 3000, every: int = 1) -> int:
    """Insert the left-out (older) run ids, as download-all-results does; returns how many."""
    return add_rows(path, (n for n in range(count) if n % 3 == 0 and n % (3 * every) == 0), seed)


def add_rows(path, numbers, seed: int) -> int:
    rows = _rows(random.Random(seed), 24, 0, numbers)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    return len(rows)


def computed(path) -> dict[int, str]:
    """rowid -> insight's classification, for every result."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT rowid, test_id, run_id FROM result").fetchall()
        return {rowid: insight.classification_for(conn, test_id, run_id) for rowid, test_id, run_id in rows}
    finally:
        conn.close()


def stored(index) -> dict[int, str]:
    names = {code: name for name, code in classindex.CODES.items()}
    conn = sqlite3.connect(index)
    try:
        by_class = {
            rid: names[code]
            for code, rid in conn.execute("SELECT class, rid FROM run_class WHERE class < ?", (classindex.ANY,))
        }
        # Every result also once among all results (class ANY), with the same filter columns.
        columns = "run_id, rid, release, arch, requester, exitcode"
        any_rows = conn.execute(f"SELECT {columns} FROM run_class WHERE class = ? ORDER BY rid", (classindex.ANY,))
        assert (
            any_rows.fetchall()
            == conn.execute(
                f"SELECT {columns} FROM run_class WHERE class < ? ORDER BY rid", (classindex.ANY,)
            ).fetchall()
        )
        return by_class
    finally:
        conn.close()


def test_stored_classifications_equal_insight_before_and_after_a_back_fill(tmp_path):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    first = classindex.refresh(public, index)
    assert first.rebuilt and first.complete and first.indexed == 2000
    assert stored(index) == computed(public)
    # Older run ids arrive after newer ones: each reclassifies the results of its test after it.
    added = back_fill(public)
    before = stored(index)
    second = classindex.refresh(public, index)
    assert not second.rebuilt and second.indexed == added
    after = stored(index)
    assert after == computed(public)
    changed = [rid for rid in before if before[rid] != after[rid]]
    assert changed, "the back-fill should have reclassified some later results"
    assert classindex.refresh(public, index).indexed == 0


def test_a_rebuild_paused_by_its_budget_resumes_and_a_renumbered_db_is_rebuilt(tmp_path):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    paused = classindex.refresh(public, index, budget_s=0)
    assert paused.rebuilt and not paused.complete and not index.exists()
    while not (summary := classindex.refresh(public, index, budget_s=0)).complete:
        assert summary.indexed > 0
    assert stored(index) == computed(public)
    # Another DB (a rebuilt rw DB: same rowids, other rows) is not read through the old watermark.
    other = tmp_path / "other.db"
    build_public(other, seed=9)
    assert classindex.refresh(other, index).rebuilt
    assert stored(index) == computed(other)


# /recent ---------------------------------------------------------------------------------------


def make_app(public, **web):
    cfg = config.from_dict(
        {
            "web": {
                "database_public": public,
                "running_cache": public.with_name("running.json"),
                "amqp_queue_cache": public.with_name("queued.json"),
                "releases": " ".join(RELEASES),
                "state_dir": public.with_name("state"),
                "site_url": "https://autopkgtest.example.com",
                **web,
            }
        }
    )
    app = create_app(cfg)
    app.testing = True
    return app.test_client()


def expected(public, classification, release=None, arch=None, user=None, result=None, before=None, truth=None):
    """(package, release, arch, run_id) of every matching result, newest first: classified one by one."""
    truth = truth or computed(public)
    conn = sqlite3.connect(public)
    try:
        rows = conn.execute(
            "SELECT result.rowid, test.package, test.release, test.arch, result.run_id, result.requester,"
            " result.exitcode FROM result JOIN test ON test.id = result.test_id ORDER BY result.run_id DESC"
        ).fetchall()
    finally:
        conn.close()
    return [
        (package, rel, ar, run_id)
        for rowid, package, rel, ar, run_id, requester, exitcode in rows
        if classification in (None, truth[rowid])
        and release in (None, rel)
        and arch in (None, ar)
        and user in (None, requester)
        and (result is None or results.result_name(exitcode) == result)
        and (before is None or run_id < before)
    ]


def shown(client, query: str) -> tuple[list[tuple], dict]:
    response = client.get("/api/v1/recent?" + query)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    data = response.get_json()
    return [(r["package"], r["release"], r["arch"], r["run_id"]) for r in data["results"]], data


FILTERS = [
    {},
    {"release": "noble"},
    {"arch": "s390x"},
    {"release": "jammy", "arch": "arm64"},
    {"user": "alice"},
    {"user": "bob", "release": "noble"},
    {"result": "fail"},
    {"result": "pass", "arch": "amd64"},
    {"result": "error", "user": "alice"},
]


def _query(classification, filters, **paging) -> str:
    params = {"classification": classification, **filters, **paging}
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


def check_pages(client, public, limit: int = 7) -> None:
    """Every classification and filter: first page, an offset page and a keyset page equal the truth."""
    truth = computed(public)
    for classification in (*insight.CLASSIFICATIONS, None):
        for filters in FILTERS if classification else FILTERS[1:]:
            want = expected(public, classification, truth=truth, **filters)
            got, data = shown(client, _query(classification, filters, limit=limit))
            assert got == want[:limit], (classification, filters)
            assert data["notice"] is None
            got, _ = shown(client, _query(classification, filters, limit=limit, offset=5))
            assert got == want[5 : 5 + limit], (classification, filters, "offset")
            if len(want) > limit:
                assert data["older_url"].endswith(f"before={want[limit - 1][3].replace('@', '%40')}")
                deeper = expected(public, classification, before=want[limit - 1][3], truth=truth, **filters)
                got, _ = shown(client, _query(classification, filters, limit=limit, before=want[limit - 1][3]))
                assert got == deeper[:limit], (classification, filters, "before")


def test_recent_by_classification_from_the_index_equals_classifying_every_result(tmp_path):
    public = tmp_path / "public.db"
    build_public(public)
    back_fill(public, every=2)
    classindex.refresh(public, tmp_path / "classification-index.db")
    check_pages(make_app(public), public)


def test_filtered_recent_pages_read_the_index_and_equal_the_pages_read_without_it(tmp_path, monkeypatch):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    classindex.refresh(public, index)
    with_index = make_app(public)
    without = make_app(public, classification_index=tmp_path / "none.db")
    # A scan window smaller than the DB: short pages and their older links must agree too.
    monkeypatch.setattr(newest, "RECENT_SCAN_MAX", 150)
    for filters in FILTERS[1:]:
        for paging in ({}, {"offset": 7}, {"before": _run_id(2400)}, {"limit": 3}):
            query = _query(None, filters, **paging)
            got, data = shown(with_index, query)
            want, old = shown(without, query)
            assert (got, data["older_url"]) == (want, old["older_url"]), query
    statements = trace_statements(monkeypatch)
    os.utime(public)  # as if published again: the next request opens the DB anew (web threads keep theirs)
    shown(with_index, "release=noble&result=fail")
    assert any("run_class" in sql for sql in statements)


def test_results_published_after_the_index_was_refreshed_are_classified_live(tmp_path, monkeypatch):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    classindex.refresh(public, index)
    # Published, index not refreshed yet: new results, and late ones older than results they reclassify.
    late = back_fill(public, every=100) + add_rows(public, range(3000, 3040), seed=5)
    assert late <= classindex.LIVE_MAX
    monkeypatch.setattr(browse_pages.insight, "select_classified", None)  # the fallback must not be used
    check_pages(make_app(public), public)


def test_without_a_usable_index_pages_are_classified_and_say_when_they_may_be_incomplete(tmp_path, monkeypatch):
    public = tmp_path / "public.db"
    build_public(public)
    client = make_app(public)
    # No index at all: the old way, complete here (the DB is smaller than the fallback's scan).
    check_pages(client, public)
    # An index of another DB (e.g. kept from before a rebuilt rw DB) is never read as this one's.
    other = tmp_path / "other.db"
    build_public(other, seed=11)
    classindex.refresh(other, tmp_path / "classification-index.db")
    shutil.copyfile(tmp_path / "classification-index.db", tmp_path / "stale-index.db")
    client = make_app(public, classification_index=tmp_path / "stale-index.db")
    check_pages(client, public)
    # A bounded scan that stops early says so, and its older link continues the scan.
    monkeypatch.setattr(browse_pages, "FALLBACK_SCAN", 100)
    want = expected(public, "regression")
    got, data = shown(client, "classification=regression&limit=50")
    assert len(want) > 50 and got == want[: len(got)] and len(got) < 50
    assert "may be incomplete" in data["notice"]
    assert "before=" in data["older_url"]
    page = client.get("/recent?classification=regression&limit=50")
    assert page.status_code == 200 and b"may be incomplete" in page.data
    # An unreadable index file is the same as none.
    (tmp_path / "broken-index.db").write_bytes(b"not a database" * 100)
    got, data = shown(make_app(public, classification_index=tmp_path / "broken-index.db"), "classification=pass")
    assert got and "may be incomplete" in data["notice"]


def test_publish_db_keeps_the_index_beside_the_public_db(make_config):  # noqa: F811
    cfg = make_config()
    rw = db.connect_rw(cfg.get("web", "database"))
    record = db.ResultRecord("noble", "amd64", "libfoo", "20240305_100000@", "1.0-1", "libfoo/1.0-1", 30, 4, "")
    db.record_results(rw, [record])
    assert publish_db.main(["--config", cfg.path]) == 0
    index = classindex.index_path(cfg.get("web", "database_public"))
    assert stored(index) == {1: "always_failed"}
    # A back-filled pass before it makes it a regression once published.
    older = db.ResultRecord("noble", "amd64", "libfoo", "20240301_100000@", "1.0-1", "libfoo/1.0-1", 30, 0, "")
    db.record_results(rw, [older])
    assert publish_db.main(["--config", cfg.path]) == 0
    assert stored(index) == {1: "regression", 2: "pass"}
    public = sqlite3.connect(cfg.get("web", "database_public"))
    try:
        assert "run_class" not in {row[0] for row in public.execute("SELECT name FROM sqlite_master")}
    finally:
        public.close()


@pytest.fixture
def make_config(tmp_path):
    from tests.ingest.conftest import make_config as factory

    return factory.__wrapped__(tmp_path) if hasattr(factory, "__wrapped__") else None


# Big pages -------------------------------------------------------------------------------------------


def truth_by_run(public) -> dict[tuple, str]:
    """(package, release, arch, run_id) -> insight's classification, for every result."""
    truth = computed(public)
    conn = sqlite3.connect(public)
    try:
        rows = conn.execute(
            "SELECT result.rowid, test.package, test.release, test.arch, result.run_id"
            " FROM result JOIN test ON test.id = result.test_id"
        ).fetchall()
    finally:
        conn.close()
    return {tuple(row[1:]): truth[row[0]] for row in rows}


def classified(client, url: str) -> list[tuple]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    data = response.get_json()
    rows = data["results"] if isinstance(data, dict) else data
    return [((r["package"], r["release"], r["arch"], r["run_id"]), r["classification"]) for r in rows]


BIG_PAGES = [
    "/api/v1/recent?limit=400",
    "/api/v1/recent?limit=300&before=" + _run_id(2000),
    "/api/v1/user/alice/?limit=400&only-results=1",
    "/api/v1/recent?limit=300&release=noble",
    "/api/v1/recent?limit=300&classification=regression",
]


def test_big_pages_take_their_classifications_from_the_index(tmp_path, monkeypatch):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    classindex.refresh(public, index)
    monkeypatch.setattr(browse_links, "STREAM_ROWS", 50)  # pages of more than 50 rows are big (streamed)
    statements = trace_statements(monkeypatch)
    client = make_app(public)
    truth = truth_by_run(public)
    for url in BIG_PAGES:
        statements.clear()
        rows = classified(client, url)
        assert len(rows) > 50, url
        assert [cls for _key, cls in rows] == [truth[key] for key, _cls in rows], url
        # Looked up in the index a block at a time (known from the filter on a page filtered by it), not
        # classified test by test from their histories.
        looked_up = any("run_class" in sql and "BETWEEN" in sql for sql in statements)
        assert looked_up == ("classification=" not in url), url
        assert not [sql for sql in statements if "FROM result WHERE test_id" in sql], url
    # A history (one test) is classified from one read of it per block, and the same.
    rows = classified(client, "/api/v1/packages/pkg0/noble/amd64?limit=200")
    assert len(rows) > 50 and [cls for _key, cls in rows] == [truth[key] for key, _cls in rows]


def test_big_pages_classify_live_what_the_index_has_not_seen_or_cannot_tell_apart(tmp_path, monkeypatch):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public)
    classindex.refresh(public, index)
    monkeypatch.setattr(browse_links, "STREAM_ROWS", 50)
    # Published after the index's refresh: late results, which reclassify later ones, and new ones.
    back_fill(public, every=100)
    add_rows(public, range(3000, 3040), seed=5)
    # A run id of pkg0's shared by pkg1's run on the same release and arch: indexed as two entries.
    conn = sqlite3.connect(public, isolation_level=None)
    shared = conn.execute(
        "SELECT run_id FROM result WHERE test_id = 1 ORDER BY run_id DESC LIMIT 1 OFFSET 5"
    ).fetchone()
    conn.execute("INSERT INTO result VALUES (7, ?, '1.0-1', 'pkg/1.0-1', 60, 4, 'bob', '', NULL)", shared)
    conn.close()
    classindex.refresh(public, index)
    add_rows(public, range(3040, 3050), seed=6)
    truth = truth_by_run(public)
    client = make_app(public)
    for url in BIG_PAGES:
        rows = classified(client, url)
        assert [cls for _key, cls in rows] == [truth[key] for key, _cls in rows], url
    rows = classified(client, "/api/v1/recent?limit=400")
    assert ("pkg1", "jammy", "amd64", shared[0]) in dict(rows) and ("pkg0", "jammy", "amd64", shared[0]) in dict(rows)
    # Without the index: the same classifications, computed.
    rows = classified(make_app(public, classification_index=tmp_path / "none.db"), "/api/v1/recent?limit=400")
    assert [cls for _key, cls in rows] == [truth[key] for key, _cls in rows]
