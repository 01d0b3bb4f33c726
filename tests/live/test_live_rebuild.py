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
    """A rebuild gives way at every chance, for as long as requests are in flight (30 s at most).

    The count of requests in flight is the process's: it starts from zero here, whatever responses
    tests run before left unclosed.
    """
    monkeypatch.setattr(live_cache, "_in_flight", 0)
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
    try:
        write_running(tmp_path / "running.json", tree(20))
        time.sleep(0.2)
        wait_for(client, 20, seconds=5.0)
    finally:
        held.close()


def test_job_blocks_are_the_templates_whatever_their_text(site, monkeypatch):
    """Blocks filled into skeletons are what the template renders, for text to escape and for markers in params."""
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 0.0)
    client, tmp_path = site
    running = tree(10, jobs=4)
    odd = {
        "requester": "joe",
        "triggers": ["a/1", "\x00slot2\x00", "\x00slot0\x00"],  # the markers skeletons are made with
        "env": ["X=<b>&'\""],
    }
    running["pkg0"] = {results.run_key(odd): {"noble": {"amd64": [odd, 5, "1s <script>&'\"\n"]}}}
    stuck = {"requester": "ann", "triggers": ["b/1"], "uuid": "00000000-0000-4000-8000-00000000000f"}
    running["pkg1"] = {results.run_key(stuck): {"noble": {"arm64": [stuck, 4000, "  12s last line\n"]}}}
    running["private-test"] = {"some-uuid": {"noble": {"amd64": [{}, 7, "Running private test"]}}}
    for turn in range(3):  # a first version, then the same jobs reporting (a new duration and log line)
        for keys in running.values():
            for releases in keys.values():
                for arches in releases.values():
                    for leaf in arches.values():
                        leaf[1] += 10
                        leaf[2] += f"more output <&> at {leaf[1]}\n"
        write_running(tmp_path / "running.json", running)
        body = client.get("/running").get_data(as_text=True)
        with client.application.test_request_context("/running"):
            template = client.application.jinja_env.get_template("partials/running_job.html")
            views = live_data.running_views()[1]
            packages = [view["package"] for view in views]
            expected = "".join(
                template.render(job=view, first=n == 0 or packages[n - 1] != view["package"])
                for n, view in enumerate(views)
            )
        assert expected in body, turn
        assert "likely stuck" in expected and "&lt;script&gt;" in expected and "\x00slot2\x00" in expected
