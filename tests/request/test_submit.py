# SPDX-License-Identifier: GPL-3.0-or-later
"""Submitting requests: the message read back from the real broker, the success page, duplicates,
authentication by API key, HEAD, the rate limit and broker failures."""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from pathlib import Path

import pytest

from tests.fakes.fixtures import drain, login
from tests.fakes.site import ALLOWED_TEAM, SITE_URL
from tests.request.test_validation import ask, messages_of, query
from webcontrol.messages import TestRequest
from webcontrol.web.request import create_app


@pytest.fixture
def valid(site, launchpad):
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.publish("hello", "1.0~ppa1", site.release, archive="joe/tools")
    launchpad.state.ppas.add(("joe", "tools"))
    launchpad.state.uploaders.add(("joe", "hello"))
    return {"release": site.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0"}


def read_queue(amqp_uri, name: str) -> list[TestRequest]:
    return [TestRequest.parse(body) for body in drain(amqp_uri, name)]


def test_success_message_and_page(client, valid, site, amqp_uri):
    login(client)
    response = ask(client, **dict(valid, arch=["amd64", "arm64"], trigger="hello/1.0 gzip/2"), all_proposed="1")
    # gzip/2 is not published: nothing may be queued for any arch.
    assert response.status_code == 400
    assert read_queue(amqp_uri, f"debci-{site.release}-amd64") == []

    response = ask(client, **dict(valid, arch=["amd64", "arm64"]), all_proposed="1")
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "<p>Test request submitted.</p>" in page
    assert "Logout joe" in page
    bodies = {arch: drain(amqp_uri, f"debci-{site.release}-{arch}") for arch in ("amd64", "arm64")}
    assert all(len(b) == 1 for b in bodies.values())
    uuids = set()
    for arch, (body,) in bodies.items():
        package, _, text = body.decode().partition("\n")
        assert package == "hello"
        params = json.loads(text)
        # Sorted keys with ", " / ": " separators, exactly as the contract's examples.
        assert text == json.dumps(params, sort_keys=True)
        assert set(params) == {"all-proposed", "requester", "submit-time", "triggers", "uuid"}
        assert params["triggers"] == ["hello/1.0"] and params["requester"] == "joe"
        assert params["all-proposed"] == "1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0000", params["submit-time"])
        assert str(uuidlib.UUID(params["uuid"])) == params["uuid"]
        uuids.add(params["uuid"])
        expected = (
            "<dl>\n<dt>all-proposed</dt>\n<dd>1</dd>\n"
            f"<dt>arch</dt>\n<dd>{arch}</dd>\n<dt>package</dt>\n<dd>hello</dd>\n"
            f"<dt>release</dt>\n<dd>{site.release}</dd>\n<dt>requester</dt>\n<dd>joe</dd>\n"
            "<dt>triggers</dt>\n<dd>['hello/1.0']</dd>\n"
            f'<dt>Result history</dt>\n<dd><a href="{SITE_URL}/packages/hello/{site.release}/{arch}">'
            f"{SITE_URL}/packages/hello/{site.release}/{arch}</a></dd>\n"
            f"<dt>UUID</dt>\n<dd>{params['uuid']}</dd>\n"
            f'<dt>Result url</dt>\n<dd><a href="{SITE_URL}/run/{params["uuid"]}">{SITE_URL}/run/{params["uuid"]}</a></dd>\n'
            "</dl>"
        )
        assert expected in page
    assert len(uuids) == 2


def test_ppa_request_goes_to_ppa_queue_without_uuid_links(client, valid, site, amqp_uri):
    login(client)
    response = ask(client, **dict(valid, trigger="hello/1.0~ppa1"), ppa="joe/tools")
    assert response.status_code == 200, response.get_data(as_text=True)
    (request,) = read_queue(amqp_uri, f"debci-ppa-{site.release}-amd64")
    assert request.params["ppas"] == ["joe/tools"]
    page = response.get_data(as_text=True)
    assert "<dt>ppas</dt>\n<dd>['joe/tools']</dd>" in page
    assert "UUID" not in page and "Result url" not in page


