# SPDX-License-Identifier: GPL-3.0-or-later
"""/retry and /api/v1/retry: many tests in one POST, each checked exactly like a single request."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import drain, login
from webcontrol.messages import TestRequest
from webcontrol.web import sessions
from webcontrol.web.request import create_app


@pytest.fixture
def uploads(site, launchpad):
    """joe may upload hello; hello/1.0 and glib2.0/2.82.0-1 are published; gzip is not his."""
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.publish("gzip", "1.12-1", site.release)
    launchpad.state.publish("glib2.0", "2.82.0-1", site.release)
    launchpad.state.uploaders.add(("joe", "hello"))
    site.write_api_keys({"joe": "right-key"})
    return site.release


def token_of(client) -> str:
    with client.session_transaction() as session:
        sid = session["sid"]
    return sessions.form_token(client.application.secret_key, f"session:{sid}")


def queued(amqp_uri, release, arch) -> list[TestRequest]:
    return [TestRequest.parse(body) for body in drain(amqp_uri, f"debci-{release}-{arch}")]


def retry_as_joe(site, items: list[str], **fields) -> str:
    """A fresh app (after ``site.set`` changes) where joe posts the /retry form: the result page."""
    client = create_app(site.config).test_client()
    login(client, "joe")
    return client.post("/retry", data={"csrf_token": token_of(client), "item": items, **fields}).get_data(as_text=True)


def outcomes(page: str) -> list[tuple[str, str, str]]:
    rows = re.findall(r"<tr class=\"(\w+)\"><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td>", page)
    return [(package, arch, outcome) for outcome, package, arch in rows]


def test_form_post_queues_skips_and_refuses_per_item(client, uploads, site, amqp_uri):
    release = uploads
    site.write_queued(
        {
            "queues": {
                "ubuntu": {release: {"arm64": {"size": 1, "requests": ['hello\n{"triggers": ["glib2.0/2.82.0-1"]}']}}}
            }
        }
    )
    login(client, "joe")
    items = [
        f"{release} amd64 hello glib2.0/2.82.0-1",
        f"{release} arm64 hello glib2.0/2.82.0-1",  # already queued: skipped
        f"{release} amd64 gzip glib2.0/2.82.0-1",  # joe may upload neither gzip nor glib2.0
        f"{release} amd64 hello glib2.0/2.82.0-1",  # the same item again: skipped
        f"{release} riscv64 hello glib2.0/2.82.0-1",  # no such arch
    ]
    response = client.post(
        "/retry", data={"item": items, "csrf_token": token_of(client)}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert '<p class="summary" id="retry-summary">1 queued, 2 skipped, 2 refused.</p>' in page
    assert outcomes(page) == [
        ("hello", "amd64", "queued"),
        ("hello", "arm64", "skipped"),
        ("gzip", "amd64", "refused"),
        ("hello", "amd64", "skipped"),
        ("hello", "riscv64", "refused"),
    ]
    assert "You are not allowed to upload gzip or glib2.0/2.82.0-1 to Ubuntu" in page
    assert "Test already queued:" in page and "arch riscv64 not found" in page
    (message,) = queued(amqp_uri, release, "amd64")
    assert message.package == "hello" and message.params["triggers"] == ["glib2.0/2.82.0-1"]
    assert message.params["requester"] == "joe"
    assert message.params["uuid"] in page


def test_extra_triggers_and_all_proposed_apply_to_every_item(client, uploads, amqp_uri):
    release = uploads
    login(client, "joe")
    response = client.post(
        "/retry",
        data={
            "item": [f"{release} amd64 hello glib2.0/2.82.0-1", f"{release} arm64 hello glib2.0/2.82.0-1"],
            "trigger": "hello/1.0",
            "all-proposed": "1",
            "csrf_token": token_of(client),
        },
    )
    assert "2 queued, 0 skipped, 0 refused." in response.get_data(as_text=True)
    for arch in ("amd64", "arm64"):
        (message,) = queued(amqp_uri, release, arch)
        assert message.params["triggers"] == ["glib2.0/2.82.0-1", "hello/1.0"]
        assert message.params["all-proposed"] == "1"


def test_cross_site_post_without_token_only_gets_a_confirmation(client, uploads, amqp_uri):
    release = uploads
    login(client, "joe")
    data = {"item": [f"{release} amd64 hello glib2.0/2.82.0-1"], "all-proposed": "1"}
    response = client.post("/retry", data=data, headers={"Sec-Fetch-Site": "cross-site"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Nothing has been queued yet" in page
    assert queued(amqp_uri, release, "amd64") == []
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    assert ("item", f"{release} amd64 hello glib2.0/2.82.0-1") in fields and ("all-proposed", "1") in fields
    response = client.post("/retry", data=MultiDict(fields), headers={"Sec-Fetch-Site": "cross-site"})
    assert "1 queued" in response.get_data(as_text=True)
    assert len(queued(amqp_uri, release, "amd64")) == 1


def test_a_link_to_retry_never_queues(client, uploads, amqp_uri):
    login(client, "joe")
    response = client.get(f"/retry?item={uploads}+amd64+hello+glib2.0/2.82.0-1")
    assert response.status_code == 200 and "Nothing has been queued yet" in response.get_data(as_text=True)
    assert queued(amqp_uri, uploads, "amd64") == []


def test_anonymous_gets_the_login_form(client, uploads):
    response = client.post("/retry", data={"item": f"{uploads} amd64 hello glib2.0/2.82.0-1"})
    assert response.status_code == 403 and '<form action="/login" method="post">' in response.get_data(as_text=True)


def test_json_with_an_api_key(site, uploads, amqp_uri):
    client = create_app(site.config).test_client()
    body = {
        "items": [
            {"release": uploads, "arch": "amd64", "package": "hello", "triggers": ["glib2.0/2.82.0-1"]},
            {"release": uploads, "arch": "amd64", "package": "gzip", "triggers": ["nope"]},
        ]
    }
    response = client.post(
        "/api/v1/retry", json=body, headers={"Authorization": "Bearer joe:right-key", "Sec-Fetch-Site": "cross-site"}
    )
    data = response.get_json()
    assert response.status_code == 200 and (data["queued"], data["refused"]) == (1, 1)
    first, second = data["items"]
    assert first["outcome"] == "queued" and first["result_url"].endswith("/run/" + first["uuid"])
    assert second == {
        "release": uploads,
        "arch": "amd64",
        "package": "gzip",
        "triggers": ["nope"],
        "outcome": "refused",
        "reason": "Malformed trigger, must be srcpackage/version",
        "status": 400,
        "uuid": None,
    }
    (message,) = queued(amqp_uri, uploads, "amd64")
    assert message.params["uuid"] == first["uuid"]


@pytest.mark.parametrize(
    "headers, body, status, error",
    [
        ({}, {"items": []}, 403, "Log in or send an API key"),
        ({"Authorization": "Bearer joe:wrong"}, {"items": []}, 401, "Authorization failure"),
        ({"Authorization": "Bearer joe:right-key"}, {"items": []}, 400, "Nothing to retry"),
        ({"Authorization": "Bearer joe:right-key"}, {"items": "x"}, 400, 'list "items"'),
        ({"Authorization": "Bearer joe:right-key"}, {"items": [{"release": 1}]}, 400, "Each item needs"),
    ],
)
def test_json_errors_are_json(site, uploads, headers, body, status, error):
    response = create_app(site.config).test_client().post("/api/v1/retry", json=body, headers=headers)
    assert response.status_code == status and error in response.get_json()["error"]


def test_json_limits(site, uploads, amqp_uri):
    app = create_app(site.config)
    client = app.test_client()
    key = {"Authorization": "Bearer joe:right-key"}
    item = {"release": uploads, "arch": "amd64", "package": "hello", "triggers": ["hello/1.0"]}
    response = client.post("/api/v1/retry", json={"items": [item] * 101}, headers=key)
    assert response.status_code == 400 and "at most 100" in response.get_json()["error"]
    response = client.post("/api/v1/retry", data=json.dumps({"items": [item]}), headers=key)
    assert response.status_code == 400 and "Content-Type: application/json" in response.get_json()["error"]
    cookie = app.test_client()
    cookie.set_cookie("X-Api-Key", "joe:right-key")
    response = cookie.post("/api/v1/retry", json={"items": [item]}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert queued(amqp_uri, uploads, "amd64") == []


def test_rate_limit_counts_every_item(site, uploads, amqp_uri):
    site.set("web", "request_rate_limit", 1)
    page = retry_as_joe(site, [f"{uploads} amd64 hello hello/1.0", f"{uploads} arm64 hello hello/1.0"])
    assert outcomes(page) == [("hello", "amd64", "queued"), ("hello", "arm64", "refused")]
    assert "You, joe, have requested too many tests. Please try again later." in page


def test_broker_down_refuses_every_accepted_item(site, uploads):
    site.set("amqp", "uri", "amqp://guest:guest@127.0.0.1:9/")
    page = retry_as_joe(site, [f"{uploads} amd64 hello hello/1.0", f"{uploads} arm64 hello hello/1.0"])
    assert outcomes(page) == [("hello", "amd64", "refused"), ("hello", "arm64", "refused")]
    assert page.count("RabbitMQ is unresponsive, please try again later.") == 2


def test_a_wrong_token_is_refused_not_confirmed(client, uploads, amqp_uri):
    login(client, "joe")
    response = client.post("/retry", data={"item": f"{uploads} amd64 hello hello/1.0", "csrf_token": "0" * 64})
    assert response.status_code == 403 and "The form has expired" in response.get_data(as_text=True)
    assert queued(amqp_uri, uploads, "amd64") == []


def test_each_item_keeps_the_trigger_cap_of_a_single_request(site, uploads, amqp_uri):
    site.set("web", "max_triggers", 2)
    items = [f"{uploads} amd64 hello glib2.0/2.82.0-1", f"{uploads} arm64 hello glib2.0/2.82.0-1 gzip/1.12-1"]
    page = retry_as_joe(site, items, trigger="hello/1.0 hello/1.0")
    assert outcomes(page) == [("hello", "amd64", "queued"), ("hello", "arm64", "refused")]
    assert "Too many triggers (at most 2)" in page
    (message,) = queued(amqp_uri, uploads, "amd64")
    assert message.params["triggers"] == ["glib2.0/2.82.0-1", "hello/1.0"]  # repeats dropped


def test_launchpad_down_refuses_the_rest_without_waiting_again(client, uploads, launchpad, amqp_uri):
    login(client, "joe")
    launchpad.state.fail = "500"
    items = [f"{uploads} amd64 hello hello/1.0", f"{uploads} arm64 hello hello/1.0", f"{uploads} amd64 gzip hello/1.0"]
    response = client.post("/retry", data={"csrf_token": token_of(client), "item": items})
    page = response.get_data(as_text=True)
    assert [o for _p, _a, o in outcomes(page)] == ["refused"] * 3
    assert page.count("Launchpad is not responding, please try again later.") == 3
    calls = launchpad.call_count()
    assert 0 < calls <= 3  # only the first item asked (with its retries); the others did not wait again
    assert queued(amqp_uri, uploads, "amd64") == []
