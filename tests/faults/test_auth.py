# SPDX-License-Identifier: GPL-3.0-or-later
"""Authentication and authorisation: nothing reaches a queue without a valid identity.

Every attempt runs against request.cgi with the real broker and a release
unique to the test; afterwards every ``debci-*`` queue of that release is
drained and must be empty. A legitimate request and a correctly signed
webhook in the same setup are queued (so the check can fail). Private
results are served only to users named in ``readable-by``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json

import flask
import pytest
from flask.sessions import SecureCookieSessionInterface

from tests.fakes.fixtures import (  # noqa: F401 - fixtures
    drain,
    fake_github,
    fake_github_server,
    fake_launchpad,
    launchpad,
    login,
    openid_provider,
    site,
)
from webcontrol import github
from webcontrol.store.local import LocalStore
from webcontrol.web.private import create_app as create_private_app
from webcontrol.web.request import create_app

PROJECT = "systemd-upstream"
HOOK_SECRET = "hook-secret"
PPA = "upstream-systemd-ci/systemd-ci"


@pytest.fixture
def env(site, launchpad, fake_github):  # noqa: F811
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.uploaders.add(("joe", "hello"))
    launchpad.state.ppas.add(tuple(PPA.split("/")))
    site.write_github({PROJECT: HOOK_SECRET}, [f"{PROJECT}:bot:tok"])
    site.write_api_keys({"joe": "right-key"})
    return site


def queued(amqp_uri, made) -> dict[str, int]:
    counts = {}
    for ctx in ("", "ppa-", "upstream-"):
        for arch in ("amd64", "arm64"):
            name = f"debci-{ctx}{made.release}-{arch}"
            counts[name] = len(drain(amqp_uri, name))
    return {k: v for k, v in counts.items() if v}


def forged_cookie(payload: dict, secret: bytes) -> str:
    """A session cookie signed with another key (what an attacker without our key can make)."""
    app = flask.Flask("forger")
    app.secret_key = secret
    return SecureCookieSessionInterface().get_signing_serializer(app).dumps(payload)


def webhook_body(fake) -> bytes:
    return json.dumps(
        {
            "action": "opened",
            "number": 7,
            "pull_request": {
                "statuses_url": fake.statuses_url("systemd", "systemd", "a" * 40),
                "head": {"sha": "a" * 40},
                "base": {
                    "repo": {"full_name": "systemd/systemd", "clone_url": "https://github.com/systemd/systemd.git"}
                },
            },
        }
    ).encode()


def hook_url(made) -> str:
    return f"/github/webhook?release={made.release}&arch=amd64&package={PROJECT}&ppa={PPA}"


def sig256(body: bytes, secret=HOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sig1(body: bytes, secret=HOOK_SECRET) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_no_message_without_a_valid_identity(env, amqp_uri, fake_github, figures):  # noqa: F811
    made = env
    app = create_app(made.config)
    params = {"release": made.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0"}
    real_key = (
        (made.root / "state" / "secret_key").read_bytes() if (made.root / "state" / "secret_key").exists() else b""
    )
    client = app.test_client()
    login(client, "joe")
    good_cookie = client.get_cookie("session").value
    body = webhook_body(fake_github)
    attempts = {}

    def attempt(name, make_request, expected_status):
        fresh = app.test_client()
        response = make_request(fresh)
        attempts[name] = (response.status_code, queued(amqp_uri, made))
        assert response.status_code == expected_status, (name, response.status_code, response.get_data(as_text=True))
        assert attempts[name][1] == {}, name

    attempt("anonymous GET", lambda c: c.get("/request.cgi", query_string=params), 403)
    attempt("anonymous POST", lambda c: c.post("/request.cgi", data=params), 403)
    for label, payload, secret in [
        ("forged cookie (other key)", {"nickname": "joe"}, b"not-our-key-0123456789ab"),
        ("forged cookie (empty key)", {"nickname": "joe"}, b"x"),
    ]:
        cookie = forged_cookie(payload, secret)
        attempt(
            label,
            lambda c, cookie=cookie: (c.set_cookie("session", cookie), c.get("/request.cgi", query_string=params))[1],
            403,
        )  # noqa: E501
    # Same payload and timestamp, first signature character changed (every bit of it is significant;
    # the last base64 character of a 20-byte HMAC carries padding bits, so changing it may change nothing).
    signed_part, signature = good_cookie.rsplit(".", 1)
    tampered = f"{signed_part}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    attempt(
        "tampered cookie",
        lambda c: (c.set_cookie("session", tampered), c.get("/request.cgi", query_string=params))[1],
        403,
    )  # noqa: E501
    attempt(
        "unsigned cookie",
        lambda c: (c.set_cookie("session", '{"nickname": "joe"}'), c.get("/request.cgi", query_string=params))[1],
        403,
    )  # noqa: E501
    attempt(
        "wrong API key",
        lambda c: (c.set_cookie("X-Api-Key", "joe:wrong-key"), c.get("/request.cgi", query_string=params))[1],
        401,
    )  # noqa: E501
    attempt(
        "API key of another user",
        lambda c: (c.set_cookie("X-Api-Key", "mallory:right-key"), c.get("/request.cgi", query_string=params))[1],
        401,
    )  # noqa: E501
    attempt(
        "API key without user",
        lambda c: (c.set_cookie("X-Api-Key", "right-key"), c.get("/request.cgi", query_string=params))[1],
        401,
    )  # noqa: E501
    attempt(
        "HEAD logged in",
        lambda c: (c.set_cookie("session", good_cookie), c.head("/request.cgi", query_string=params))[1],
        405,
    )  # noqa: E501
    attempt(
        "HEAD with API key",
        lambda c: (c.set_cookie("X-Api-Key", "joe:right-key"), c.head("/request.cgi", query_string=params))[1],
        405,
    )  # noqa: E501
    # A cross-site form post: the browser does not send the SameSite=Lax cookie, so the request is anonymous.
    attempt(
        "cross-site form POST (no cookie)",
        lambda c: c.post(
            "/request.cgi", data=params, headers={"Origin": "https://evil.example", "Referer": "https://evil.example/f"}
        ),  # noqa: E501
        403,
    )
    for label, headers in [
        ("webhook without signature", {}),
        ("webhook with wrong sha256", {"X-Hub-Signature-256": sig256(body, "wrong")}),
        (
            "webhook with wrong sha256 next to valid sha1",
            {"X-Hub-Signature-256": sig256(body, "wrong"), "X-Hub-Signature": sig1(body)},
        ),  # noqa: E501
        ("webhook with malformed sha256", {"X-Hub-Signature-256": "sha256=zz"}),
        ("webhook with wrong sha1 only", {"X-Hub-Signature": sig1(body, "wrong")}),
        ("webhook signed for other body", {"X-Hub-Signature-256": sig256(body + b" ")}),
        ("webhook with sha1 prefix in sha256 header", {"X-Hub-Signature-256": sig1(body).replace("sha1", "sha256")}),
    ]:
        hdrs = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json", **headers}
        attempt(label, lambda c, hdrs=hdrs: c.post(hook_url(made), data=body, headers=hdrs), 403)
    assert fake_github.statuses == [] and not list((made.root / "github-pending").glob("*"))

    # The session cookie is SameSite=Lax and HttpOnly (a browser withholds it from cross-site POSTs).
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax" and app.config["SESSION_COOKIE_HTTPONLY"]

    # Controls: the same setup does queue for a real identity and a correctly signed webhook.
    ok = app.test_client()
    ok.set_cookie("session", good_cookie)
    assert ok.get("/request.cgi", query_string=params).status_code == 200
    api = app.test_client()
    api.set_cookie("X-Api-Key", "joe:right-key")
    assert api.get("/request.cgi", query_string=params | {"arch": "arm64"}).status_code == 200
    signed = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json", **github.sign(HOOK_SECRET, body)}
    assert app.test_client().post(hook_url(made), data=body, headers=signed).status_code == 200
    controls = queued(amqp_uri, made)
    assert controls == {
        f"debci-{made.release}-amd64": 1,
        f"debci-{made.release}-arm64": 1,
        f"debci-upstream-{made.release}-amd64": 1,
    }
    figures.update(
        attempts=len(attempts),
        messages_queued_by_attempts=sum(sum(q.values()) for _s, q in attempts.values()),
        statuses={name: status for name, (status, _q) in attempts.items()},
        control_messages=sum(controls.values()),
        secret_key_bytes=len(real_key),
    )


CONTAINER = "private-autopkgtest-noble-joe-secret"
RUN = "noble/amd64/h/hello/20240101_000000_abcde@"


def test_private_results_only_for_readable_by(site, launchpad, figures):  # noqa: F811
    store = LocalStore(site.values["web"]["results_dir"])
    log = gzip.compress(b"the private log\n")
    store.put_object(CONTAINER, f"{RUN}/log.gz", log)
    store.put_object(CONTAINER, f"{RUN}/artifacts.tar.gz", b"private artifacts")
    store.put_object(CONTAINER, f"{RUN}/readable-by", b"joe\nsecret-team\n")
    store.put_object(CONTAINER, "noble/amd64/h/hello/20240102_000000_abcde@/log.gz", log)  # no ACL at all
    launchpad.state.participants["secret-team"] = ["ann", "dana"]
    launchpad.state.participants["other-team"] = ["mallory"]
    app = create_private_app(site.config)
    served, denied = 0, 0
    cases = [
        (None, f"{RUN}/log.gz", False),
        ("joe", f"{RUN}/log.gz", True),
        ("dana", f"{RUN}/artifacts.tar.gz", True),
        ("mallory", f"{RUN}/log.gz", False),
        ("eve", f"{RUN}/artifacts.tar.gz", False),
        ("ann", f"{RUN}/log.gz", True),  # noqa: E501
        ("JOE", f"{RUN}/log.gz", False),
        ("joe ", f"{RUN}/log.gz", False),
        ("jo", f"{RUN}/log.gz", False),
        ("joe", "noble/amd64/h/hello/20240102_000000_abcde@/log.gz", False),  # missing ACL denies
        ("eve", f"{RUN}/readable-by", False),
    ]
    for nick, name, allowed in cases:
        client = app.test_client()
        if nick:
            login(client, nick)
        response = client.get(f"/private-results/{CONTAINER}/{name}")
        got = response.get_data()
        if allowed:
            served += 1
            assert response.status_code == 200, (nick, name)
        else:
            denied += 1
            assert response.status_code in (403, 404), (nick, name, response.status_code)
            assert b"the private log" not in got and b"private artifacts" not in got and log not in got
    # A Launchpad failure while checking a team denies.
    launchpad.state.fail = "500"
    client = app.test_client()
    login(client, "dana")
    assert client.get(f"/private-results/{CONTAINER}/{RUN}/log.gz").status_code == 403
    figures.update(cases=len(cases) + 1, served=served, denied=denied + 1)


def test_local_results_route_never_serves_private_containers(site, figures):  # noqa: F811
    """With the local store browse.cgi serves /results/ itself; private-* containers stay private there,
    as Swift keeps them (no public read ACL: anonymous requests get 401)."""
    from webcontrol.web.browse import create_app as create_browse_app

    store = LocalStore(site.values["web"]["results_dir"])
    store.put_object(CONTAINER, f"{RUN}/log.gz", gzip.compress(b"the private log\n"))
    store.put_object(CONTAINER, f"{RUN}/readable-by", b"joe\n")
    store.put_object("autopkgtest-noble", f"{RUN}/log.gz", gzip.compress(b"a public log\n"))
    app = create_browse_app(site.config)
    refused = 0
    for who in (None, "joe", "mallory"):
        client = app.test_client()
        if who:
            login(client, who)
        for path in (
            f"/results/{CONTAINER}/{RUN}/log.gz",
            f"/results/{CONTAINER}/{RUN}/readable-by",
            f"/results/{CONTAINER}",
            f"/results/{CONTAINER}/",
            f"/results/{CONTAINER}?format=json",
            f"/results/{CONTAINER}?prefix=noble/&delimiter=/",
        ):
            response = client.get(path)
            assert response.status_code == 401, (who, path, response.status_code)
            assert b"private" not in response.get_data() and b"joe" not in response.get_data()
            refused += 1
    assert app.test_client().get(f"/results/autopkgtest-noble/{RUN}/log.gz").status_code == 200  # control
    figures.update(private_requests_via_results=refused, served=0)
