# SPDX-License-Identifier: GPL-3.0-or-later
"""The insight routes of browse.cgi on a site built through the real ingestion path."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import flask
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.insight import site as sitemod
from webcontrol import db, history, insight
from webcontrol.web.browse.insight import charts

ATOM = "{http://www.w3.org/2005/Atom}"
SVG = "{http://www.w3.org/2000/svg}"
HELLO_URL = "/packages/hello/noble/amd64"


def test_classification_of_the_ingested_history(insight_site):
    conn = db.connect_ro(insight_site.public)
    test = history.find_test(conn, "hello", "noble", "amd64")
    rows = history.history(conn, test, 100)
    assert insight.classify_rows(conn, rows)[::-1] == [spec[-1] for spec in sitemod.HELLO]
    # A page in the middle (keyset paging) gets the same answers from a bounded read.
    page = history.history(conn, test, 4, before=rows[3].run_id)
    assert insight.classify_rows(conn, page) == [spec[-1] for spec in sitemod.HELLO][::-1][4:8]
    # One row per test (package matrix, /recent): the newest run's class comes from test_flakiness.
    arm64 = history.history(conn, history.find_test(conn, "hello", "noble", "arm64"), 2)
    assert insight.classify_rows(conn, [rows[0], arm64[0]]) == ["flaky", "regression"]
    assert insight.classify_rows(conn, [arm64[1]]) == ["pass"]


# Atom feeds ----------------------------------------------------------------------------------------


def parse_feed(response):
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.data)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    assert root.find(f"{ATOM}link[@rel='self']").get("href").startswith("https://autopkgtest.example.com/")
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:
        for name in ("id", "title", "updated", "link", "content"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        assert entry.find(f"{ATOM}content").get("type") == "html"
    updated = [entry.find(f"{ATOM}updated").text for entry in entries]
    assert updated == sorted(updated, reverse=True)
    return root, entries


def test_test_feed_has_one_entry_per_state_change(client, insight_site):
    _root, entries = parse_feed(client.get(f"{HELLO_URL}/feed.atom"))
    expected = sorted(sitemod.HELLO_CHANGES, reverse=True)
    ids = [entry.find(f"{ATOM}id").text for entry in entries]
    assert ids == [
        f"https://autopkgtest.example.com/packages/h/hello/noble/amd64/{insight_site.hello[i].run_id}" for i in expected
    ]
    titles = [entry.find(f"{ATOM}title").text for entry in entries]
    assert titles[-1] == "hello noble/amd64: first result: pass"
    assert titles[0] == "hello noble/amd64: pass → fail (flaky)"
    assert "hello noble/amd64: pass → fail (regression)" in titles
    assert entries[0].find(f"{ATOM}category").get("term") == "flaky"
    # The content is escaped HTML (type="html"): a table a reader renders.
    assert "<table>" in entries[0].find(f"{ATOM}content").text


def test_package_feed_merges_its_tests_and_user_feed_keeps_their_runs(client, insight_site):
    _root, entries = parse_feed(client.get("/packages/hello/feed.atom"))
    titles = [entry.find(f"{ATOM}title").text for entry in entries]
    assert sum("noble/amd64" in t for t in titles) == len(sitemod.HELLO_CHANGES)
    assert sum("noble/arm64" in t for t in titles) == 2
    _root, entries = parse_feed(client.get(f"/user/{sitemod.USER}/feed.atom"))
    # carol asked for runs 2 (pass→fail), 3 (tmpfail: no change), 5 (fail→pass), 9 (pass→fail).
    run_ids = [entry.find(f"{ATOM}id").text.rsplit("/", 1)[1] for entry in entries]
    assert run_ids == [insight_site.hello[i].run_id for i in (9, 5, 2)]
    _root, entries = parse_feed(client.get("/user/nobody/feed.atom"))
    assert entries == []
    assert client.get("/user/Bad_Name/feed.atom").status_code == 404
    _root, entries = parse_feed(client.get("/packages/unknown-pkg/feed.atom"))
    assert entries == []


# Badges ----------------------------------------------------------------------------------------------


def badge(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("image/svg+xml")
    assert response.headers["Cache-Control"] == "max-age=300"
    root = ET.fromstring(response.data)
    assert root.tag == f"{SVG}svg"
    texts = [element.text for element in root.iter(f"{SVG}text")]
    return root.get("data-classification"), texts


def test_badges(client):
    assert badge(client, f"{HELLO_URL}/badge.svg") == ("flaky", ["autopkgtest noble/amd64", "flaky"])
    # The package badge shows the worst test: arm64 regressed.
    assert badge(client, "/packages/hello/badge.svg") == ("regression", ["autopkgtest", "regression"])
    assert badge(client, "/packages/hello/badge.svg?release=jammy") == ("none", ["autopkgtest jammy", "no results"])
    assert badge(client, "/packages/nothing-here/badge.svg")[1] == ["autopkgtest", "no results"]
    assert client.get("/packages/Bad!/badge.svg").status_code == 404
    assert client.get("/packages/hello/badge.svg?release=no/pe").status_code == 400


# Routes do not disturb browse --------------------------------------------------------------------------


def test_browse_routes_still_win(client, insight_site):
    assert client.get("/api/v1/packages/h/hello").get_json()["page"] == "package"
    assert client.get("/api/v1/packages/hello/noble/amd64").get_json()["page"] == "history"
    assert client.get("/api/v1/packages/h/hello/noble/amd64").get_json()["page"] == "history"
    run = insight_site.hello[2].run_id
    assert client.get(f"/api/v1/packages/hello/noble/amd64/{run}").get_json()["page"] == "run"
    assert client.get(f"/packages/h/hello/noble/amd64/{run}").status_code == 200
    # /packages/<prefix>/<pkg> for packages literally named like our files stays browse's package page.
    for name in ("feed.atom", "badge.svg"):
        response = client.get(f"/packages/{name[0]}/{name}")
        assert response.status_code == 200 and b"no previous results" in response.data.lower()


# History chart ----------------------------------------------------------------------------------------------


def test_history_chart_svg_and_its_json_twin(client, insight_site):
    response = client.get(f"{HELLO_URL}/history.svg")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(response.data)
    assert root.tag == f"{SVG}svg"
    bars = [rect for rect in root.iter(f"{SVG}rect") if "ic-bar" in (rect.get("class") or "")]
    assert [bar.get("class").split()[-1] for bar in bars] == [
        "ic-" + {0: "pass", 4: "fail", 8: "neutral", 16: "tmpfail", 99: "denylisted"}[spec[0]] for spec in sitemod.HELLO
    ]
    heights = [float(bar.get("height")) for bar in bars]
    assert heights == sorted(heights)  # durations grow with the index in the crafted history
    style = root.find(f"{SVG}style").text
    assert "prefers-color-scheme: dark" in style and "currentColor" in style
    data = client.get(f"/api/v1{HELLO_URL}/history.svg?limit=3").get_json()
    assert [p["run_id"] for p in data["points"]] == [run.run_id for run in insight_site.hello[-3:]]
    assert [p["classification"] for p in data["points"]] == ["regression", "flaky", "flaky"]
    assert client.get(f"{HELLO_URL}/history.svg?limit=0").status_code == 400


def chart_bar_links(page: str) -> list[str]:
    """The run links of a page's chart bars, left to right."""
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    return [a.get("href") for a in root.iter(f"{SVG}a") if any("ic-bar" in (r.get("class") or "") for r in a)]


