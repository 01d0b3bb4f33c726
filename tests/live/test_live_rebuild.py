# SPDX-License-Identifier: GPL-3.0-or-later
"""A new version of running.json is rebuilt in the background, between requests, never inside one.

The collector rewrites running.json up to twice a second; a web process
serves the version it has while a thread derives the new one, and that
thread gives way to the requests in flight (a rebuild running meanwhile
made a 6 ms page take 100 ms), up to ``GIVE_WAY_MAX_S`` at a time.
"""

from __future__ import annotations

import time

import pytest
from werkzeug.wsgi import FileWrapper

from tests.live.test_live_routes_index import write_running
from webcontrol import results
from webcontrol.web.browse import live_cache, live_data


def tree(duration: int, jobs: int = 40) -> dict:
    """running.json with ``jobs`` jobs, every one running for ``duration`` seconds."""
    out: dict = {}
    for n in range(jobs):
        params = {"requester": "joe", "triggers": [f"pkg{n}/1"], "uuid": f"00000000-0000-4000-8000-{n:012d}"}
        out[f"pkg{n}"] = {results.run_key(params): {"noble": {"amd64": [params, duration, f"{n}s log of pkg{n}"]}}}
    return out


@pytest.fixture
def patient_rebuilds(monkeypatch):
    """A rebuild gives way at every chance, for as long as requests are in flight (30 s at most)."""
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 0.1)
    monkeypatch.setattr(live_cache, "GIVE_WAY_EVERY_S", 0.0)
    monkeypatch.setattr(live_cache, "GIVE_WAY_MAX_S", 30.0)


def shows(client, duration: int) -> bool:
    return f"({duration}s)" in client.get("/running").get_data(as_text=True)


def wait_for(client, duration: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not shows(client, duration):
        assert time.monotonic() < deadline, f"/running never showed the version of {duration}s"
        time.sleep(0.05)


def test_requests_get_the_old_version_while_the_rebuild_waits_for_a_request_in_flight(site, patient_rebuilds):
    client, tmp_path = site
    write_running(tmp_path / "running.json", tree(10))
    assert shows(client, 10)
    # A client still reading a long JSON answer: its request is in flight until the body is closed.
    held = client.get("/api/v1/running", buffered=False)
    write_running(tmp_path / "running.json", tree(20))
    time.sleep(0.2)  # past REFRESH_MIN_S: the next request starts the rebuild and is served the old version
    # Requests keep coming (each a step further: the views, then the page made of them), and each
    # gets the old version while the rebuild waits for the held request.
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        assert shows(client, 10), "the rebuild ran while a request was in flight"
        time.sleep(0.15)
    held.close()
    wait_for(client, 20)


@pytest.mark.parametrize(
    "url",
    ["/running", "/api/v1/running", "/admin", "/static/running.json", "/packages/no-such", "/api/v1/running/job/x"],
)
def test_every_answer_ends_its_request_for_the_rebuilds(site, patient_rebuilds, url):
    """Pages, streamed JSON, files, errors: once a client has its answer, rebuilds stop waiting for it."""
    client, tmp_path = site
    write_running(tmp_path / "running.json", tree(10))
    assert shows(client, 10)
    client.get(url).close()
    write_running(tmp_path / "running.json", tree(20))
    time.sleep(0.2)
    wait_for(client, 20, seconds=5.0)


def test_a_file_sent_by_the_servers_file_wrapper_does_not_hold_rebuilds(site, patient_rebuilds):
    """mod_wsgi sends such a file without the interpreter: its request stops counting once handed over."""
    client, tmp_path = site
    write_running(tmp_path / "running.json", tree(10))
    assert shows(client, 10)
    held = client.get("/static/running.json", buffered=False, environ_overrides={"wsgi.file_wrapper": FileWrapper})
    write_running(tmp_path / "running.json", tree(20))
    time.sleep(0.2)
    wait_for(client, 20, seconds=5.0)
    held.close()
