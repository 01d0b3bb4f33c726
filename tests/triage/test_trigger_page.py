# SPDX-License-Identifier: GPL-3.0-or-later
"""/trigger/<source>/<version> and its JSON twin on a site where one upload broke two packages."""

from __future__ import annotations

import re

import pytest

from tests.triage import site as triagesite
from webcontrol import triggerindex
from webcontrol.web.browse import create_app

TRIGGER_PATH = "/trigger/glib2.0/2.82.0-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return triagesite.build(tmp_path_factory.mktemp("triage-site"))


@pytest.fixture(scope="module")
def client(site):
    return create_app(site.config).test_client()


def test_summary_counts_regressions_packages_running_and_queued(client):
    data = client.get("/api/v1" + TRIGGER_PATH).get_json()
    assert data["summary"]["text"] == "3 regressions in 2 packages, 1 running, 2 queued"
    assert data["summary"]["runs"] == 8 and data["summary"]["tests"] == 7 and data["summary"]["packages"] == 5
    assert data["summary"]["counts"]["always_failed"] == {"tests": 1, "packages": 1}


def test_regressions_come_first_grouped_by_package(client):
    data = client.get("/api/v1" + TRIGGER_PATH).get_json()
    order = [
        (group["package"], t["result"]["release"], t["result"]["arch"], t["result"]["classification"])
        for group in data["groups"]
        for t in group["tests"]
    ]
    assert order == [
        ("gtk3", "jammy", "amd64", "regression"),
        ("gtk3", "noble", "amd64", "regression"),
        ("libfoo", "noble", "amd64", "regression"),
        ("pango", "noble", "amd64", "always_failed"),
        ("cairo", "noble", "amd64", "flaky"),
        ("harfbuzz", "noble", "amd64", "pass"),
        ("libfoo", "noble", "arm64", "pass"),
    ]
    cairo = data["groups"][3]["tests"][0]
    assert cairo["runs"] == 2 and [e["classification"] for e in cairo["earlier_runs"]] == ["regression"]
    first = data["groups"][0]["tests"][0]["result"]
    assert first["log_url"].endswith(f"/autopkgtest-jammy/jammy/amd64/g/gtk3/{triagesite.run_id(5, 3)}/log.gz")
    assert first["history_url"] == "https://autopkgtest.example.com/packages/g/gtk3/jammy/amd64"


def test_live_entries_of_the_trigger_only(client):
    data = client.get("/api/v1" + TRIGGER_PATH).get_json()
    assert [(j["package"], j["arch"]) for j in data["running"]] == [("libfoo", "s390x")]
    assert [(q["package"], q["position"]) for q in data["queued"]] == [("gtk3", 1), ("pango", 2)]


def test_paging_keeps_the_order(client):
    def get(url):
        return client.get(url.replace("https://autopkgtest.example.com", "")).get_json()

    first = get("/api/v1" + TRIGGER_PATH + "?limit=3")
    second = get(first["next_url"])
    third = get(second["next_url"])
    assert first["next_after"] == "0/libfoo/amd64/noble" and first["first_url"] is None
    assert [g["package"] for g in first["groups"]] == ["gtk3", "libfoo"]
    assert [g["package"] for g in second["groups"]] == ["pango", "cairo", "harfbuzz"]
    assert [g["package"] for g in third["groups"]] == ["libfoo"] and third["next_url"] is None
    assert second["first_url"] == "https://autopkgtest.example.com/api/v1/trigger/glib2.0/2.82.0-1?limit=3"


def test_html_page_shows_summary_and_links(client):
    page = client.get(TRIGGER_PATH).get_data(as_text=True)
    assert '<p class="summary" id="trigger-summary">3 regressions in 2 packages, 1 running, 2 queued' in page
    assert (
        page.index('data-package="gtk3"') < page.index('data-package="pango"') < page.index('data-package="harfbuzz"')
    )
    assert "Running now" in page and "Queued now" in page
    assert 'href="https://autopkgtest.example.com/packages/g/gtk3/noble/amd64"' in page