def test_post_form_and_split_triggers_and_readable_by(client, valid, site, amqp_uri, launchpad):
    login(client)
    launchpad.state.publish("gzip", "2", site.release)
    data = dict(valid, trigger="hello/1.0 gzip/2")
    data["readable-by"] = "joe"
    response = client.post("/request.cgi/", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)
    (request,) = read_queue(amqp_uri, f"debci-{site.release}-amd64")
    assert request.params["triggers"] == ["hello/1.0", "gzip/2"]
    assert request.params["readable-by"] == "joe"


def test_user_values_are_escaped_once(client, valid, site, amqp_uri, launchpad):
    login(client, "o'brien")
    launchpad.state.uploaders.add(("o'brien", "hello"))
    # readable-by must be Launchpad names; the refusal does not echo the value.
    response = ask(client, **valid, readable_by="<script>{x}</script>")
    assert response.status_code == 400
    assert messages_of(response) == ["Invalid readable-by value"]
    response = ask(client, **dict(valid, package="<script>{x}</script>"))
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "package &lt;script&gt;{x}&lt;/script&gt; not found" in page
    assert "&amp;lt;" not in page
    assert read_queue(amqp_uri, f"debci-{site.release}-amd64") == []


def test_running_duplicate(client, valid, site):
    login(client)
    params = {"triggers": ["hello/1.0"], "submit-time": "2024-01-01 00:00:00+0000", "requester": "x"}
    site.write_running({"hello": {"k": {site.release: {"amd64": [params, 10, "log"]}}}})
    message = f"Test already running:\nrelease: {site.release}\npkg: hello\narch: amd64\ntriggers: hello/1.0"
    response = ask(client, **valid)
    assert response.status_code == 403
    assert "\n".join(messages_of(response)) == message
    # all-proposed differs: not a duplicate.
    assert ask(client, **valid, all_proposed="1").status_code == 200


def queued_file(release: str, context: str, items: list[str]) -> dict:
    queues = {ctx: {release: {"amd64": {"size": 0, "requests": []}}} for ctx in ("ubuntu", "huge", "ppa", "upstream")}
    queues[context][release]["amd64"] = {"size": len(items), "requests": items}
    return {"releases": [release], "arches": ["amd64"], "queues": queues}


def test_queued_duplicate_and_huge_exemption(client, valid, site, amqp_uri):
    login(client)
    item = 'hello\n{"requester": "y", "submit-time": "2024-01-01 00:00:00+0000", "triggers": ["hello/1.0"]}'
    site.write_queued(queued_file(site.release, "ubuntu", [item]))
    response = ask(client, **valid)
    assert response.status_code == 403
    assert messages_of(response) == [
        "Test already queued:",
        f"release: {site.release}",
        "pkg: hello",
        "arch: amd64",
        "triggers: hello/1.0",
    ]
    site.write_queued(queued_file(site.release, "huge", [item]))
    assert ask(client, **valid).status_code == 200
    site.write_queued(queued_file(site.release, "ubuntu", ["private job"]))
    assert ask(client, **valid, all_proposed="1").status_code == 200
    assert len(drain(amqp_uri, f"debci-{site.release}-amd64")) == 2


def test_api_key_cookie_and_bearer(site, valid, amqp_uri):
    site.write_api_keys({"joe": "s3cret"})
    client = create_app(site.config).test_client()
    client.set_cookie("X-Api-Key", "joe:s3cret")
    assert ask(client, **valid).status_code == 200
    client.set_cookie("X-Api-Key", "joe:wrong")
    response = ask(client, **valid, all_proposed="1")
    assert response.status_code == 401
    assert messages_of(response) == ["Authorization failure"]
    client.delete_cookie("X-Api-Key")
    response = client.get(
        "/request.cgi?" + query(**valid, all_proposed="1"), headers={"Authorization": "Bearer joe:s3cret"}
    )
    assert response.status_code == 200
    response = client.get("/request.cgi?" + query(**valid), headers={"Authorization": "Bearer nobody:s3cret"})
    assert response.status_code == 401
    assert len(drain(amqp_uri, f"debci-{site.release}-amd64")) == 2


