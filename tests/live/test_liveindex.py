# SPDX-License-Identifier: GPL-3.0-or-later
"""The index files next to queued.json and running.json: pages answer the same with and without them."""

from __future__ import annotations

import json
import os

import pytest

from tests.live.helpers import QUEUES_2022, RUN_2022
from tests.live.test_cache_amqp import Queues
from tests.live.test_live_pages import queued_document
from webcontrol import liveindex, results
from webcontrol.atomicfile import write_atomic, write_json_atomic
from webcontrol.services import amqp_status_collector
from webcontrol.web.browse import create_app

QUEUED_UUID = "0e5b7b8a-1111-4222-8333-444455556666"
RUNNING_UUID = "0e5b7b8a-aaaa-4bbb-8ccc-ddddeeeeffff"


def live_documents() -> tuple[dict, dict]:
    """Recorded queues and running jobs plus the odd items: private, malformed, non-string requester."""
    queued = queued_document(json.loads(QUEUES_2022.read_text()))
    extra = [
        "private job",
        "malformed request",
        'hello {"triggers": ["hello/1.0"], "requester": "alice", "uuid": "' + QUEUED_UUID + '"}',
        'hello {"triggers": ["hello/1.1"], "requester": "bob"}',
        'hello {"requester": ["not", "a", "string"]}',
        "hello",
        'hello ["not an object"]',
    ]
    entry = queued["queues"].setdefault("ubuntu", {}).setdefault("noble", {}).setdefault("amd64", {"requests": []})
    entry["requests"] = entry.get("requests", []) + extra
    entry["size"] = len(entry["requests"])
    running = json.loads(RUN_2022.read_text())
    params = {"triggers": ["hello/1.0"], "requester": "alice", "uuid": RUNNING_UUID}
    running.setdefault("hello", {})[results.run_key(params)] = {"noble": {"amd64": [params, 100, "10s log\n"]}}
    private = {
        "triggers": ["secret/1"],
        "requester": "alice",
        "swiftuser": "x",
        "uuid": "1" * 8 + "-1111-4111-8111-" + "1" * 12,
    }
    running.setdefault("private-test", {})[results.run_key(private)] = {"noble": {"amd64": [private, 5, "x"]}}
    return queued, running


def write_with_index(path, document, writer) -> None:
    """As cache-amqp and the collector write: the index goes into place just before the file."""
    write_atomic(path, json.dumps(document), before_replace=lambda tmp: writer(tmp, path, document))


def snapshot(client, packages, users) -> dict:
    out = {"home": client.get("/api/v1/").json["live"]}
    out["home"].pop("age_seconds")
    for package in packages:
        data = client.get(f"/api/v1/packages/{package}").json
        out[package] = (data["running"], data["queued"])
        data = client.get(f"/api/v1/packages/{package}/noble/amd64").json
        out[package + " noble/amd64"] = (data["running"], data["queued"])
    for user in users:
        data = client.get(f"/api/v1/user/{user}/").json
        out["user " + user] = (data["running"], data["queued"])
    for uuid in (QUEUED_UUID, RUNNING_UUID, "9e5b7b8a-1111-4222-8333-444455556666"):
        response = client.get(f"/run/{uuid}")
        out[uuid] = (
            response.status_code,
            "Queued" in response.get_data(as_text=True),
            "In progress" in response.get_data(as_text=True),
        )
    return out


def test_pages_answer_the_same_with_and_without_the_indexes(site):
    client, tmp_path = site
    queued, running = live_documents()
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    assert os.path.exists(tmp_path / "queued.json.index") and os.path.exists(tmp_path / "running.json.index")
    packages = ["hello", "private-test", *list(running)[:5], "x264", "xapian-core"]
    users = ["alice", "bob", "nobody"]
    indexed = snapshot(client, packages, users)
    # The index really answers: it finds what the files hold.
    assert [q["requester"] for q in indexed["hello"][1]] == ["alice", "bob", "", ""]
    assert [j["uuid"] for j in indexed["user alice"][0]] == [RUNNING_UUID, "11111111-1111-4111-8111-111111111111"]
    assert indexed["user alice"][0][1]["params"] == {}  # a private run shows nothing of its params
    assert indexed[QUEUED_UUID] == (404, True, False) and indexed[RUNNING_UUID] == (404, False, True)
    assert indexed["home"]["queued"] == sum(
        e["size"] for rels in queued["queues"].values() for arches in rels.values() for e in arches.values()
    )
    os.unlink(tmp_path / "queued.json.index")
    os.unlink(tmp_path / "running.json.index")
    assert snapshot(client, packages, users) == indexed


