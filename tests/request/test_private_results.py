# SPDX-License-Identifier: GPL-3.0-or-later
"""private-results (docs/formats.rst, private-results): ACLs by user and team, Launchpad failures deny, streaming, no traversal."""

from __future__ import annotations

import gzip

import pytest

from tests.fakes.fixtures import login
from tests.fakes.site import SITE_URL
from webcontrol.store.local import LocalStore
from webcontrol.web.private import create_app as create_private_app

CONTAINER = "private-autopkgtest-noble-joe-secret"
RUN = "noble/amd64/h/hello/20240101_000000_abcde@"
LOG = gzip.compress(b"autopkgtest [00:00:00]: private log\n")


@pytest.fixture
def private(site, launchpad):
    store = LocalStore(site.values["web"]["results_dir"])
    store.put_object(CONTAINER, f"{RUN}/log.gz", LOG)
    store.put_object(CONTAINER, f"{RUN}/artifacts.tar", b"tar bytes")
    store.put_object(CONTAINER, f"{RUN}/readable-by", b"joe\nsecret-team\n")
    store.put_object(CONTAINER, "noble/amd64/h/hello/20240102_000000_abcde@/log.gz", LOG)  # no ACL
    launchpad.state.participants["secret-team"] = ["a", "b", "c", "dana"]
    return create_private_app(site.config).test_client()


def test_index_and_non_private(private):
    response = private.get("/private-results/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Please provide the path to the private result."
    response = private.get(f"/private-results/autopkgtest-noble/{RUN}/log.gz")
    assert response.status_code == 403
    assert "Limited to private results only." in response.get_data(as_text=True)


def test_anonymous_gets_login_form(private):
    response = private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert '<form action="/private-results/login" method="post">' in page
    assert f'value="{SITE_URL}/private-results/{CONTAINER}/{RUN}/log.gz"' in page


def test_listed_user_gets_gzip_stream(private):
    login(private, "joe")
    response = private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz")
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert response.get_data() == LOG
    response = private.get(f"/private-results/{CONTAINER}/{RUN}/artifacts.tar")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.get_data() == b"tar bytes"


def test_team_participant_on_a_later_page(private, launchpad):
    login(private, "dana")
    assert private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz").status_code == 200
    assert launchpad.call_count("~secret-team/participants") == 2


def test_others_denied(private, launchpad):
    login(private, "eve")
    response = private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz")
    assert response.status_code == 403
    assert "Unprivileged! You can&#39;t access these logs." in response.get_data(as_text=True)


def test_missing_acl_denies(private):
    login(private, "joe")
    response = private.get(f"/private-results/{CONTAINER}/noble/amd64/h/hello/20240102_000000_abcde@/log.gz")
    assert response.status_code == 403


def test_launchpad_error_denies(private, launchpad):
    login(private, "dana")
    launchpad.state.fail = "500"
    assert private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz").status_code == 403


def test_missing_object_is_404(private):
    login(private, "joe")
    response = private.get(f"/private-results/{CONTAINER}/{RUN}/nothing.gz")
    assert response.status_code == 404
    assert "Log not found." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        f"{CONTAINER}/noble/amd64/h/hello/20240101_000000_abcde@/../../../../../../etc/passwd",
        f"{CONTAINER}/noble/amd64/h/hello/..%2F..%2F..%2Fetc/passwd",
        f"{CONTAINER}/noble/amd64/h/hello/20240101_000000_abcde@/%2e%2e",
        "private-..%2F..%2Fetc/noble/amd64/h/hello/20240101_000000_abcde@/passwd",
        f"{CONTAINER}/noble/amd64/h/hello/20240101_000000_abcde@/readable-by/x",
    ],
)
def test_no_path_traversal(private, path):
    login(private, "joe")
    response = private.get("/private-results/" + path)
    assert response.status_code in (403, 404)
    assert b"root:" not in response.get_data()


def test_login_shared_with_request_app(site, private, client):
    """A session cookie made by one app is valid in the other (shared secret key)."""
    login(client, "joe")
    cookie = client.get_cookie("session")
    private.set_cookie("session", cookie.value)
    assert private.get(f"/private-results/{CONTAINER}/{RUN}/log.gz").status_code == 200


def test_private_login_route(private, openid_provider):
    response = private.post("/private-results/login", data={"next": "/private-results/"})
    assert response.status_code == 302
    assert "openid.return_to=" + "https%3A%2F%2Fautopkgtest.example.com%2Fprivate-results%2Flogin" in response.location


def test_split_mount(private):
    login(private, "joe")
    response = private.get(f"/{CONTAINER}/{RUN}/log.gz", base_url="http://localhost/private-results")
    assert response.status_code == 200 and response.get_data() == LOG
