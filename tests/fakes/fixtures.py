# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest fixtures shared by tests/request and tests/github: the fakes, a site, its app and client."""

from __future__ import annotations

import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.launchpad import FakeLaunchpad
from tests.fakes.openid_provider import FakeOpenIDProvider
from tests.fakes.site import make_site, unique_release
from webcontrol.web.request import create_app

ARCHES = ("amd64", "arm64")


@pytest.fixture(scope="session")
def fake_launchpad():
    lp = FakeLaunchpad().start()
    yield lp
    lp.stop()


@pytest.fixture
def launchpad(fake_launchpad):
    fake_launchpad.reset()
    return fake_launchpad


@pytest.fixture(scope="session")
def fake_github_server():
    gh = FakeGitHub().start()
    yield gh
    gh.stop()


@pytest.fixture
def fake_github(fake_github_server):
    fake_github_server.statuses.clear()
    fake_github_server.refused.clear()
    fake_github_server.fail_next = 0
    fake_github_server.delay = 0.0
    fake_github_server.received.clear()
    return fake_github_server


@pytest.fixture(scope="session")
def openid_provider():
    provider = FakeOpenIDProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def site(tmp_path, launchpad, amqp_uri, amqp_names, openid_provider, fake_github_server):
    """A site whose release is unique to the test; its debci queues are deleted afterwards.

    Its GitHub API is the fake GitHub, the only host statuses may go to.
    """
    release = unique_release()
    tests = [(pkg, release, arch) for pkg in ("hello", "gzip", "libpng1.6") for arch in ARCHES]
    made = make_site(tmp_path / "site", release, tests, launchpad.url, amqp_uri, openid_provider.url)
    made.set("github", "api_url", fake_github_server.url + "/")
    for ctx in ("", "ppa-", "upstream-"):
        for arch in ARCHES:
            amqp_names.queues.append(f"debci-{ctx}{release}-{arch}")
    return made


@pytest.fixture
def app(site):
    return create_app(site.config)


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, nick: str = "joe", teams: list[str] | None = None, when: int | None = None) -> None:
    """Put a login in the session cookie (the OpenID round trip itself is tested in test_login)."""
    import secrets
    import time

    with client.session_transaction() as session:
        session["sid"] = secrets.token_hex(16)
        session["nickname"] = nick
        session["identity_url"] = f"https://login.example.com/+id/{nick}"
        session["teams"] = teams or []
        session["login_time"] = int(time.time() if when is None else when)


def drain(uri: str, queue: str) -> list[bytes]:
    """Consume every message of a queue; a queue that was never declared is empty."""
    import pika
    import pika.exceptions

    from tests.services import amqp as amqp_fixtures

    try:
        return amqp_fixtures.drain(uri, queue)
    except pika.exceptions.ChannelClosedByBroker as err:
        if err.reply_code == 404:
            return []
        raise