def test_an_index_of_another_version_is_ignored(site):
    client, tmp_path = site
    queued, running = live_documents()
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    assert len(client.get("/api/v1/packages/hello").json["queued"]) == 4
    # An older writer replaces the files without indexes: the old indexes must not be believed.
    hello = queued["queues"]["ubuntu"]["noble"]["amd64"]
    hello["requests"] = [r for r in hello["requests"] if not r.startswith("hello")]
    write_json_atomic(tmp_path / "queued.json", queued)
    write_json_atomic(tmp_path / "running.json", {})
    data = client.get("/api/v1/packages/hello").json
    assert data["queued"] == [] and data["running"] == []
    assert client.get("/api/v1/").json["live"]["running"] == 0


def test_home_counts_follow_each_version_of_the_files(site):
    """The home page's counts are kept per version of the two files, never past a rewrite."""
    client, tmp_path = site
    queued, running = live_documents()
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)

    def counts() -> dict:
        live = client.get("/api/v1/").json["live"]
        live.pop("age_seconds")
        return live

    before = counts()
    assert before["running"] > 1 and counts() == before
    one = {"hello": running["hello"]}
    write_with_index(tmp_path / "running.json", one, liveindex.write_running_index)
    after = counts()
    assert after["running"] == 1 and after["queued"] == before["queued"]
    assert after["per_arch"]["amd64"]["running"] == 1
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    assert counts() == before


def test_package_and_history_pages_follow_each_version_of_the_files(site):
    """Their running and queued lists are kept per version of the files, never past a rewrite."""
    client, tmp_path = site
    queued, running = live_documents()
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    pages = ["/packages/hello", "/packages/hello/noble/amd64", "/user/alice/"]

    def answers() -> dict:
        found = {page: client.get(page).get_data() for page in pages}
        found.update({page + " json": client.get("/api/v1" + page).get_data() for page in pages})
        return found

    before = answers()
    assert b"hello/1.1" in before["/packages/hello"] and answers() == before
    hello = queued["queues"]["ubuntu"]["noble"]["amd64"]
    hello["requests"] = [r for r in hello["requests"] if "hello/1.1" not in r]
    hello["size"] = len(hello["requests"])
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    del running["hello"]
    write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    after = answers()
    assert b"hello/1.1" not in after["/packages/hello"] and b"hello/1.1" not in after["/packages/hello json"]
    assert RUNNING_UUID.encode() not in after["/packages/hello/noble/amd64 json"]
    assert RUNNING_UUID.encode() not in after["/user/alice/"]
    # What a process that never saw the earlier versions answers.
    fresh = create_app(client.application.config["AUTOPKGTEST"]).test_client()
    assert {page: fresh.get(page).get_data() for page in pages} == {page: after[page] for page in pages}


def test_a_failing_index_never_stops_the_file(tmp_path, caplog):
    queued, _running = live_documents()
    os.mkdir(tmp_path / "queued.json.index")  # cannot be replaced by a file
    write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
    assert json.loads((tmp_path / "queued.json").read_text()) == queued
    assert "pages will parse the file instead" in caplog.text
    assert liveindex.queued_items(tmp_path / "queued.json", package="hello") is None
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_the_collector_writes_a_current_index(tmp_path):
    path = tmp_path / "running.json"
    collector = amqp_status_collector.StatusCollector("amqp://unused/", str(path), queue="unused")
    params = {"triggers": ["hello/1.0"], "requester": "alice", "uuid": RUNNING_UUID}
    collector.state.apply(amqp_status_collector.leaf_message("hello", "noble", "amd64", [params, 5, "x"]), 0.0)
    collector.write()
    jobs = liveindex.running_jobs(path, package="hello")
    assert [(j.release, j.arch, j.uuid, j.duration) for j in jobs] == [("noble", "amd64", RUNNING_UUID, 5)]
    assert liveindex.running_jobs(path, requester="alice") == jobs


@pytest.fixture
def amqp_queues(amqp_names):
    return Queues(amqp_names)