@pytest.mark.parametrize("stream_rows", [100, 2])
def test_a_long_history_page_charts_its_newest_runs(client, insight_site, monkeypatch, stream_rows):
    """A page of more runs than a chart shows (limit=10000) charts its newest, as history.svg does; its table has all."""
    from webcontrol.web.browse import links

    runs = len(insight_site.hello)
    everything = client.get(f"{HELLO_URL}?limit={runs}").data.decode()
    monkeypatch.setattr(links, "STREAM_ROWS", stream_rows)  # 2: the page's views are made as it is sent
    monkeypatch.setattr(charts, "LIMIT_MAX", 3)
    page = client.get(f"{HELLO_URL}?limit={runs}").data.decode()
    newest = chart_bar_links(client.get(f"{HELLO_URL}?limit=3").data.decode())
    assert len(newest) == 3
    assert chart_bar_links(page) == newest
    assert chart_bar_links(everything)[-3:] == newest and len(chart_bar_links(everything)) == runs
    table = everything[everything.index("</svg>") :]
    assert page[page.index("</svg>") :] == table
    assert table.count("<tr") > runs


# Changes since the last pass ------------------------------------------------------------------------------------


def test_changes_since_the_last_pass(client, insight_site):
    hello = insight_site.hello
    data = client.get(f"/api/v1{HELLO_URL}/{hello[2].run_id}/changes").get_json()
    assert data["applicable"] and data["base"]["run_id"] == hello[1].run_id
    diff = data["diff"]
    assert diff["upgraded"] == [{"name": "hello", "old": "1.0-1", "new": "1.0-2"}]
    assert [p["name"] for p in diff["added"]] == ["libfoo1"]  # demodata adds it to failing testbeds
    assert diff["removed"] == diff["downgraded"] == []
    html = client.get(f"{HELLO_URL}/{hello[2].run_id}/changes").data.decode()
    assert "<td>upgraded</td><td>hello</td><td>1.0-1</td><td>1.0-2</td>" in html
    passing = client.get(f"/api/v1{HELLO_URL}/{hello[0].run_id}/changes").get_json()
    assert passing["applicable"] is False
    assert client.get(f"{HELLO_URL}/20990101_000000_abcde@/changes").status_code == 404
    assert client.get(f"{HELLO_URL}/not-a-run/changes").status_code == 404


