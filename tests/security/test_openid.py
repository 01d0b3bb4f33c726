# SPDX-License-Identifier: GPL-3.0-or-later
"""Login trust: only the configured provider, only the browser that started, no state for anonymous visitors."""

from __future__ import annotations

import gzip
import os
import urllib.parse
from pathlib import Path

import pytest

from tests.fakes.fixtures import drain, login
from tests.fakes.site import ALLOWED_TEAM, SITE_URL
from tests.request.test_login import local_path, provider_answer, start_login
from webcontrol.store.local import LocalStore
from webcontrol.web.private import create_app as create_private_app

CONTAINER = "private-autopkgtest-noble-victim-secret"
RUN = "noble/amd64/h/hello/20240101_000000_abcde@"


def logged_in_as(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("nickname")


def return_to_of(location: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["openid.return_to"][0]


def test_rogue_provider_cannot_log_in_as_victim(app, client, site, rogue, launchpad, amqp_uri):
    """An assertion signed by another provider, for a nick and a team it chose, logs nobody in."""
    launchpad.state.publish("hello", "1.0", site.release)
    store = LocalStore(site.values["web"]["results_dir"])
    store.put_object(CONTAINER, f"{RUN}/log.gz", gzip.compress(b"victim's private log\n"))
    store.put_object(CONTAINER, f"{RUN}/readable-by", b"victim\n")

    return_to = return_to_of(start_login(client, "/"))
    back = rogue.unsolicited(return_to, SITE_URL + "/", "victim", [ALLOWED_TEAM])
    response = client.get(local_path(back))
    assert response.status_code in (400, 403), response.status_code
    assert logged_in_as(client) is None
    # The site never asked the rogue provider anything (no discovery, no check_authentication).
    assert rogue.received == []

    query = urllib.parse.urlencode(
        {"release": site.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0", "readable-by": "x"}
    )
    assert client.get("/request.cgi?" + query).status_code == 403
    assert drain(amqp_uri, f"debci-{site.release}-amd64") == []
    private = create_private_app(site.config).test_client()
    private.set_cookie("session", client.get_cookie("session").value if client.get_cookie("session") else "")
    assert private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz").status_code == 403


def test_login_query_cannot_make_the_server_fetch_urls(client, rogue):
    """An anonymous id_res naming another host's URLs makes no request to that host."""
    query = rogue.id_res_query(claimed_id=rogue.identity("victim"), op_endpoint=rogue.endpoint)
    response = client.get("/login?" + query)
    assert response.status_code in (400, 403), response.status_code
    assert rogue.received == []


def test_login_csrf_answer_for_one_browser_does_not_log_in_another(app, client, openid_provider):
    """Mallory's own provider answer, opened in the victim's browser, does not log the victim in as Mallory."""
    openid_provider.user = "mallory"
    try:
        back = provider_answer(start_login(client, "/"))
    finally:
        openid_provider.user = "joe"
    victim = app.test_client()
    response = victim.get(local_path(back))
    assert response.status_code in (400, 403), response.status_code
    assert logged_in_as(victim) is None


@pytest.mark.parametrize(
    "query",
    [
        "openid.mode=id_res&openid.ns.a=urn:x&openid.ns.b=urn:x",
        "openid.mode=id_res&openid.ns=urn:nonsense",
        "openid.mode=id_res&openid.ns=http://specs.openid.net/auth/2.0&openid.ns.sreg=http://specs.openid.net/auth/2.0",
    ],
)
def test_malformed_openid_answers_are_400(client, query):
    response = client.get("/login?" + query)
    assert response.status_code == 400, response.status_code
    assert "Traceback" not in response.get_data(as_text=True)


def test_state_cookie_is_short_lived_and_http_only(client, openid_provider):
    response = client.post("/login", data={"next": "/"})
    assert response.status_code == 302
    state = [h for h in response.headers.getlist("Set-Cookie") if not h.startswith("session=")]
    assert state, response.headers.getlist("Set-Cookie")
    assert all("HttpOnly" in h for h in state)
    ages = [int(part.split("=")[1]) for h in state for part in h.split("; ") if part.lower().startswith("max-age=")]
    assert ages and max(ages) <= 900


def _files(root: Path) -> tuple[int, int, list[Path]]:
    paths = [Path(d) / f for d, _dirs, files in os.walk(root) for f in files]
    return len(paths), sum(p.stat().st_size for p in paths), paths


def test_anonymous_login_starts_leave_bounded_state(app, site, openid_provider):
    """2,000 anonymous login starts (GET and POST): at most a handful of files, none of them a pickle."""
    state = site.root / "state"
    app.test_client().post("/login", data={"next": "/"})  # the first start may make an association
    before_count, before_bytes, _ = _files(state)
    for index in range(1000):
        browser = app.test_client()
        assert browser.get(f"/login?next=/x{index}").status_code == 302
        assert browser.post("/login", data={"next": f"/y{index}"}).status_code == 302
    count, size, paths = _files(state)
    assert count - before_count <= 2, (before_count, count)
    assert size - before_bytes <= 4096
    assert not [p for p in paths if p.read_bytes()[:1] == b"\x80"], "pickle files under state_dir"


def test_crlf_in_next_when_logged_in_is_not_a_500(client):
    login(client, "joe")
    response = client.post("/login", data={"next": "/x\r\nSet-Cookie: a=b"})
    assert response.status_code == 302
    assert response.location == "/"


def test_logout_revokes_a_copied_cookie(app, client, openid_provider, site):
    openid_provider.user = "joe"
    back = provider_answer(start_login(client, "/"))
    assert client.get(local_path(back)).status_code == 302
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    # Logged in: request.cgi validates (400), it does not ask for a login (403).
    assert thief.get("/request.cgi").status_code == 400
    assert client.get("/logout").status_code == 302
    assert thief.get("/request.cgi").status_code == 403
    assert '<form action="/login" method="post">' in thief.get("/request.cgi").get_data(as_text=True)
