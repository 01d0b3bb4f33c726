# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenID 2.0 login round trips against the local provider (real HTTP), via the Flask test client."""

from __future__ import annotations

import os
import stat
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.fakes.site import ALLOWED_TEAM, SITE_URL


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def provider_answer(url: str) -> str:
    """Follow the consumer's redirect to the provider; return the provider's redirect back."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(url, timeout=10)
    except urllib.error.HTTPError as err:
        assert err.code == 302, err.read()
        return err.headers["Location"]
    raise AssertionError("the provider did not redirect back")


def start_login(client, next_url: str) -> str:
    response = client.post("/login", data={"next": next_url})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.location


def local_path(url: str) -> str:
    """The return_to URL as the test client requests it (same path and query, no host)."""
    assert url.startswith(SITE_URL + "/login?"), url
    return url[len(SITE_URL) :]


def test_full_round_trip(client, openid_provider, site):
    openid_provider.user = "joe"
    openid_provider.teams = [ALLOWED_TEAM, "other"]
    target = SITE_URL + "/request.cgi?release=x"
    location = start_login(client, target)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert location.startswith(openid_provider.endpoint)
    assert query["openid.mode"] == ["checkid_setup"]
    assert query["openid.claimed_id"] == ["http://specs.openid.net/auth/2.0/identifier_select"]
    assert query["openid.ns.sreg"] == ["http://openid.net/extensions/sreg/1.1"]
    assert query["openid.sreg.required"] == ["nickname"]
    assert query["openid.ns.lp"] == ["http://ns.launchpad.net/2007/openid-teams"]
    assert query["openid.lp.query_membership"] == [ALLOWED_TEAM]

    back = provider_answer(location)
    response = client.get(local_path(back))
    assert response.status_code == 302
    assert response.location == target
    with client.session_transaction() as session:
        assert session["nickname"] == "joe"
        assert session["identity_url"] == openid_provider.identity("joe")
        assert session["teams"] == [ALLOWED_TEAM]
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"
    # State is server-side under <state_dir>/openid; the secret key is 0600.
    assert (site.root / "state" / "openid").is_dir()
    assert stat.S_IMODE(os.stat(site.root / "state" / "secret_key").st_mode) == 0o600
    # Logged in: an anonymous-only page now shows the nick, and /login goes straight to next.
    response = client.post("/login", data={"next": "/running"})
    assert response.status_code == 302 and response.location == "/running"
    response = client.get("/logout")
    assert response.status_code == 302 and response.location == SITE_URL + "/"
    with client.session_transaction() as session:
        assert "nickname" not in session


def test_tampered_response_is_refused(client, openid_provider):
    openid_provider.user = "joe"
    back = provider_answer(start_login(client, "/"))
    forged = back.replace("openid.sreg.nickname=joe", "openid.sreg.nickname=root")
    assert forged != back
    response = client.get(local_path(forged))
    assert response.status_code == 403
    with client.session_transaction() as session:
        assert "nickname" not in session


def test_replayed_nonce_is_refused(client, app, openid_provider):
    openid_provider.user = "joe"
    back = provider_answer(start_login(client, "/"))
    assert client.get(local_path(back)).status_code == 302
    client.get("/logout")
    # A second browser replays the captured answer.
    other = app.test_client()
    other.post("/login", data={"next": "/"})
    response = other.get(local_path(back))
    assert response.status_code == 403
    with other.session_transaction() as session:
        assert "nickname" not in session


def test_cancelled_login(client, openid_provider):
    openid_provider.cancel = True
    try:
        back = provider_answer(start_login(client, "/"))
        assert client.get(local_path(back)).status_code == 403
    finally:
        openid_provider.cancel = False


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/packages/hello", "/packages/hello"),
        (SITE_URL + "/running", SITE_URL + "/running"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/x", "/"),
        ("http://autopkgtest.example.com/x", "/"),  # other scheme than site_url
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_check(client, openid_provider, target, expected):
    openid_provider.user = "joe"
    back = provider_answer(start_login(client, target))
    response = client.get(local_path(back))
    assert response.status_code == 302
    assert response.location == expected


def test_get_login_without_next_goes_home(client):
    response = client.get("/login")
    assert response.status_code == 302 and response.location == "/"


def test_provider_down_is_503(site, launchpad):
    from webcontrol.web.request import create_app

    site.set("web", "openid_provider", "http://127.0.0.1:9/")
    client = create_app(site.config).test_client()
    response = client.post("/login", data={"next": "/"})
    assert response.status_code == 503


def test_cookie_secure_over_https_and_split_mount(app, openid_provider):
    """Behind an https front end, mounted as WSGIScriptAlias /login (path split into SCRIPT_NAME)."""
    client = app.test_client()
    openid_provider.user = "joe"
    response = client.post("", data={"next": "/"}, base_url="https://localhost/login")
    assert response.status_code == 302
    back = provider_answer(response.location)
    query = urllib.parse.urlsplit(back).query
    response = client.get("?" + query, base_url="https://localhost/login")
    assert response.status_code == 302
    cookie = client.get_cookie("session", domain="localhost")
    assert cookie.secure and cookie.http_only
    response = client.get("", base_url="https://localhost/logout")
    assert response.status_code == 302 and response.location == SITE_URL + "/"