def test_anonymous_gets_login_form_and_head_is_refused(client, valid, site, amqp_uri):
    url = "/request.cgi?" + query(**valid)
    response = client.get(url)
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert '<form action="/login" method="post">' in page
    expected_next = (SITE_URL + url).replace("&", "&amp;")
    assert f'<input type="hidden" name="next" value="{expected_next}">' in page
    login(client)
    for path in ("/request.cgi", "/request.cgi/", "/github/webhook"):
        response = client.head(path + "?" + query(**valid))
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, POST"
    assert drain(amqp_uri, f"debci-{site.release}-amd64") == []


def test_query_login_redirects_home(client):
    login(client)
    response = client.get("/request.cgi?/login")
    assert response.status_code == 302 and response.location == "/"


def test_mounted_with_script_name(client, valid, site, amqp_uri):
    login(client)
    response = client.get("/?" + query(**valid), base_url="http://localhost/request.cgi")
    assert response.status_code == 200
    assert len(drain(amqp_uri, f"debci-{site.release}-amd64")) == 1


def test_rate_limit(site, valid, amqp_uri, launchpad):
    site.set("web", "request_rate_limit", 2)
    client = create_app(site.config).test_client()
    login(client)
    assert ask(client, **dict(valid, arch=["amd64", "arm64"])).status_code == 200
    response = ask(client, **valid, all_proposed="1")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert messages_of(response) == ["You, joe, have requested too many tests. Please try again later."]
    # Team members are exempt. (A "not a member" answer is reused for a minute, so ask a fresh process.)
    launchpad.state.teams["joe"] = [ALLOWED_TEAM]
    client = create_app(site.config).test_client()
    login(client)
    assert ask(client, **valid, all_proposed="1").status_code == 200
    assert len(drain(amqp_uri, f"debci-{site.release}-amd64")) == 2


def test_broker_down_is_503(site, valid):
    site.set("amqp", "uri", "amqp://guest:guest@127.0.0.1:9/")
    client = create_app(site.config).test_client()
    login(client)
    response = ask(client, **valid)
    assert response.status_code == 503
    assert messages_of(response) == ["RabbitMQ is unresponsive, please try again later."]
    assert "Test request submitted" not in response.get_data(as_text=True)


def test_login_teams_stand_in_for_lookup_while_fresh(client, valid, launchpad, site, amqp_uri):
    launchpad.state.publish("newpkg", "1", site.release)
    params = dict(valid, package="newpkg", trigger="newpkg/1")
    login(client, "ann", teams=[ALLOWED_TEAM])
    assert ask(client, **params).status_code == 200
    assert launchpad.call_count("super_teams") == 0
    login(client, "ann", teams=[ALLOWED_TEAM], when=1)  # login long ago: ask Launchpad
    assert ask(client, **params).status_code == 404
    assert launchpad.call_count("super_teams") == 1
    drain(amqp_uri, f"debci-{site.release}-amd64")


def test_team_answer_cached(client, valid, launchpad, site, amqp_uri):
    launchpad.state.publish("newpkg", "1", site.release)
    launchpad.state.teams["ann"] = ["x", "y", "z", ALLOWED_TEAM]
    login(client, "ann")
    assert ask(client, **dict(valid, package="newpkg", trigger="newpkg/1")).status_code == 200
    assert ask(client, **dict(valid, package="newpkg", trigger="newpkg/1"), all_proposed="1").status_code == 200
    assert launchpad.call_count("super_teams") == 2  # two pages, once
    cache = json.loads((site.root / "team-cache.json").read_text())
    assert set(cache) == {"ann"}
    drain(amqp_uri, f"debci-{site.release}-amd64")


