# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the trust-boundary suite: the legitimate fakes, a rogue OpenID provider and an
attacker's HTTP host that records whatever reaches it, and request.cgi on a real threaded server."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.fakes.fixtures import (  # noqa: F401  (pytest fixtures)
    app,
    client,
    fake_github,
    fake_github_server,
    fake_launchpad,
    launchpad,
    openid_provider,
    site,
)
from tests.fakes.github import FakeGitHub
from tests.fakes.rogue_openid import RogueOpenIDProvider
from tests.fakes.server import ThreadedServer
from tests.fakes.site import SITE_URL

PROJECT = "systemd-upstream"
HOOK_SECRET = "hook-secret"
PPA = "upstream-systemd-ci/systemd-ci"
SHA = "f315d476c60ca7e5458a8db995cb8a4094569893"


@pytest.fixture(scope="session")
def rogue_provider():
    provider = RogueOpenIDProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def rogue(rogue_provider):
    rogue_provider.received.clear()
    return rogue_provider


@pytest.fixture
def attacker_host():
    """Another HTTP host (an attacker's), recording every request it receives."""
    host = FakeGitHub().start()
    yield host
    host.stop()


@pytest.fixture
def hook_site(site, launchpad, fake_github):  # noqa: F811
    """A site with one GitHub project, its PPA known to Launchpad, GitHub's API at the fake."""
    launchpad.state.ppas.add(tuple(PPA.split("/")))
    site.write_github({PROJECT: HOOK_SECRET}, [f"{PROJECT}:ci-bot:tok123"])
    site.set("github", "api_url", fake_github.url + "/")
    return site


def pr_payload(statuses_url: str, number: int = 24405, sha: str = SHA, action: str = "opened") -> dict:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "statuses_url": statuses_url,
            "head": {"sha": sha},
            "base": {"repo": {"full_name": "systemd/systemd", "clone_url": "https://github.com/systemd/systemd.git"}},
        },
    }


def hook_query(made, **extra) -> str:
    items = [("release", made.release), ("arch", "amd64"), ("package", PROJECT), ("ppa", PPA)]
    items += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return urllib.parse.urlencode(items)


def hook_headers(body: bytes, delivery: str | None = None) -> dict[str, str]:
    from webcontrol import github

    headers = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/1"}
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    headers.update(github.sign(HOOK_SECRET, body))
    return headers


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def live_server(app):  # noqa: F811
    """request.cgi behind a real threaded HTTP server (for concurrency)."""
    server = ThreadedServer(app).start()
    yield server
    server.stop()


def session_cookie(app, nick: str, teams: list[str] | None = None) -> str:  # noqa: F811
    """A signed ``session`` cookie value as a fresh login would make it."""
    import secrets
    import time

    serializer = app.session_interface.get_signing_serializer(app)
    data = {
        "nickname": nick,
        "identity_url": f"{SITE_URL}/+id/{nick}",
        "teams": teams or [],
        "login_time": int(time.time()),
        "sid": secrets.token_hex(16),
        "_permanent": True,
    }
    return serializer.dumps(data)
