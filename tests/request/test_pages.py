# SPDX-License-Identifier: GPL-3.0-or-later
"""The browse-side pages of request.cgi's features: the /request form and /github-jobs."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.fakes.site import SITE_URL
from webcontrol import github
from webcontrol.web.appbase import create_flask_app
from webcontrol.web.request.pages import bp


@pytest.fixture
def browse(site):
    """A stand-in browse app: the shared Flask setup plus the blueprint, as browse.cgi registers it."""
    app = create_flask_app("browse-test", site.config)
    app.register_blueprint(bp)
    return app.test_client()


def test_form_lists_releases_and_arches(browse, site):
    page = browse.get("/request").get_data(as_text=True)
    assert f'<option value="{site.release}"' in page
    assert '<input type="checkbox" name="arch" value="amd64">' in page
    assert '<input type="checkbox" name="arch" value="arm64">' in page
    assert f'data-submit-to="{SITE_URL}/request.cgi"' in page
    assert f'<script src="{SITE_URL}/static/request_form.js" defer></script>' in page
    assert "You need to log in" in page


def test_form_post_redirects_to_request_cgi_without_empty_fields(browse, site):
    response = browse.post(
        "/request",
        data={
            "release": site.release,
            "arch": ["amd64", "arm64"],
            "package": "hello",
            "trigger": "hello/1.0",
            "ppa": "",
        },
    )
    assert response.status_code == 303
    split = urllib.parse.urlsplit(response.location)
    assert f"{split.scheme}://{split.netloc}{split.path}" == f"{SITE_URL}/request.cgi"
    assert urllib.parse.parse_qsl(split.query) == [
        ("release", site.release),
        ("arch", "amd64"),
        ("arch", "arm64"),
        ("package", "hello"),
        ("trigger", "hello/1.0"),
    ]


def test_github_jobs_page(browse, site):
    jobs = github.PendingJobs(site.config.pending_dir)
    for sha, arch in (("a" * 40, "amd64"), ("b" * 40, "arm64"), ("c" * 40, "amd64")):
        url = f"https://api.github.com/repos/o/r/statuses/{sha}"
        jobs.write(
            github.record_name(site.release, arch, "proj", None, 5, url),
            {
                "release": site.release,
                "arch": arch,
                "package": "proj",
                "env": ["UPSTREAM_PULL_REQUEST=5", f"GITHUB_STATUSES_URL={url}"],
                "ppas": ["o/p"],
                "created": 1700000000,
            },
        )
    item = "proj\n" + json.dumps({"env": ["GITHUB_STATUSES_URL=https://api.github.com/repos/o/r/statuses/" + "a" * 40]})
    site.write_queued({"queues": {"upstream": {site.release: {"amd64": {"size": 1, "requests": [item]}}}}})
    running_params = {"env": ["GITHUB_STATUSES_URL=https://api.github.com/repos/o/r/statuses/" + "b" * 40]}
    site.write_running({"proj": {"k": {site.release: {"arm64": [running_params, 3, ""]}}}})
    page = browse.get("/github-jobs").get_data(as_text=True)
    rows = [r for r in page.split("<tr>") if "<code>" in r]
    states = {r.split("<code>")[1][:1]: r.rsplit("<td>", 1)[1].split("</td>")[0] for r in rows}
    assert states == {"a": "queued", "b": "running", "c": "waiting for result"}
    assert "2023-11-14 22:13:20 UTC" in page


def test_github_jobs_page_empty(browse):
    assert "No GitHub jobs are pending." in browse.get("/github-jobs").get_data(as_text=True)


def test_login_from_request_cgi_shows_on_browse_pages(browse, client):
    from tests.fakes.fixtures import login

    login(client, "joe")
    browse.set_cookie("session", client.get_cookie("session").value)
    assert "Logout joe" in browse.get("/request").get_data(as_text=True)