def test_run_page_diff_reads_the_store_once_per_run(insight_site):
    """result.tar never changes: a second view of a failing run's page needs no store GET."""
    from webcontrol.web.browse import create_app

    client = create_app(insight_site.config).test_client()
    hello = insight_site.hello
    page = f"{HELLO_URL}/{hello[2].run_id}"
    first = client.get(page).data.decode()
    assert "<td>added</td><td>libfoo1</td>" in first
    root = insight_site.root / "results" / "autopkgtest-noble"
    tars = [root / f"noble/amd64/h/hello/{run.run_id}/result.tar" for run in (hello[1], hello[2])]
    for tar in tars:
        tar.rename(tar.with_suffix(".moved"))
    try:
        assert client.get(page).data.decode().count("<td>added</td><td>libfoo1</td>") == 1
    finally:
        for tar in tars:
            tar.with_suffix(".moved").rename(tar)


def test_run_page_diff_shows_a_result_tar_as_soon_as_it_is_in_the_store(insight_site):
    """A page made while a result.tar was missing is not kept: the next view finds it."""
    from webcontrol.web.browse import create_app

    client = create_app(insight_site.config).test_client()
    hello = insight_site.hello
    page = f"{HELLO_URL}/{hello[2].run_id}"
    tar = insight_site.root / "results" / "autopkgtest-noble" / f"noble/amd64/h/hello/{hello[1].run_id}/result.tar"
    tar.rename(tar.with_suffix(".moved"))
    try:
        missing = client.get(page).data.decode()
        assert f"Not available: result.tar of run {hello[1].run_id} is not in the result store." in missing
        assert "<td>added</td><td>libfoo1</td>" not in missing
    finally:
        tar.with_suffix(".moved").rename(tar)
    for _view in range(2):
        assert "<td>added</td><td>libfoo1</td>" in client.get(page).data.decode()


def test_partials_render_from_page_variables(insight_app, insight_site):
    """What the browse history and run pages get when they include the partials."""
    with insight_app.test_request_context("/"):
        from webcontrol.web.browse import context, links

        conn = context.get_db()
        test = history.find_test(conn, "hello", "noble", "amd64")
        views = links.result_views(conn, history.history(conn, test, 100))
        chart = flask.render_template_string('{% include "partials/history_chart.html" %}', results=views)
        root = ET.fromstring(chart.strip())
        assert len([r for r in root.iter(f"{SVG}rect") if "ic-bar" in (r.get("class") or "")]) == len(views)
        failing = next(v for v in views if v["run_id"] == insight_site.hello[2].run_id)
        diff = flask.render_template_string('{% include "partials/package_diff.html" %}', run=failing)
        assert "<td>added</td><td>libfoo1</td>" in diff
        passing = next(v for v in views if v["result"] == "pass")
        assert flask.render_template_string('{% include "partials/package_diff.html" %}', run=passing).strip() == ""
        assert flask.render_template_string('{% include "partials/history_chart.html" %}', results=[]).strip() == ""