def test_cache_amqp_writes_a_current_index(amqp_queues, tmp_path):
    recorded = json.loads(QUEUES_2022.read_text())
    context, release, arch, items = next(
        (c, r, a, i) for c, rels in recorded.items() for r, arches in rels.items() for a, i in arches.items() if i
    )
    amqp_queues.publish(amqp_queues.name(context, release, arch), [item.encode() for item in items[:3]])
    amqp_queues.cache(tmp_path, [release], {release: [arch]}).run_once()
    package = items[0].split(None, 1)[0]
    found = liveindex.queued_items(tmp_path / "queued.json", package=package)
    assert found and (found[0].context, found[0].position, found[0].text) == (context, 1, items[0])


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "parsed"])
def test_user_page_lists_a_bounded_window_of_a_long_queue_with_its_total(site, indexed):
    """A requester with hundreds queued gets the first ones, the count and links through the rest."""
    client, tmp_path = site
    requests = []
    for n in range(250):
        params = {"triggers": [f"pkg{n}/1"], "requester": "alice", "uuid": f"00000000-0000-4000-8000-{n:012d}"}
        requests.append(f"pkg{n} {json.dumps(params)}")
        if n % 10 == 0:
            requests.append(f'other{n} {{"requester": "bob"}}')
    queued = {"releases": ["noble"], "arches": ["amd64", "arm64"], "queues": {"ubuntu": {"noble": {}}}}
    for arch, part in (("amd64", requests[:150]), ("arm64", requests[150:])):
        queued["queues"]["ubuntu"]["noble"][arch] = {"size": len(part), "requests": part}
    running: dict = {}
    for n in range(60):
        params = {"triggers": [f"run{n}/1"], "requester": "alice", "uuid": f"00000000-0000-4000-9000-{n:012d}"}
        running.setdefault(f"run{n}", {})[results.run_key(params)] = {"noble": {"amd64": [params, n, "log\n"]}}
    if indexed:
        write_with_index(tmp_path / "queued.json", queued, liveindex.write_queued_index)
        write_with_index(tmp_path / "running.json", running, liveindex.write_running_index)
    else:
        write_json_atomic(tmp_path / "queued.json", queued)
        write_json_atomic(tmp_path / "running.json", running)

    data = client.get("/api/v1/user/alice/").json
    assert len(data["queued"]) == 100 and len(data["running"]) == 50
    assert (data["queued_total"], data["running_total"]) == (250, 60)
    assert data["links"]["queued_previous"] is None
    # Following the links walks the whole queue once, in queue order.
    seen = [item["uuid"] for item in data["queued"]]
    url = data["links"]["queued_next"]
    assert "queued-offset=100" in url and "show-running=false" in url and "show-results=false" in url
    while url:
        page = client.get("/api/v1" + url.removeprefix("https://autopkgtest.example.com")).json
        assert page["running"] == [] and page["results"] == [] and page["queued_total"] == 250
        seen += [item["uuid"] for item in page["queued"]]
        url = page["links"]["queued_next"]
    assert seen == [f"00000000-0000-4000-8000-{n:012d}" for n in range(250)]
    assert "queued-offset=100" in page["links"]["queued_previous"]
    more = client.get("/api/v1/user/alice/?running-offset=50&show-queued=false&show-results=false").json
    assert [job["uuid"] for job in more["running"]] == [f"00000000-0000-4000-9000-{n:012d}" for n in range(50, 60)]
    assert more["links"]["running_next"] is None and "running-offset=0" in more["links"]["running_previous"]

    body = client.get("/user/alice/").get_data(as_text=True)
    assert "<h2>Queued (250)</h2>" in body and "Queued requests 1–100 of 250." in body
    assert "<h2>Running (60)</h2>" in body and "Running jobs 1–50 of 60." in body
    assert body.count('<li value="') == 100 and body.count('<table class="running">') == 50
    assert "queued-offset=100" in body and "running-offset=50" in body
    # Nothing of bob's is listed as alice's, and a short list has no pager.
    bob = client.get("/user/bob/").get_data(as_text=True)
    assert "<h2>Queued (25)</h2>" in bob and "queued-offset" not in bob and "Nothing running." in bob
    assert client.get("/user/alice/?queued-offset=-1").status_code == 400
    # What a broken link or a prober sends: a clear 400 or an empty window, never a 500.
    for query, status in (
        ("queued-offset=abc", 400),
        ("running-offset=1e3", 400),
        ("queued-offset=99999999999999999999999", 400),
        ("queued-offset=9223372036854775807", 400),
        ("queued-offset=4611686018427387904&running-offset=4611686018427387904", 200),
    ):
        response = client.get(f"/api/v1/user/alice/?{query}")
        assert response.status_code == status, (query, response.get_data(as_text=True))
    too_big = client.get("/api/v1/user/alice/?queued-offset=9223372036854775807").json["error"]
    assert "must be 0..4611686018427387904" in too_big
    edge = client.get("/api/v1/user/alice/?queued-offset=4611686018427387904").json
    assert edge["queued"] == [] and edge["queued_total"] == 250 and edge["links"]["queued_next"] is None
