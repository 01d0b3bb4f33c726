# SPDX-License-Identifier: GPL-3.0-or-later
"""/running, /admin, queue pages, the status endpoint and the queue JSON files over the live indexes.

These routes answer from what cache-amqp and the collector write next to
their files (queued.json.index, queues.json, queue_size.json) and from
parts encoded once per file version; the bytes must be those the routes
made by parsing the files, for every deployment state: files written by
the current writers, by older ones (no index, an index without the queue
items, no queue JSON files), and a mix of both (mid-upgrade).
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.live.helpers import QUEUES_2022, browse_client
from tests.live.test_cache_amqp import make_public_db
from tests.live.test_live_pages import queued_document
from tests.live.test_liveindex import QUEUED_UUID, RUNNING_UUID, live_documents
from webcontrol import liveindex, livestate
from webcontrol.atomicfile import write_atomic, write_json_atomic
from webcontrol.web.browse import live_data

URLS = (
    "/running",
    "/api/v1/running",
    "/running?queue_limit=2",
    "/api/v1/running?queue_limit=0",
    "/admin",
    "/api/v1/admin",
    "/api/v1/running/status",
    "/running/queue/ubuntu/noble/amd64",
    "/api/v1/running/queue/ubuntu/noble/amd64?offset=1&limit=3",
    "/running/queue/huge/kinetic/ppc64el?offset=120&limit=10",
    "/api/v1/running/queue/ubuntu/nope/amd64",
    "/queues.json",
    "/queue_size.json",
    # Trigger pages list the live jobs and requests of a trigger (a private job's never).
    "/trigger/glib2.0/2.73.3-1",
    "/api/v1/trigger/glib2.0/2.73.3-1",
    "/api/v1/trigger/hello/1.0",
    "/api/v1/trigger/secret/1",
)


@pytest.fixture(autouse=True)
def steady_pages(monkeypatch):
    """Pages follow every rewrite at once, and the files' ages are the same in every request."""
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 0.0)
    monkeypatch.setattr(livestate, "file_age", lambda path: 7.0 if path and os.path.exists(path) else None)


def write_queued(path, document, listings: bool = True, index: bool = True) -> None:
    """queued.json as cache-amqp writes it: the queue JSON files, then the index naming them, then the file."""
    written = liveindex.write_queue_listings(path, document) if listings else None
    write_atomic(
        path,
        json.dumps(document, ensure_ascii=False),
        before_replace=(lambda tmp: liveindex.write_queued_index(tmp, path, document, written)) if index else None,
    )


def write_running(path, tree) -> None:
    write_atomic(path, json.dumps(tree), before_replace=lambda tmp: liveindex.write_running_index(tmp, path, tree))


def bodies(client) -> dict[str, tuple[int, bytes]]:
    return {url: (response.status_code, response.get_data()) for url in URLS for response in [client.get(url)]}


def test_live_routes_answer_the_same_from_the_indexes_and_from_the_files(site):
    client, tmp_path = site
    queued, running = live_documents()
    write_queued(tmp_path / "queued.json", queued)
    write_running(tmp_path / "running.json", running)
    assert os.path.exists(tmp_path / "queues.json") and os.path.exists(tmp_path / "queue_size.json")
    indexed = bodies(client)
    assert indexed["/running"][0] == 200 and indexed["/api/v1/running/queue/ubuntu/nope/amd64"][0] == 404
    hello = json.loads(indexed["/api/v1/trigger/hello/1.0"][1])
    assert [job["uuid"] for job in hello["running"]] == [RUNNING_UUID]
    assert [item["uuid"] for item in hello["queued"]] == [QUEUED_UUID]
    assert json.loads(indexed["/api/v1/trigger/secret/1"][1])["running"] == []
    assert len(json.loads(indexed["/api/v1/trigger/glib2.0/2.73.3-1"][1])["queued"]) == 125
    # The JSON routes send what flask.jsonify makes of the same data (keys sorted, compact, a newline).
    json_provider = client.application.json
    for url, (_status, body) in indexed.items():
        if url.startswith("/api/v1/"):
            assert body == (json_provider.dumps(json.loads(body), separators=(",", ":")) + "\n").encode(), url
    # The queue JSON files are the bytes browse.cgi derives from queued.json (docs/formats.rst).
    assert indexed["/queues.json"][1] == json.dumps(livestate.queues_json(queued), ensure_ascii=False).encode()
    assert indexed["/queue_size.json"][1] == json.dumps(livestate.queue_sizes(queued), ensure_ascii=False).encode()
    # Older writers replace the files without any of it: the pages parse the files, with the same result.
    write_json_atomic(tmp_path / "queued.json", queued)
    write_json_atomic(tmp_path / "running.json", running)
    assert bodies(client) == indexed
    # Mid-upgrade: a new collector, an old cache-amqp (an index without the queue items or the JSON files).
    write_running(tmp_path / "running.json", running)
    write_queued(tmp_path / "queued.json", queued, listings=False)
    conn = sqlite3.connect(tmp_path / "queued.json.index")
    conn.execute("DROP TABLE request")
    conn.execute("DROP TABLE item_trigger")
    conn.commit()
    conn.close()
    assert bodies(client) == indexed


