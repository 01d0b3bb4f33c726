# SPDX-License-Identifier: GPL-3.0-or-later
"""Cross-site browser requests need one confirming click; same-site links, scripts and keys queue at once.
Every HTML page of the three apps carries the framing, sniffing and script-origin headers."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from werkzeug.datastructures import MultiDict

from tests.fakes.fixtures import drain, login
from webcontrol.web.private import create_app as create_private_app
from webcontrol.web.request import create_app


@pytest.fixture
def valid(site, launchpad):
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.uploaders.add(("joe", "hello"))
    site.write_api_keys({"joe": "right-key"})
    return {"release": site.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0"}


def queued(amqp_uri, site) -> int:
    return len(drain(amqp_uri, f"debci-{site.release}-amd64"))


def test_cross_site_link_gets_a_confirmation_page(client, valid, site, amqp_uri):
    login(client, "joe")
    query = urllib.parse.urlencode(dict(valid, **{"readable-by": "mallory"}))
    response = client.get("/request.cgi?" + query, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Test request submitted" not in page
    assert queued(amqp_uri, site) == 0
    assert "mallory" in page and "hello/1.0" in page
    form = re.search(r'<form[^>]*method="post"[^>]*>(.*?)</form>', page, re.S)
    assert form, page
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1))
    assert ("readable-by", "mallory") in fields
    token = dict(fields).get("csrf_token")
    assert token
    # The one button posts the same parameters with the token: now it is queued.
    response = client.post("/request.cgi", data=MultiDict(fields), headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 1


def test_cross_site_post_without_token_is_not_queued(client, valid, site, amqp_uri):
    login(client, "joe")
    response = client.post("/request.cgi", data=valid, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert "Test request submitted" not in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 0


def test_token_of_another_session_is_refused(app, client, valid, site, amqp_uri):
    login(client, "joe")
    page = client.get("/request.cgi?" + urllib.parse.urlencode(valid), headers={"Sec-Fetch-Site": "cross-site"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    other = app.test_client()
    login(other, "joe")
    response = other.post("/request.cgi", data=dict(valid, csrf_token=token), headers={"Sec-Fetch-Site": "cross-site"})
    assert "Test request submitted" not in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 0


@pytest.mark.parametrize("fetch_site", ["same-site", "same-origin", "none", None])
def test_same_site_links_and_scripts_queue_at_once(client, valid, site, amqp_uri, fetch_site):
    login(client, "joe")
    headers = {"Sec-Fetch-Site": fetch_site} if fetch_site else {}
    response = client.get("/request.cgi?" + urllib.parse.urlencode(valid), headers=headers)
    assert response.status_code == 200
    assert "Test request submitted" in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 1


def test_bearer_key_cross_site_queues_at_once(valid, app, site, amqp_uri):
    client = app.test_client()
    response = client.get(
        "/request.cgi?" + urllib.parse.urlencode(valid),
        headers={"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer joe:right-key"},
    )
    assert "Test request submitted" in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 1


def test_api_key_cookie_cross_site_is_confirmed(valid, app, site, amqp_uri):
    client = app.test_client()
    client.set_cookie("X-Api-Key", "joe:right-key")
    response = client.get("/request.cgi?" + urllib.parse.urlencode(valid), headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert "Test request submitted" not in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 0


def test_confirmation_can_be_turned_off(site, valid, amqp_uri):
    site.set("web", "confirm_cross_site", "false")
    client = create_app(site.config).test_client()
    login(client, "joe")
    response = client.get("/request.cgi?" + urllib.parse.urlencode(valid), headers={"Sec-Fetch-Site": "cross-site"})
    assert "Test request submitted" in response.get_data(as_text=True)
    assert queued(amqp_uri, site) == 1


def _check_headers(response) -> None:
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.headers
    csp = response.headers.get("Content-Security-Policy", "")
    assert response.headers.get("X-Frame-Options") == "DENY" or "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_security_headers_on_html_of_all_apps(client, valid, site):
    from webcontrol.web.browse import create_app as create_browse_app

    for response in (client.get("/request.cgi"), client.get("/request.cgi?release=x")):
        _check_headers(response)
    private = create_private_app(site.config).test_client()
    _check_headers(private.get("/private-results/private-x/a/b/c/d/e/f"))
    browse = create_browse_app(site.config).test_client()
    for path in ("/", "/request", "/nonexistent-page"):
        _check_headers(browse.get(path))


def test_request_form_carries_the_token(site, valid):
    from webcontrol.web.browse import create_app as create_browse_app

    browse = create_browse_app(site.config).test_client()
    login(browse, "joe")
    page = browse.get("/request").get_data(as_text=True)
    assert re.search(r'name="csrf_token" value="[^"]+"', page), page


def test_user_path_with_newline_is_404(site, valid):
    from webcontrol.web.browse import create_app as create_browse_app

    browse = create_browse_app(site.config).test_client()
    assert browse.get("/user/joe%0A").status_code == 404
