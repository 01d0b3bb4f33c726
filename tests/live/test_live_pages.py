# SPDX-License-Identifier: GPL-3.0-or-later
"""/running, /admin, queue pages and the live-update endpoints, through the browse app."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.live.helpers import QUEUES_2022, RUN_2022, RUN_2024
from tests.threads import call_together
from webcontrol import livestate, results
from webcontrol.atomicfile import write_json_atomic
from webcontrol.web.browse import live_data

UUID = "84661c0e-2b8f-4a0e-9c55-3f7d1e2a6b48"


def queued_document(recorded: dict) -> dict:
    """queued.json as cache-amqp writes it, from a /queues.json-shaped recording."""
    queues: dict = {}
    releases: list[str] = []
    arches: set[str] = set()
    for ctx, by_release in recorded.items():
        for release, by_arch in by_release.items():
            if release not in releases:
                releases.append(release)
            for arch, items in by_arch.items():
                arches.add(arch)
                queues.setdefault(ctx, {}).setdefault(release, {})[arch] = {"size": len(items), "requests": items}
    return {"releases": releases, "arches": sorted(arches), "queues": queues, "generated": "2026-11-29T09:00:00Z"}


@pytest.fixture(autouse=True)
def fresh_pages(monkeypatch):
    """Pages follow every rewrite at once (the production lag is tested on its own)."""
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 0.0)


def _write_running(tmp_path, tree):
    write_json_atomic(tmp_path / "running.json", tree)


def test_missing_files_give_notices_not_errors(site):
    client, _ = site
    page = client.get("/running")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "running.json is missing" in body and "queued.json is missing" in body
    assert client.get("/api/v1/running").json["running_count"] == 0
    assert client.get("/admin").status_code == 200
    assert client.get("/api/v1/running/status").json["jobs"] == {}


def test_running_page_with_recorded_data(site):
    client, tmp_path = site
    recorded = json.loads(RUN_2022.read_text())
    _write_running(tmp_path, recorded)
    write_json_atomic(tmp_path / "queued.json", queued_document(json.loads(QUEUES_2022.read_text())))
    body = client.get("/running").get_data(as_text=True)
    assert re.search(r"Running jobs updated <span[^>]*>\d+</span> s ago", body)
    assert re.search(r"Queues updated <span[^>]*>\d+</span> s ago", body)
    # Count = leaves (13), not run keys.
    assert '<span id="running-count">13</span> running jobs' in body
    for package in recorded:
        assert f'id="pkg-{package}"' in body and f'href="#pkg-{package}"' in body
    assert body.count('<table class="running">') == 13
    # The size table links to the listing, which is titled and numbered.
    assert '<a href="#queue-huge-kinetic-ppc64el" data-queue="huge/kinetic/ppc64el">125</a>' in body
    assert 'id="queue-huge-kinetic-ppc64el">Queued tests for huge kinetic ppc64el' in body
    assert 'id="queue-ppa-kinetic-armhf">Queued tests for ppa kinetic armhf' in body
    assert body.index("Queued tests for huge kinetic ppc64el") < body.index("Queued tests for ppa kinetic armhf")
    # Head of a long queue only, with a link to the full listing.
    assert body.count('<li value="') == 50 + 1
    assert "https://autopkgtest.example.com/running/queue/huge/kinetic/ppc64el" in body
    assert "Queued tests for ubuntu" not in body  # empty queues are not listed
    # JSON twin carries the same data.
    data = client.get("/api/v1/running").json
    assert data["running_count"] == 13 and len(data["jobs"]) == 13
    assert data["queues"][0]["size"] == 125 and data["queues"][0]["requests"][0]["position"] == 1
    assert client.get("/api/v1/running?queue_limit=0").json["queues"][0]["requests"] == []
    assert client.get("/running?queue_limit=x").status_code == 400


def test_running_job_block_shape(site):
    """The running-job block (docs/formats.rst): the shape clients scrape, with the /run/<uuid> link on /running."""
    client, tmp_path = site
    params = {"requester": "joe", "submit-time": "2024-02-21 11:00:51+0000", "triggers": ["hello/1.2.3"], "uuid": UUID}
    _write_running(tmp_path, {"hello": {results.run_key(params): {"noble": {"amd64": [params, 5255, "a <b> tail"]}}}})
    body = client.get("/running").get_data(as_text=True)
    lines = body.splitlines()
    uuid_line = next(i for i, line in enumerate(lines) if "<th>UUID:</th>" in line)
    running_line = next(i for i, line in enumerate(lines) if "<th>Running for:</th>" in line)
    release_line = next(i for i, line in enumerate(lines) if "<th>Release:</th>" in line)
    assert 0 < running_line - uuid_line <= 20 and 0 < uuid_line - release_line <= 50
    assert f"<th>UUID:</th><td>{UUID}</td>" in body
    assert "<th>Running for:</th><td>1h 27m 35s (5255s)</td>" in body
    assert "<th>Architecture:</th><td>amd64</td>" in body
    assert "<th>Triggers:</th><td>hello/1.2.3</td>" in body
    assert '<th>Requester:</th><td><a href="https://launchpad.net/~joe">joe</a></td>' in body
    assert "a &lt;b&gt; tail" in body
    assert f'href="https://autopkgtest.example.com/run/{UUID}"' in body


def test_private_jobs_and_queue_items_hide_everything(site):
    client, tmp_path = site
    leaked = {"ppas": ["joe:t0ken@joe/secret"], "triggers": ["s/1"]}
    _write_running(
        tmp_path,
        {
            "private-test": {"u1": {"noble": {"amd64": [{}, 5, "Running private test"]}}},
            "legacy": {results.run_key(leaked): {"noble": {"arm64": [leaked, 5, "secret log"]}}},
        },
    )
    queued = queued_document(
        {
            "ppa": {
                "noble": {"amd64": ["private job", "x " + json.dumps({"readable-by": "joe", "ppas": ["a:t0ken@b/c"]})]}
            }
        }
    )
    write_json_atomic(tmp_path / "queued.json", queued)
    for url in ("/running", "/api/v1/running", "/admin", "/running/queue/ppa/noble/amd64", "/api/v1/running/status"):
        text = client.get(url).get_data(as_text=True)
        assert "t0ken" not in text and "joe/secret" not in text and "secret log" not in text, url
    assert "2</span> running jobs" in client.get("/running").get_data(as_text=True)


def test_queue_page_paginates(site):
    client, tmp_path = site
    write_json_atomic(tmp_path / "queued.json", queued_document(json.loads(QUEUES_2022.read_text())))
    data = client.get("/api/v1/running/queue/huge/kinetic/ppc64el?offset=120&limit=10").json
    assert data["size"] == 125 and [i["position"] for i in data["requests"]] == [121, 122, 123, 124, 125]
    assert data["next_url"] is None and "offset=110" in data["previous_url"]
    body = client.get("/running/queue/huge/kinetic/ppc64el?limit=50").get_data(as_text=True)
    assert body.count("<li value=") == 50 and "offset=50&amp;limit=50" in body
    assert client.get("/running/queue/huge/nope/ppc64el").status_code == 404
    assert client.get("/running/queue/huge/kinetic/ppc64el?limit=0").status_code == 400


def _log(seconds_of_last_line: int) -> str:
    return f"  10s autopkgtest [10:00:00]: starting\n{seconds_of_last_line}s some test output\npartial line"


def test_admin_hints(site):
    client, tmp_path = site
    # The public DB says hello/noble/amd64 runs take 10 s on average (make_public_db).
    tree = {}
    jobs = {
        ("hello", "amd64"): [{"triggers": ["a/1"]}, 81, _log(80)],  # > 8 × 10 s: abnormally long
        ("hello", "arm64"): [{"triggers": ["b/1"]}, 79, _log(78)],  # not long (79 ≤ 80)
        ("other", "amd64"): [{"triggers": ["c/1"]}, 4000, _log(100)],  # stuck: 3900 s behind
        ("other", "arm64"): [{"triggers": ["d/1"]}, 4000, _log(2300)],  # 1700 s behind: not stuck
    }
    for (package, arch), value in jobs.items():
        tree.setdefault(package, {}).setdefault(results.run_key(value[0]), {}).setdefault("noble", {})[arch] = value
    _write_running(tmp_path, tree)
    data = client.get("/api/v1/admin").json
    assert [(j["package"], j["arch"]) for j in data["abnormally_long"]] == [("hello", "amd64")]
    assert data["abnormally_long"][0]["average_duration"] == 10
    assert [(j["package"], j["arch"]) for j in data["likely_stuck"]] == [("other", "amd64")]
    html = client.get("/admin").get_data(as_text=True)
    assert "Abnormally long" in html and "Likely stuck" in html and "100s" in html
    running = client.get("/running").get_data(as_text=True)
    assert running.count("⚠ abnormally long") == 1 and running.count("⚠ likely stuck") == 1


def test_status_endpoint_etag_and_job_follow(site):
    client, tmp_path = site
    params = {"triggers": ["a/1"], "uuid": UUID}
    key = results.run_key(params)
    _write_running(tmp_path, {"hello": {key: {"noble": {"amd64": [params, 10, "line 1"]}}}})
    first = client.get("/api/v1/running/status")
    assert first.status_code == 200 and first.json["running_count"] == 1
    ((job_id, summary),) = first.json["jobs"].items()
    assert summary["duration"] == 10
    assert client.get("/api/v1/running/status", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    job = client.get(f"/api/v1/running/job/{job_id}").json
    assert job["logtail"] == "line 1" and job["uuid"] == UUID
    _write_running(tmp_path, {"hello": {key: {"noble": {"amd64": [params, 20, "line 1\nline 2"]}}}})
    second = client.get("/api/v1/running/status", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.json["jobs"][job_id]["tail"] != summary["tail"]
    assert client.get(f"/api/v1/running/job/{job_id}").json["logtail"] == "line 1\nline 2"
    _write_running(tmp_path, {})
    assert client.get(f"/api/v1/running/job/{job_id}").status_code == 404
    assert client.get("/api/v1/running/job/nope").json["status"] == 404


def test_openapi_lists_live_routes(site):
    client, _ = site
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in (
        "/api/v1/running",
        "/api/v1/admin",
        "/api/v1/running/queue/{context_name}/{release}/{arch}",
        "/api/v1/running/status",
        "/api/v1/running/job/{job}",
    ):
        assert path in paths, path


def test_served_running_json_equals_recording(site):
    client, tmp_path = site
    for sample in (RUN_2022, RUN_2024):
        recorded = json.loads(sample.read_text())
        _write_running(tmp_path, recorded)
        assert json.loads(client.get("/static/running.json").get_data()) == recorded
        assert livestate.running_count(recorded) == len(client.get("/api/v1/running").json["jobs"])


def test_running_js_served(site):
    client, _ = site
    response = client.get("/static/running.js")
    assert response.status_code == 200 and b"/api/v1/running/status" in response.get_data()


def test_running_page_lags_a_newer_file_by_at_most_refresh_min(site, monkeypatch):
    client, tmp_path = site
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 1.0)
    params = {"triggers": ["a/1"]}
    key = results.run_key(params)
    _write_running(tmp_path, {"hello": {key: {"noble": {"amd64": [params, 10, "t"]}}}})
    assert "(10s)" in client.get("/running").get_data(as_text=True)
    _write_running(tmp_path, {"hello": {key: {"noble": {"amd64": [params, 20, "t"]}}}})
    assert "(10s)" in client.get("/running").get_data(as_text=True)  # within REFRESH_MIN_S: the cached page
    time.sleep(1.1)
    # Past it, the new version is built in the background while the previous one is still served:
    # no request waits for a rebuild, and the new page follows within the time of one.
    deadline = time.monotonic() + 10
    while "(20s)" not in client.get("/running").get_data(as_text=True):
        assert time.monotonic() < deadline, "the newer running.json never reached /running"
        time.sleep(0.05)


def test_running_page_reuses_unchanged_blocks_and_shows_changed_ones(site, monkeypatch):
    """After a rewrite, the page is the one a fresh process renders: changed jobs new, kept jobs as they were."""
    client, tmp_path = site
    tree: dict = {}
    for n, package in enumerate(("aaa", "bbb", "ccc")):
        params = {"requester": "joe", "triggers": [f"{package}/1"], "uuid": f"{UUID[:-1]}{n}"}
        tree[package] = {results.run_key(params): {"noble": {"amd64": [params, 100 + n, f"{n}s {package} log"]}}}
    _write_running(tmp_path, tree)
    client.get("/running").get_data()
    # bbb reported meanwhile; ddd started.
    leaf = next(iter(tree["bbb"].values()))["noble"]
    leaf["amd64"] = [leaf["amd64"][0], 700, "650s bbb moved <on>"]
    params = {"requester": "ann", "triggers": ["ddd/2"]}
    tree["ddd"] = {results.run_key(params): {"noble": {"arm64": [params, 5, "1s ddd log"]}}}
    time.sleep(0.01)
    _write_running(tmp_path, tree)
    body = client.get("/running").get_data(as_text=True)
    assert "650s bbb moved &lt;on&gt;" in body and "bbb log" not in body
    assert "0s aaa log" in body and "2s ccc log" in body and "1s ddd log" in body
    monkeypatch.setattr(live_data, "fragments", live_data.JobFragments())
    monkeypatch.setattr(live_data, "jobs_html", live_data.Derived(lambda: 0.0))
    assert client.get("/running").get_data(as_text=True) == body


def test_concurrent_first_requests_build_the_views_once():
    """Requests arriving on a cold process wait for the one build instead of each parsing the files."""
    calls = []
    started = threading.Event()
    release = threading.Event()

    def compute():
        calls.append(1)
        started.set()
        release.wait(10)
        return ["views"]

    derived = live_data.Derived(lambda: 3.0, background=True)
    got = call_together(lambda: derived.get("scope", "v1", compute), started, release)
    assert len(calls) == 1
    assert got == [("v1", ["views"])] * 8


#: The running_blocks macro as it was, including the job template per job: the oracle of the cached blocks.
_INCLUDED_BLOCKS = """{% macro running_blocks(jobs) -%}
{% for job in jobs %}
<div class="running-job">
{% include "partials/running_job.html" %}
</div>
{% endfor %}
{%- endmacro %}{{ running_blocks(jobs) }}"""


def test_package_and_user_pages_show_each_jobs_current_block(site):
    """Running-job blocks are rendered once per job state: a job that reported shows its new tail at once,
    and the blocks are the bytes of the job template included per job."""
    client, tmp_path = site
    tree: dict = {}
    for n, arch in enumerate(("amd64", "arm64", "i386")):
        params = {"requester": "joe", "triggers": [f"hello/1.{n}"], "uuid": f"{UUID[:-1]}{n}"}
        tree.setdefault("hello", {})[results.run_key(params)] = {"noble": {arch: [params, 100 + n, f"{n}s {arch} log"]}}
    _write_running(tmp_path, tree)
    first = {path: client.get(path).get_data(as_text=True) for path in ("/packages/hello", "/user/joe/")}
    assert all("0s amd64 log" in body and "2s i386 log" in body for body in first.values())
    leaf = next(iter(tree["hello"].values()))["noble"]
    leaf["amd64"] = [leaf["amd64"][0], 700, "650s amd64 moved <on>"]
    time.sleep(0.01)
    _write_running(tmp_path, tree)
    for path in ("/packages/hello", "/user/joe/"):
        body = client.get(path).get_data(as_text=True)
        assert "650s amd64 moved &lt;on&gt;" in body and "0s amd64 log" not in body
        assert "1s arm64 log" in body and "2s i386 log" in body
        client.application.extensions.pop("browse_job_blocks")  # as a fresh process renders them
        assert client.get(path).get_data(as_text=True) == body
    app = client.application
    with app.test_request_context("/user/joe/"):
        from webcontrol.web.browse import live_views

        jobs = live_views.running_for(requester="joe")
        assert len(jobs) == 3
        macros = app.jinja_env.get_template("_macros.html").module
        assert str(macros.running_blocks(jobs)) == app.jinja_env.from_string(_INCLUDED_BLOCKS).render(jobs=jobs)


#: The queued_list macro as it was: the oracle of live_views.queued_list_html.
_QUEUED_MACRO = """{% macro queued_list(items) -%}
{% set ns = namespace(queue=None) %}
{% for q in items %}
{% set key = q["context"] ~ " " ~ q["release"] ~ " " ~ q["arch"] %}
{% if key != ns.queue %}{% if ns.queue %}</ol>{% endif %}<h4>Queued tests for {{ key }}</h4><ol class="queued">\
{% set ns.queue = key %}{% endif %}
<li value="{{ q["position"] }}">{{ q["package"] }} {% for t in q["triggers"] %}{% if not loop.first %} {% endif %}\
<span class="trigger">{{ t }}</span>{% endfor %}{% if q["requester"] %} — {{ q["requester"] }}{% endif %}\
{% if q["submit_time"] %} ({{ q["submit_time"] }}){% endif %}</li>
{% endfor %}
{% if ns.queue %}</ol>{% endif %}
{%- endmacro %}{{ queued_list(items) }}"""


def test_queued_lists_are_the_macros_bytes(site):
    """Queued requests under a heading per queue, every field escaped, as the template macro wrote them."""
    client, _ = site
    special = "<b>&amp;\"'</b>"

    def item(context, arch, position, package, triggers=(), requester="", submitted=""):
        return {
            "context": context,
            "release": "noble",
            "arch": arch,
            "position": position,
            "package": package,
            "triggers": list(triggers),
            "requester": requester,
            "submit_time": submitted,
        }

    items = [
        item("ubuntu", "amd64", 1, "hello", ["hello/1.0", "glib2.0/2.80-1"], "joe", "2024-02-21 11:00:51+0000"),
        item("ubuntu", "amd64", 2, "bare"),
        item(f"ppa{special}", "arm64", 7, f"pkg{special}", [f"t{special}/1"], f"nick{special}", f"when{special}"),
        item("ubuntu", "amd64", 9, "back-to-the-first-queue", requester="ann"),
    ]
    app = client.application
    with app.test_request_context("/"):
        macros = app.jinja_env.get_template("_macros.html").module
        made = {len(shown): str(macros.queued_list(shown)) for shown in (items, items[:1], [])}
        for shown in (items, items[:1], []):
            assert made[len(shown)] == app.jinja_env.from_string(_QUEUED_MACRO).render(items=shown)
    assert special not in made[len(items)] and "&lt;b&gt;&amp;amp;&#34;&#39;&lt;/b&gt;" in made[len(items)]
    assert made[len(items)].count('<ol class="queued">') == 3
