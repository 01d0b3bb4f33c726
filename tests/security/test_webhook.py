# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub webhooks: statuses go only to the configured API, one delivery queues one request, answers come fast."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.fakes.fixtures import drain
from tests.fakes.github import FakeGitHub
from tests.security.conftest import PROJECT, SHA, encode, hook_headers, hook_query, pr_payload
from webcontrol import github
from webcontrol.web.request import create_app


def upstream(amqp_uri, site) -> int:
    return sum(len(drain(amqp_uri, f"debci-upstream-{site.release}-{arch}")) for arch in ("amd64", "arm64"))


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_statuses_url_of_another_host_is_refused(hook_site, fake_github, attacker_host, amqp_uri):
    client = create_app(hook_site.config).test_client()
    for url in (attacker_host.statuses_url("systemd", "systemd", SHA), "file:///etc/passwd"):
        body = encode(pr_payload(url))
        response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=hook_headers(body))
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "Unexpected statuses_url" in response.get_data(as_text=True)
    time.sleep(0.5)
    assert attacker_host.received == []
    assert upstream(amqp_uri, hook_site) == 0
    # The genuine URL still works and its status goes to the configured API.
    body = encode(pr_payload(fake_github.statuses_url("systemd", "systemd", SHA)))
    response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=hook_headers(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert wait_for(lambda: len(fake_github.statuses) == 1)
    assert upstream(amqp_uri, hook_site) == 1


def test_update_github_jobs_posts_only_under_api_url(hook_site, attacker_host, fake_github):
    """A record naming another host (written by an older version) never sends the token there."""
    poster = github.StatusPoster.from_config(hook_site.config, attempts=1, timeout=2)
    ok = poster.post(PROJECT, attacker_host.statuses_url("systemd", "systemd", SHA), {"state": "success"})
    assert ok is False
    assert attacker_host.received == []
    assert poster.post(PROJECT, fake_github.statuses_url("systemd", "systemd", SHA), {"state": "success"})


def test_replayed_delivery_with_another_query_is_refused(hook_site, fake_github, amqp_uri):
    client = create_app(hook_site.config).test_client()
    body = encode(pr_payload(fake_github.statuses_url("systemd", "systemd", SHA)))
    headers = hook_headers(body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    for other in (
        hook_query(hook_site).replace("arch=amd64", "arch=arm64"),
        hook_query(hook_site, env="FOO=1"),
        hook_query(hook_site, build_git="https://example.com/evil.git"),
    ):
        response = client.post("/request.cgi?" + other, data=body, headers=headers)
        assert response.status_code == 403, (other, response.get_data(as_text=True))
        assert "Delivery already used for another request" in response.get_data(as_text=True)
    response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=headers)
    assert (response.status_code, response.get_data(as_text=True)) == (200, "already queued")
    assert upstream(amqp_uri, hook_site) == 1


def test_eight_identical_deliveries_at_once_queue_one(hook_site, fake_github, amqp_uri):
    server_app = create_app(hook_site.config)
    from tests.fakes.server import ThreadedServer

    body = encode(pr_payload(fake_github.statuses_url("systemd", "systemd", SHA)))
    headers = hook_headers(body, delivery="d-8-at-once")
    with ThreadedServer(server_app) as server:
        url = f"{server.url}/request.cgi?{hook_query(hook_site)}"
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def send():
            barrier.wait()
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as err:
                statuses.append(err.code)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(statuses) == [200] * 8
    assert upstream(amqp_uri, hook_site) == 1


def test_env_values_are_literal_characters_only(hook_site, fake_github, amqp_uri):
    client = create_app(hook_site.config).test_client()
    body = encode(pr_payload(fake_github.statuses_url("systemd", "systemd", SHA)))
    for env in ("FOO=$(touch /tmp/pwn)", "A=b;c", "A='x'", "A=<b>", "A=x&y", "A=1\n"):
        query = hook_query(hook_site) + "&" + urllib.parse.urlencode({"env": env})
        response = client.post("/request.cgi?" + query, data=body, headers=hook_headers(body))
        assert response.status_code == 400, (env, response.get_data(as_text=True))
    assert upstream(amqp_uri, hook_site) == 0


def test_webhook_answers_fast_when_github_hangs(hook_site, amqp_uri):
    hanging = FakeGitHub().start()
    hanging.delay = 12.0
    try:
        hook_site.set("github", "api_url", hanging.url + "/")
        client = create_app(hook_site.config).test_client()
        body = encode(pr_payload(hanging.statuses_url("systemd", "systemd", SHA)))
        started = time.monotonic()
        response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=hook_headers(body))
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.get_data(as_text=True)
        assert elapsed < 10, elapsed
        assert upstream(amqp_uri, hook_site) == 1
        # The pending status is still sent, off the request path.
        assert wait_for(lambda: hanging.received, 5)
    finally:
        hanging.stop()


def test_webhook_answers_503_fast_when_launchpad_hangs(hook_site, fake_github, launchpad, amqp_uri):
    launchpad.state.delay = 8.0
    client = create_app(hook_site.config).test_client()
    body = encode(pr_payload(fake_github.statuses_url("systemd", "systemd", SHA)))
    started = time.monotonic()
    response = client.post("/request.cgi?" + hook_query(hook_site), data=body, headers=hook_headers(body))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 6.5, elapsed
    assert upstream(amqp_uri, hook_site) == 0