def test_publisher_survives_lost_connection_and_deleted_queue(client, valid, site, amqp_uri):
    import pika

    login(client)
    assert ask(client, **valid).status_code == 200
    publisher = client.application.extensions["autopkgtest-request"].publisher
    # The broker dropped us while idle: the next request reconnects transparently.
    publisher._connection.close()
    assert ask(client, **valid, all_proposed="1").status_code == 200
    assert len(drain(amqp_uri, f"debci-{site.release}-amd64")) == 2
    # Someone deleted the queue after we declared it: the message is not lost.
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    connection.channel().queue_delete(f"debci-{site.release}-amd64")
    connection.close()
    assert ask(client, **valid, readable_by="joe").status_code == 200
    (request,) = [TestRequest.parse(b) for b in drain(amqp_uri, f"debci-{site.release}-amd64")]
    assert request.params["readable-by"] == "joe"


def test_internal_error_shows_incident_not_traceback(client, valid, site, caplog):
    login(client)
    (site.root / "public.db").unlink()
    response = ask(client, **valid)
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "A server error has occurred; please try again later" in page
    assert "Incident id:" in page and "Traceback" not in page
    incident = page.split("Incident id: ")[1].split("<")[0]
    assert any(incident in r.getMessage() for r in caplog.records)


def test_wsgi_file_with_missing_required_key(tmp_path):
    """The .cgi file builds the app on the first request; a config without the DB is a plain 500."""
    import runpy

    from webcontrol import config as configmod

    path = tmp_path / "autopkgtest-cloud.conf"
    configmod.write({"web": {"state_dir": str(tmp_path / "state")}}, path)
    module = runpy.run_path(str(Path(__file__).parents[2] / "webcontrol" / "request.cgi"))
    captured = {}

    def start_response(status, headers):
        captured["status"] = status

    body = b"".join(
        module["application"](
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/request.cgi",
                "AUTOPKGTEST_CLOUD_CONF": str(path),
                "SERVER_NAME": "x",
                "SERVER_PORT": "80",
                "wsgi.url_scheme": "http",
            },
            start_response,
        )
    )
    assert captured["status"].startswith("500")
    assert b"misconfigured" in body and b"database_public" not in body


def test_publisher_after_missed_heartbeats(amqp_uri, amqp_names):
    """An idle web process misses heartbeats; its next request still publishes exactly once."""
    import time

    from webcontrol.web.request import publisher as publisher_module
    from webcontrol.web.request.publisher import Publisher

    queue = amqp_names.queue("idle")
    publisher = Publisher(amqp_uri, heartbeat=1)
    publisher_module.IDLE_RECONNECT_S, saved = 1000.0, publisher_module.IDLE_RECONNECT_S
    try:
        publisher.publish([(queue, b"a\n{}")])
        time.sleep(4)
        publisher.publish([(queue, b"b\n{}")])
        # Normally an idle connection is replaced before the broker gives up on it.
        publisher_module.IDLE_RECONNECT_S = 2.0
        time.sleep(2.5)
        publisher.publish([(queue, b"c\n{}")])
    finally:
        publisher_module.IDLE_RECONNECT_S = saved
        publisher.close()
    assert drain(amqp_uri, queue) == [b"a\n{}", b"b\n{}", b"c\n{}"]


def test_without_broker_submissions_are_disabled(site, valid, launchpad):
    """The demo has no [amqp] uri (and no Launchpad): logged-in requests get a clear answer."""
    site.set("amqp", "uri", None)
    client = create_app(site.config).test_client()
    login(client)
    response = ask(client, **valid)
    assert response.status_code == 503
    assert messages_of(response) == ["demo: submissions are disabled"]
    assert launchpad.state.calls == []
