# SPDX-License-Identifier: GPL-3.0-or-later
"""Every browse route and filter combination runs only bounded query plans.

The DB has the real schema and tens of thousands of results over hundreds
of tests, with a heavy and a light requester and rare exit codes, so that
filters match few rows, as they do in production. Each request's SQL is
recorded and re-run under EXPLAIN QUERY PLAN: no statement may scan a
whole table or sort an unbounded set. (bench/plan_check.py times the same
list on a 10M-result DB.)
"""

from __future__ import annotations

import random
import re
import sqlite3

import pytest

from tests.browse.combinations import Names, all_urls
from webcontrol import classindex, config, db, newest
from webcontrol.web.browse import create_app

STEP = 100
STEP_BUDGET = 150_000
RELEASES = ["jammy", "noble", "plucky"]
ARCHES = ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"]
BOUNDED_SUBQUERY = re.compile(r"\(SELECT [^()]*(\([^()]*\)[^()]*)*LIMIT (\d+|\?)\s*\)")
FULL_SCAN = re.compile(r"\bSCAN (result|test|\w+\.run_class)\b(?! USING (COVERING )?INDEX)")
#: Statements of the per-DB caches (release and arch catalogue, test list fallback), run once per published DB.
CACHED = ("SELECT DISTINCT release, arch FROM test", "SELECT DISTINCT package FROM test", "PRAGMA")


def build_db(path) -> Names:
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    db.create_public_schema(conn)
    packages = ["hello", *(f"pkg{n:03d}" for n in range(120))]
    tests = [(package, release, arch) for package in packages for release in RELEASES for arch in ARCHES]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO test(id, package, release, arch) VALUES (?, ?, ?, ?)", [(n + 1, *t) for n, t in enumerate(tests)]
    )
    rows = []
    for n in range(60_000):
        test_id = 1 + (rng.randrange(len(tests)) if n % 5 else rng.randrange(len(ARCHES) * len(RELEASES)))
        day, second = divmod(n, 3000)
        run_id = f"2024{1 + day // 28:02d}{1 + day % 28:02d}_{second // 3600:02d}{(second // 60) % 60:02d}{second % 60:02d}_{n:05x}@"
        exitcode = 20 if n % 997 == 0 else rng.choice((0, 0, 0, 2, 4, 8))
        requester = "heavy" if n % 4 == 0 else ("light" if n % 1000 == 0 else "")
        uuid = f"00000000-0000-4000-8000-{n:012d}"
        rows.append((test_id, run_id, "1.0-1", "hello/1.0-1", 100, exitcode, requester, "", uuid))
    conn.executemany("INSERT INTO result VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    deep = conn.execute("SELECT run_id FROM result ORDER BY run_id DESC LIMIT 1 OFFSET 20000").fetchone()[0]
    conn.close()
    return Names(
        "hello", "noble", "amd64", "heavy", "light", deep, "00000000-0000-4000-8000-000000000005", "hello/1.0-1"
    )


@pytest.fixture(scope="module")
def app_and_names(tmp_path_factory):
    root = tmp_path_factory.mktemp("plans")
    names = build_db(root / "public.db")
    # /recent?classification= reads the classification index publish-db keeps beside the public DB.
    assert classindex.refresh(root / "public.db", classindex.index_path(root / "public.db")).complete
    cfg = config.from_dict(
        {
            "web": {
                "database_public": root / "public.db",
                "running_cache": root / "running.json",
                "amqp_queue_cache": root / "queued.json",
                "releases": " ".join(RELEASES),
                "state_dir": root / "state",
                "site_url": "https://autopkgtest.example.com",
            }
        }
    )
    app = create_app(cfg)
    app.testing = True
    return app, names, root / "public.db"


def test_every_route_and_filter_combination_has_a_bounded_plan(app_and_names, monkeypatch):
    app, names, db_path = app_and_names
    # Scan limits well below the size of the DB, so a walk that grows with the table stands out.
    monkeypatch.setattr(newest, "RECENT_SCAN_MAX", 1000)
    monkeypatch.setattr(newest, "OFFSET_MAX", 300)
    client = app.test_client()
    client.get("/testlist")  # fill the per-DB caches first: they scan once per published DB
    statements: list[str] = []
    original = db.connect_ro

    steps: list[int] = []

    def traced(path, timeout_ms=None):
        conn = original(path, timeout_ms=timeout_ms)

        def start(sql: str) -> None:
            statements.append(sql)
            steps.append(0)

        def step() -> int:
            if steps:
                steps[-1] += STEP
            return 0

        conn.set_trace_callback(start)
        conn.set_progress_handler(step, STEP)
        return conn

    monkeypatch.setattr(db, "connect_ro", traced)
    urls = all_urls(names)
    assert len(urls) > 500
    checked = set()
    problems = []
    public = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    public.execute("ATTACH DATABASE ? AS classidx", (f"file:{classindex.index_path(db_path)}?mode=ro",))
    worst = (0, "")
    for url in urls:
        statements.clear()
        steps.clear()
        response = client.get(url)
        assert response.status_code in (200, 400, 404), (url, response.status_code, response.get_data()[:300])
        for sql, count in zip(statements, steps, strict=True):
            # Work done, in SQLite VM steps: bounded by the page size and the scan limits, not the table.
            if "limit=10000" not in url and count > worst[0]:
                worst = (count, f"{url}: {sql}")
            if not sql.lstrip().upper().startswith("SELECT") or sql in checked or sql.startswith(CACHED):
                continue
            checked.add(sql)
            plan = "\n".join(row[-1] for row in public.execute("EXPLAIN QUERY PLAN " + sql))
            # A sort is bounded only when what it sorts comes out of a LIMITed subquery.
            if FULL_SCAN.search(plan) or ("TEMP B-TREE" in plan and not BOUNDED_SUBQUERY.search(sql)):
                problems.append(f"{url}\n  {sql}\n  {plan}")
    public.close()
    assert len(checked) > 100
    assert sum("run_class" in sql for sql in checked) > 20, "classification pages did not read the index"
    # A walk over the whole table takes several times this; the widest bounded statements (the
    # filtered scans of RECENT_SCAN_MAX rows) a fraction of it.
    assert worst[0] < STEP_BUDGET, f"{worst[0]} SQLite VM steps, more than a bounded plan takes: {worst[1]}"
    assert not problems, "unbounded plans:\n" + "\n".join(problems[:10])