def test_unknown_trigger_is_an_empty_page_and_bad_names_404(client):
    data = client.get("/api/v1/trigger/nosuch/1.0").get_json()
    assert data["summary"]["text"] == "0 regressions in 0 packages, 0 running, 0 queued" and data["groups"] == []
    assert client.get("/trigger/Bad_Name/1.0").status_code == 404
    assert client.get("/api/v1/trigger/glib2.0/1.0%0A").status_code == 404
    assert client.get("/api/v1" + TRIGGER_PATH + "?after=x").status_code == 400
    assert client.get("/api/v1" + TRIGGER_PATH + "?limit=0").status_code == 400


def test_triggers_link_to_their_trigger_page_on_other_pages(client):
    history = client.get("/packages/g/gtk3/noble/amd64").get_data(as_text=True)
    assert (
        '<a class="trigger" href="https://autopkgtest.example.com/trigger/glib2.0/2.82.0-1">glib2.0/2.82.0-1</a>'
        in history
    )
    run = client.get(f"/packages/g/gtk3/noble/amd64/{triagesite.run_id(5, 2)}").get_data(as_text=True)
    assert 'href="https://autopkgtest.example.com/trigger/gtk3/1.0-1"' in run
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'<a class="trigger" href="https://autopkgtest.example.com/trigger/[^"]+">', home)


def test_without_an_index_the_page_says_so(site, tmp_path):
    path = triggerindex.index_path(site.public_db)
    moved = tmp_path / "moved.db"
    path.rename(moved)
    try:
        response = create_app(site.config).test_client().get(TRIGGER_PATH)
        assert response.status_code == 200
        assert "The trigger index is not available yet" in response.get_data(as_text=True)
    finally:
        moved.rename(path)


def test_openapi_describes_trigger_search_and_retry(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    trigger = paths["/api/v1/trigger/{source}/{version}"]["get"]
    assert {p["name"] for p in trigger["parameters"]} == {"source", "version", "after", "limit"}
    search = paths["/api/v1/search"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "release", "arch", "since", "until", "before"}
    retry = paths["/api/v1/retry"]["post"]
    body = retry["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["items"] and body["properties"]["items"]["maxItems"] == 100


def test_trigger_page_retry_form_preselects_regressions(site):
    from tests.fakes.fixtures import login
    from webcontrol.web import sessions

    client = create_app(site.config).test_client()
    anonymous = client.get(TRIGGER_PATH).get_data(as_text=True)
    assert (
        '<form id="retry-form" class="retry" method="post" action="https://autopkgtest.example.com/retry">' in anonymous
    )
    assert "log in first" in anonymous and 'name="csrf_token"' not in anonymous
    login(client, "joe")
    page = client.get(TRIGGER_PATH).get_data(as_text=True)
    boxes = re.findall(r'<input type="checkbox" form="retry-form" name="item" value="([^"]+)"[^>]*?( checked)?>', page)
    assert boxes == [
        (f"jammy amd64 gtk3 {triagesite.TRIGGER}", " checked"),
        (f"noble amd64 gtk3 {triagesite.TRIGGER} gtk3/1.0-1", " checked"),
        (f"noble amd64 libfoo {triagesite.TRIGGER}", " checked"),
        (f"noble amd64 pango {triagesite.TRIGGER}", ""),
    ]
    with client.session_transaction() as session:
        sid = session["sid"]
    token = sessions.form_token(client.application.secret_key, f"session:{sid}")
    assert f'<input type="hidden" name="csrf_token" value="{token}">' in page
    assert "3 regressions preselected" in page


def test_history_page_retries_its_newest_run(site):
    page = create_app(site.config).test_client().get("/packages/g/gtk3/noble/amd64").get_data(as_text=True)
    assert f'<input type="hidden" name="item" value="noble amd64 gtk3 {triagesite.TRIGGER} gtk3/1.0-1">' in page
