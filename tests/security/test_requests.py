# SPDX-License-Identifier: GPL-3.0-or-later
"""request.cgi input: triggers cannot amplify Launchpad calls, values match whole patterns, readable-by is checked."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import drain, login
from tests.fakes.site import ALLOWED_TEAM
from tests.request.test_validation import messages_of
from tests.security.conftest import session_cookie
from webcontrol import config as configmod


def queued(amqp_uri, site) -> int:
    return sum(
        len(drain(amqp_uri, f"debci-{ctx}{site.release}-{arch}")) for ctx in ("", "ppa-") for arch in ("amd64", "arm64")
    )


@pytest.fixture
def published(site, launchpad):
    launchpad.state.publish("hello", "1.0", site.release)
    for index in range(60):
        launchpad.state.publish(f"lib{index}", "1.0", site.release)
    launchpad.state.uploaders.add(("joe", "hello"))
    return {"release": site.release, "arch": "amd64", "package": "hello"}


def test_repeated_triggers_make_few_launchpad_calls(client, published, launchpad, amqp_uri, site):
    login(client, "mallory")
    form = list(published.items()) + [("trigger", "lib1/1.0")] * 2000
    response = client.post(
        "/request.cgi", data=urllib.parse.urlencode(form), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 403, response.status_code
    assert launchpad.call_count() <= 2 * 50 + 10, launchpad.call_count()
    assert queued(amqp_uri, site) == 0


def test_too_many_triggers_is_400_without_launchpad(client, published, launchpad, amqp_uri, site):
    login(client, "joe")
    form = list(published.items()) + [("trigger", f"lib{i}/1.0") for i in range(51)]
    response = client.post("/request.cgi", data=MultiDict(form))
    assert response.status_code == 400
    assert messages_of(response)[0] == "Too many triggers (at most 50)"
    assert launchpad.call_count() == 0
    assert queued(amqp_uri, site) == 0


def test_launchpad_answers_are_reused_across_requests(client, published, launchpad):
    login(client, "mallory")
    form = list(published.items()) + [("trigger", f"lib{i}/1.0") for i in range(5)]
    assert client.post("/request.cgi", data=MultiDict(form)).status_code == 403
    first = launchpad.call_count()
    assert first > 0
    assert client.post("/request.cgi", data=MultiDict(form)).status_code == 403
    assert launchpad.call_count() == first


def test_launchpad_time_is_bounded_per_request(client, published, launchpad, amqp_uri, site):
    login(client, "mallory")
    launchpad.state.delay = 1.5
    form = list(published.items()) + [("trigger", f"lib{i}/1.0") for i in range(20)]
    started = time.monotonic()
    response = client.post("/request.cgi", data=MultiDict(form))
    elapsed = time.monotonic() - started
    launchpad.state.delay = 0
    assert response.status_code == 503, response.status_code
    assert elapsed < 22, elapsed
    assert queued(amqp_uri, site) == 0


def test_trailing_newline_never_matches(client, published, launchpad, amqp_uri, site):
    login(client, "joe")
    launchpad.state.ppas.add(("joe", "ppa"))
    launchpad.state.publish("hello", "1.0", site.release, archive="joe/ppa")
    query = dict(published, trigger="hello/1.0", ppa="joe/ppa", package="hello\n")
    response = client.get("/request.cgi?" + urllib.parse.urlencode(query))
    assert response.status_code == 404
    assert queued(amqp_uri, site) == 0


@pytest.mark.parametrize("value", ["bob\r\nx", "bob\x00", "bob\n", "Bob", "a b", "../x"])
def test_readable_by_must_be_launchpad_names(client, published, amqp_uri, site, value):
    login(client, "joe")
    query = dict(published, trigger="hello/1.0")
    query["readable-by"] = value
    response = client.get("/request.cgi?" + urllib.parse.urlencode(query))
    assert response.status_code == 400, response.status_code
    assert messages_of(response)[0] == "Invalid readable-by value"
    assert queued(amqp_uri, site) == 0


def test_readable_by_requests_are_detected_as_duplicates(client, published, amqp_uri, site):
    login(client, "joe")
    query = urllib.parse.urlencode(dict(published, trigger="hello/1.0", **{"readable-by": "joe"}))
    assert client.get("/request.cgi?" + query).status_code == 200
    # cache-amqp shows the queued request as a private job.
    site.write_queued({"queues": {"ubuntu": {site.release: {"amd64": {"size": 1, "requests": ["private job"]}}}}})
    response = client.get("/request.cgi?" + query)
    assert response.status_code == 403, response.status_code
    assert messages_of(response)[0] == "Test already queued:"
    assert queued(amqp_uri, site) == 1


def test_rate_limit_holds_under_20_concurrent_requests(site, published, launchpad, amqp_uri):
    from tests.fakes.server import ThreadedServer
    from webcontrol.web.request import create_app

    site.set("web", "request_rate_limit", 5)
    launchpad.state.uploaders.add(("joe", "*"))
    app = create_app(site.config)
    cookie = session_cookie(app, "joe")
    statuses: list[int] = []
    with ThreadedServer(app) as server:
        barrier = threading.Barrier(20)

        def send(index: int):
            query = urllib.parse.urlencode(dict(published, trigger=f"lib{index}/1.0"))
            request = urllib.request.Request(
                f"{server.url}/request.cgi?{query}", headers={"Cookie": f"session={cookie}"}
            )
            barrier.wait()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as err:
                statuses.append(err.code)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert sorted(statuses) == [200] * 5 + [429] * 15, statuses
    assert queued(amqp_uri, site) == 5


def test_team_cache_defaults_under_state_dir(tmp_path):
    from webcontrol.web.request.services import RequestServices

    config = configmod.from_dict({"web": {"state_dir": str(tmp_path / "state")}})
    services = RequestServices.from_config(config)
    assert services.membership.cache.path == str(tmp_path / "state" / "team-cache.json")
    assert ALLOWED_TEAM
