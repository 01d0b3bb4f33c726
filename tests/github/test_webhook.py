# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub webhooks on request.cgi (docs/formats.rst, GitHub webhook): signatures, events, validation, records, pending status."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from tests.fakes.fixtures import drain
from tests.fakes.site import SITE_URL
from tests.request.test_validation import messages_of
from webcontrol import github
from webcontrol.messages import TestRequest
from webcontrol.web.request import create_app

PROJECT = "systemd-upstream"
SECRET = "s3cr3t-hook"
PPA = "upstream-systemd-ci/systemd-ci"
SHA = "f315d476c60ca7e5458a8db995cb8a4094569893"


def payload(fake_github, action="opened", number=24405, sha=SHA) -> dict:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "statuses_url": fake_github.statuses_url("systemd", "systemd", sha),
            "head": {"sha": sha},
            "base": {"repo": {"full_name": "systemd/systemd", "clone_url": "https://github.com/systemd/systemd.git"}},
        },
    }


@pytest.fixture
def hook(site, launchpad, fake_github):
    launchpad.state.ppas.add(tuple(PPA.split("/")))
    site.write_github({PROJECT: SECRET}, [f"{PROJECT}:ci-bot:tok123"])
    return create_app(site.config).test_client()


def hook_query(site, **extra) -> str:
    items = [("release", site.release), ("arch", "amd64"), ("package", PROJECT), ("ppa", PPA)]
    items += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return urllib.parse.urlencode(items)


def deliver(client, query: str, body: bytes, event="pull_request", secret=SECRET, path="/request.cgi", headers=None):
    sent = {"X-GitHub-Event": event, "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc"}
    sent.update(github.sign(secret, body))
    sent.update(headers or {})
    sent = {k: v for k, v in sent.items() if v is not None}
    return client.post(f"{path}?{query}", data=body, headers=sent)


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


def upstream_queue(site, arch="amd64") -> str:
    return f"debci-upstream-{site.release}-{arch}"


def test_pull_request_is_queued_recorded_and_announced(hook, site, fake_github, amqp_uri):
    body = json.dumps(payload(fake_github)).encode()
    query = hook_query(site, env="CFLAGS=-O0;DEBUG=1", testname="unit-tests")
    response = deliver(hook, query, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "<p>Test request submitted.</p>" in response.get_data(as_text=True)
    (raw,) = drain(amqp_uri, upstream_queue(site))
    request = TestRequest.parse(raw)
    assert request.package == PROJECT
    statuses_url = fake_github.statuses_url("systemd", "systemd", SHA)
    params = dict(request.params)
    assert set(params) == {"build-git", "env", "ppas", "testname", "submit-time", "uuid"}
    assert params["build-git"] == "https://github.com/systemd/systemd.git#refs/pull/24405/head"
    assert params["env"] == [
        "CFLAGS=-O0",
        "DEBUG=1",
        "UPSTREAM_PULL_REQUEST=24405",
        f"GITHUB_STATUSES_URL={statuses_url}",
    ]
    assert params["ppas"] == [PPA] and params["testname"] == "unit-tests"
    # Pending-job record.
    record = site.root / "github-pending" / f"{site.release}-amd64-{PROJECT}-unit-tests-24405-{SHA}"
    saved = json.loads(record.read_text())
    assert saved["release"] == site.release and saved["arch"] == "amd64" and saved["package"] == PROJECT
    assert saved["env"] == params["env"] and saved["ppas"] == [PPA] and saved["build-git"] == params["build-git"]
    assert saved["testname"] == "unit-tests"
    # The pending status, posted off the request path, with the project's credentials.
    assert wait_for(lambda: fake_github.statuses)
    (status,) = fake_github.statuses
    assert status.body == {
        "state": "pending",
        "context": f"{site.release}/amd64 unit-tests",
        "description": "autopkgtest running",
        "target_url": f"{SITE_URL}/running#pkg-{PROJECT}",
    }
    assert (status.user, status.token) == ("ci-bot", "tok123")
    assert status.user_agent and status.accept == "application/vnd.github+json"
    # Once posted, the record no longer holds it as a to-do for update-github-jobs.
    assert wait_for(lambda: "pending-status" not in json.loads(record.read_text()))

    # A redelivery is answered 200 and queues nothing.
    response = deliver(hook, query, body)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "already queued"
    assert drain(amqp_uri, upstream_queue(site)) == []
    assert len(fake_github.statuses) == 1


def test_ping_and_irrelevant_actions(hook, site, fake_github, amqp_uri):
    response = deliver(hook, hook_query(site), b'{"zen": "Keep it simple."}', event="ping")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "OK")
    response = deliver(hook, hook_query(site), json.dumps(payload(fake_github, action="closed")).encode())
    assert response.get_data(as_text=True) == "GitHub PR action closed is not relevant for testing"
    response = deliver(hook, hook_query(site), b"{}", event="push")
    assert response.get_data(as_text=True) == "GitHub PR action <none> is not relevant for testing"
    assert drain(amqp_uri, upstream_queue(site)) == []