#: The loop of partials/history_chart.html that insight_chart_bars replaced.
BARS_LOOP = """{%- for bar in chart.bars %}
<a href="{{ bar["url"] }}"><rect class="ic-bar ic-{{ bar["result"] }}" x="{{ bar["x"] }}" y="{{ bar["y"] }}" \
width="{{ bar["width"] }}" height="{{ bar["height"] }}"><title>{{ bar["title"] }}</title></rect></a>
{%- endfor %}"""


def test_chart_bars_are_the_template_loop_they_replaced(insight_app):
    views = [
        {"duration": 5, "result": "pass", "date": "2024-01-01", "run_url": "https://x/run/a?b=1&c=<2>"},
        {"duration": None, "result": "fail", "classification": "regression", "version": "1.0'\"&", "run_url": None},
        {"duration": 7000, "result": "otherfail", "human_duration": "1h <56m>", "date": "\u2603"},
    ]
    with insight_app.test_request_context("/"):
        chart = charts.chart_geometry(views)
        loop = flask.render_template_string(BARS_LOOP, chart=chart)
        assert "&amp;" in loop and "None" in loop
        assert str(charts.insight_chart_bars(chart["bars"])) == loop


# /flaky ------------------------------------------------------------------------------------------------------------


def test_flaky_page_and_json(client):
    data = client.get("/api/v1/flaky").get_json()
    assert data["computed"] is True
    groups = {(g["release"], g["arch"]): g["tests"] for g in data["groups"]}
    top = groups[("noble", "amd64")][0]
    assert (top["package"], top["score"], top["flips"], top["runs"]) == ("hello", 0.5, 3, 9)
    for tests in groups.values():
        keys = [(-t["score"], -t["flips"], -t["runs"], t["package"]) for t in tests]
        assert keys == sorted(keys) and all(t["flips"] >= insight.MIN_FLIPS for t in tests)
    html = client.get("/flaky?release=noble&arch=amd64").data.decode()
    assert 'href="https://autopkgtest.example.com/packages/h/hello/noble/amd64">hello</a>' in html
    assert client.get("/api/v1/flaky?release=jammy&arch=amd64&limit=5").get_json()["groups"] == []
    assert client.get("/flaky?limit=0").status_code == 400
    assert "/api/v1/flaky" in client.get("/api/v1/openapi.json").get_json()["paths"]


# /metrics ------------------------------------------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text(client, insight_site):
    client.get(f"{HELLO_URL}/badge.svg")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.data.decode())}
    samples = {name: [(s.name, s.labels, s.value) for s in family.samples] for name, family in families.items()}
    conn = db.connect_ro(insight_site.public)
    count = conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
    assert samples["autopkgtest_results_ingested"] == [("autopkgtest_results_ingested_total", {}, count)]
    assert samples["autopkgtest_ingest_lag_seconds"][0][2] >= 0
    sizes = {(s[1]["context"], s[1]["release"], s[1]["arch"]): s[2] for s in samples["autopkgtest_queue_size"]}
    assert sizes == {("ubuntu", "noble", "amd64"): 2, ("huge", "jammy", "arm64"): 0}
    assert samples["autopkgtest_running_jobs"] == [
        ("autopkgtest_running_jobs", {"release": "noble", "arch": "amd64"}, 1)
    ]
    present = {s[1]["file"]: s[2] for s in samples["autopkgtest_data_file_present"]}
    assert present["public_db"] == present["running"] == present["queued"] == 1.0
    assert present["stats"] == 0.0  # never computed on this site
    ages = {s[1]["file"] for s in samples["autopkgtest_data_file_age_seconds"]}
    assert "public_db" in ages and "stats" not in ages
    flaky = {(s[1]["release"], s[1]["arch"]): s[2] for s in samples["autopkgtest_flaky_tests"]}
    assert flaky[("noble", "amd64")] >= 1
    latency = families["autopkgtest_page_latency_seconds"]
    assert latency.type == "histogram"
    counts = {s.labels["endpoint"]: s.value for s in latency.samples if s.name.endswith("_count")}
    assert counts["insight.test_badge"] >= 1