def test_live_routes_read_the_indexes_not_the_files(site, tmp_path_factory):
    """With current indexes no web process parses queued.json (10 MB held per process at 50,000 requests)."""
    client, tmp_path = site
    queued = queued_document(json.loads(QUEUES_2022.read_text()))
    elsewhere = tmp_path_factory.mktemp("same-files")
    for folder in (tmp_path, elsewhere):
        write_queued(folder / "queued.json", queued)
        write_running(folder / "running.json", {})
    make_public_db(elsewhere / "public.db", {"noble": ["amd64", "arm64"], "kinetic": ["amd64"]})
    expected = bodies(browse_client(elsewhere, "kinetic noble"))
    assert '<a href="#queue-huge-kinetic-ppc64el" data-queue="huge/kinetic/ppc64el">125</a>' in (
        expected["/running"][1].decode()
    )
    # Same size, same mtime, nothing parseable: only a page that parses the file can tell.
    path = tmp_path / "queued.json"
    stat = os.stat(path)
    path.write_bytes(b" " * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert bodies(client) == expected


def test_queue_json_files_of_another_version_are_not_served(site):
    """cache-amqp wrote the files, then an older one replaced queued.json: the files no longer match it."""
    client, tmp_path = site
    queued, _running = live_documents()
    write_queued(tmp_path / "queued.json", queued)
    old_listing = client.get("/queues.json").get_data()
    queued["queues"]["ubuntu"]["noble"]["amd64"] = {"size": 1, "requests": ["newer\n{}"]}
    write_json_atomic(tmp_path / "queued.json", queued)
    served = client.get("/queues.json").get_data()
    assert served != old_listing and json.loads(served)["ubuntu"]["noble"]["amd64"] == ["newer\n{}"]
    assert json.loads(client.get("/queue_size.json").get_data())["ubuntu"]["noble"]["amd64"] == 1
    # And an index that names other files than those on disk (replaced by hand, or a failed write).
    write_queued(tmp_path / "queued.json", queued)
    write_json_atomic(tmp_path / "queues.json", {"stale": True})
    assert json.loads(client.get("/queues.json").get_data())["ubuntu"]["noble"]["amd64"] == ["newer\n{}"]


def test_encoded_routes_follow_a_rewrite(site):
    client, tmp_path = site
    queued, running = live_documents()
    write_queued(tmp_path / "queued.json", queued)
    write_running(tmp_path / "running.json", running)
    before = {url: client.get(url).json for url in ("/api/v1/running", "/api/v1/admin", "/api/v1/running/status")}
    # One job reports: its text is encoded anew, the others' kept.
    leaf = running["hello"][next(iter(running["hello"]))]["noble"]["amd64"]
    leaf[1], leaf[2] = 4321, "4000s moved on\n"
    write_running(tmp_path / "running.json", running)
    moved = client.get("/api/v1/running").json
    changed = [job for job in moved["jobs"] if job not in before["/api/v1/running"]["jobs"]]
    assert [(job["package"], job["duration"], job["logtail"]) for job in changed] == [
        ("hello", 4321, "4000s moved on\n")
    ]
    status = client.get("/api/v1/running/status").json["jobs"]
    assert status[changed[0]["id"]]["duration"] == 4321
    assert client.get(f"/api/v1/running/job/{changed[0]['id']}").json == changed[0]
    write_running(tmp_path / "running.json", {})
    queued["queues"]["ubuntu"]["noble"]["amd64"] = {"size": 0, "requests": []}
    write_queued(tmp_path / "queued.json", queued)
    after = {url: client.get(url).json for url in before}
    assert before["/api/v1/running"]["running_count"] > 0 and after["/api/v1/running"]["running_count"] == 0
    assert after["/api/v1/running"]["jobs"] == [] and after["/api/v1/running/status"]["jobs"] == {}
    assert after["/api/v1/running"]["queued_count"] == before["/api/v1/running"]["queued_count"] - 7
    assert after["/api/v1/running/status"]["queue_sizes"]["ubuntu"]["noble"]["amd64"] == 0
    assert after["/api/v1/admin"]["running_count"] == 0


@pytest.mark.parametrize("params", ["{", "[1, 2]", "null"])
def test_an_index_with_broken_job_params_is_not_trusted(site, params):
    """A running index whose params are not a JSON object (edited by hand, or a broken writer): pages read the file."""
    client, tmp_path = site
    queued, running = live_documents()
    write_queued(tmp_path / "queued.json", queued)
    write_running(tmp_path / "running.json", running)
    expected = bodies(client)
    write_running(tmp_path / "running.json", running)  # a new version, so nothing cached answers for it
    conn = sqlite3.connect(tmp_path / "running.json.index")
    conn.execute("UPDATE job SET params = ?", (params,))
    conn.commit()
    conn.close()
    got = bodies(client)
    assert all(status < 500 for status, _body in got.values())
    assert got == expected