@pytest.mark.parametrize("case", ["forged", "truncated", "sha256-wrong-sha1-valid", "unsigned", "unknown-package"])
def test_bad_signatures_rejected(hook, site, fake_github, amqp_uri, case):
    body = json.dumps(payload(fake_github)).encode()
    query = hook_query(site)
    if case == "forged":
        response = deliver(hook, query, body, secret="guessed")
    elif case == "truncated":
        headers = github.sign(SECRET, body)
        response = deliver(hook, query, body[:-10], headers=headers)
    elif case == "sha256-wrong-sha1-valid":
        headers = {"X-Hub-Signature-256": github.sign("guessed", body)["X-Hub-Signature-256"]}
        response = deliver(hook, query, body, headers=headers)
    elif case == "unsigned":
        response = deliver(hook, query, body, headers={"X-Hub-Signature-256": None, "X-Hub-Signature": None})
    else:
        response = deliver(hook, query.replace(PROJECT, "other-project"), body)
    assert response.status_code == 403
    assert "GitHub signature verification failed" in response.get_data(as_text=True)
    assert drain(amqp_uri, upstream_queue(site)) == []
    assert fake_github.statuses == []


def test_sha1_alone_is_accepted(hook, site, fake_github, amqp_uri):
    body = json.dumps(payload(fake_github)).encode()
    response = deliver(hook, hook_query(site), body, headers={"X-Hub-Signature-256": None}, path="/github/webhook")
    assert response.status_code == 200
    assert len(drain(amqp_uri, upstream_queue(site))) == 1


def test_missing_field(hook, site, fake_github):
    data = payload(fake_github)
    del data["pull_request"]["statuses_url"]
    response = deliver(hook, hook_query(site), json.dumps(data).encode())
    assert response.status_code == 400
    assert messages_of(response) == ["Missing field in JSON data: 'statuses_url'"]


@pytest.mark.parametrize(
    "change,status,message",
    [
        ({"release": "zesty"}, 404, "release zesty not found"),
        ({"arch": "riscv64"}, 404, "arch riscv64 not found"),
        ({"ppa": None}, 400, "Must specify at least one PPA (to associate results with)"),
        ({"ppa": "nobody/nothing"}, 404, "ppa nobody/nothing not found"),
        ({"env": "lower case=1"}, 400, 'Invalid environment variable format "lower case=1"'),
        ({"build-git": "git://x/y"}, 400, "Malformed build-git"),
        ({"testname": "-x"}, 400, "Malformed testname"),
        ({"colour": "blue", "size": "xl"}, 400, "Unsupported arguments: colour size"),
    ],
)
def test_validation(hook, site, fake_github, amqp_uri, change, status, message):
    items = {"release": site.release, "arch": "amd64", "package": PROJECT, "ppa": PPA}
    items.update(change)
    query = urllib.parse.urlencode([(k, v) for k, v in items.items() if v is not None])
    response = deliver(hook, query, json.dumps(payload(fake_github)).encode())
    assert response.status_code == status, response.get_data(as_text=True)
    assert messages_of(response) == [message]
    assert drain(amqp_uri, upstream_queue(site)) == []


def test_status_failure_is_only_logged(hook, site, fake_github, amqp_uri, caplog):
    fake_github.fail_next = 100
    response = deliver(hook, hook_query(site), json.dumps(payload(fake_github)).encode())
    assert response.status_code == 200
    assert len(drain(amqp_uri, upstream_queue(site))) == 1
    assert wait_for(lambda: any("giving up on GitHub status" in r.getMessage() for r in caplog.records))
    # The status stays in the record, for update-github-jobs to post.
    (record,) = (site.root / "github-pending").glob("[!.]*")
    assert json.loads(record.read_text())["pending-status"]["state"] == "pending"


def test_running_duplicate(hook, site, fake_github, amqp_uri):
    data = payload(fake_github)
    statuses_url = data["pull_request"]["statuses_url"]
    params = {
        "build-git": "https://github.com/systemd/systemd.git#refs/pull/24405/head",
        "env": ["UPSTREAM_PULL_REQUEST=24405", f"GITHUB_STATUSES_URL={statuses_url}"],
        "ppas": [PPA],
        "submit-time": "2024-01-01 00:00:00+0000",
    }
    site.write_running({PROJECT: {"k": {site.release: {"amd64": [params, 5, ""]}}}})
    response = deliver(hook, hook_query(site), json.dumps(data).encode())
    assert response.status_code == 403
    assert "Test already running:" in response.get_data(as_text=True)
    assert drain(amqp_uri, upstream_queue(site)) == []


def test_replay_script_without_github_headers_needs_signature(hook, site, fake_github, amqp_uri):
    """A POST naming api.github.com is treated as a webhook, so it cannot bypass login or signatures."""
    body = json.dumps(payload(fake_github)).encode().replace(b"127.0.0.1", b"api.github.com")
    response = hook.post(f"/request.cgi?{hook_query(site)}", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 403
    assert "GitHub signature verification failed" in response.get_data(as_text=True)


@pytest.mark.parametrize("number", ["1/2", True, None, {"x": 1}])
def test_malformed_pr_number(hook, site, fake_github, amqp_uri, number):
    data = payload(fake_github)
    data["number"] = number
    response = deliver(hook, hook_query(site), json.dumps(data).encode())
    assert response.status_code == 400
    assert drain(amqp_uri, upstream_queue(site)) == []
    assert list((site.root).glob("github-pending/*")) == []