def _request_outcomes(client) -> dict[str, float]:
    """The request.cgi answers counted so far; no family at all before the first one."""
    text = client.get("/metrics").data.decode()
    families = [f for f in text_string_to_metric_families(text) if f.name == "autopkgtest_request_outcomes"]
    assert all(family.type == "counter" for family in families)
    return {s.labels["status"]: s.value for family in families for s in family.samples if s.name.endswith("_total")}


def test_metrics_count_request_cgi_answers_by_status(client, insight_site):
    """request.cgi (possibly another process) counts its answers; browse's /metrics exports them."""
    from webcontrol.web.request import create_app as create_request_app

    requests = create_request_app(insight_site.config).test_client()
    before = _request_outcomes(client)
    assert requests.get("/request.cgi?release=noble&arch=amd64&package=hello&trigger=hello/1").status_code == 403
    assert requests.head("/request.cgi").status_code == 405
    assert requests.get("/login").status_code == 302  # a login page, not a request outcome
    after = _request_outcomes(client)
    assert after.get("403", 0) == before.get("403", 0) + 1
    assert after.get("405", 0) == before.get("405", 0) + 1
    assert after.get("302", 0) == before.get("302", 0)


@pytest.mark.parametrize("path", ["/metrics", "/flaky", f"{HELLO_URL}/feed.atom", f"{HELLO_URL}/badge.svg"])
def test_without_a_public_db(tmp_path, path):
    """Before the first publish: /metrics still answers, pages say 503, never a traceback."""
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    web = {"database_public": str(tmp_path / "missing.db"), "state_dir": str(tmp_path / "state")}
    configmod.write({"web": dict(web, runtime_dir=str(tmp_path / "run"))}, tmp_path / "c.conf")
    client = create_app(configmod.load(str(tmp_path / "c.conf"))).test_client()
    response = client.get(path)
    if path == "/metrics":
        assert response.status_code == 200 and b"autopkgtest_public_db_up 0" in response.data
    else:
        assert response.status_code == 503 and b"Traceback" not in response.data


def test_select_classified_for_recent(insight_site):
    conn = db.connect_ro(insight_site.public)

    def fetch(limit, offset):
        return history.recent(conn, limit, offset, history.RecentFilter(release="noble", arch="amd64"))

    everything = list(fetch(10_000, 0))
    classes = insight.classify_rows(conn, everything)
    for wanted in ("flaky", "regression", "denylisted", "fixed"):
        expected = [row for row, value in zip(everything, classes, strict=True) if value == wanted]
        rows, complete = insight.select_classified(conn, fetch, wanted, limit=2, offset=1)
        assert complete and rows == expected[1:3], wanted
    rows, complete = insight.select_classified(conn, fetch, "fixed", limit=5, scan_max=100)
    assert len(rows) <= 5
    with pytest.raises(ValueError):
        insight.select_classified(conn, fetch, "fail", limit=5)


def test_prefix_forms_answer_like_the_plain_ones(client, insight_site):
    run = insight_site.hello[2].run_id
    for plain, prefixed in (
        ("/packages/hello/feed.atom", "/packages/h/hello/feed.atom"),
        ("/packages/hello/badge.svg", "/packages/h/hello/badge.svg"),
        (f"{HELLO_URL}/feed.atom", "/packages/h/hello/noble/amd64/feed.atom"),
        (f"{HELLO_URL}/badge.svg", "/packages/h/hello/noble/amd64/badge.svg"),
        (f"{HELLO_URL}/history.svg", "/packages/h/hello/noble/amd64/history.svg"),
        (f"/api/v1{HELLO_URL}/history.svg", "/api/v1/packages/h/hello/noble/amd64/history.svg"),
        (f"/api/v1{HELLO_URL}/{run}/changes", f"/api/v1/packages/h/hello/noble/amd64/{run}/changes"),
    ):
        first, second = client.get(plain), client.get(prefixed)
        assert first.status_code == second.status_code == 200, prefixed
        if plain.endswith(".atom"):  # the same entries; only the feed's own (self) URL differs
            assert parse_feed(first)[1] and [e.find(f"{ATOM}id").text for e in parse_feed(first)[1]] == [
                e.find(f"{ATOM}id").text for e in parse_feed(second)[1]
            ]
        else:
            assert first.data == second.data, prefixed
        wrong = prefixed.replace("/h/hello/", "/x/hello/")
        assert client.get(wrong).status_code == 404, wrong
