# SPDX-License-Identifier: GPL-3.0-or-later
"""Every HTML page has a JSON twin at /api/v1/<same path> with the same data, described by OpenAPI."""

from __future__ import annotations

import re

import pytest

from tests.browse import site as sitemod

PAGES = [
    "/",
    "/packages/hello",
    "/packages/h/hello",
    "/packages/h/hello/noble",
    "/packages/hello/noble/amd64",
    "/packages/h/hello/noble/amd64?limit=5",
    "/packages/hello/noble/amd64/20240213_102903_a00f9@",
    "/packages/c/chrony/noble/armhf/20240326_184806_3f2a1@/log",
    f"/run/{sitemod.HELLO_UUID}",
    "/recent?limit=10",
    "/user/bryce/?limit=3",
    "/user/bryce/ppa",
    "/user/bryce/ppa/chrony-merge",
    "/statistics",
    "/testlist",
    "/releases/noble",
    "/releases/noble/amd64",
]


@pytest.mark.parametrize("path", PAGES)
def test_page_and_json_twin(client, path):
    html = client.get(path)
    assert html.status_code == 200, path
    assert html.mimetype == "text/html"
    twin = client.get("/api/v1" + path)
    assert twin.status_code == 200, path
    assert twin.mimetype == "application/json"
    data = twin.get_json()
    assert isinstance(data, dict) and data
    page = html.get_data(as_text=True)
    # The same data: every result shown in the JSON is on the page.
    for result in data.get("results", [])[:5]:
        assert result["date"] in page
        assert "classification" in result


def test_run_json_carries_classification_hook(client):
    run = client.get(f"/api/v1/run/{sitemod.HELLO_UUID}").get_json()["run"]
    assert run["uuid"] == sitemod.HELLO_UUID and run["result"] == "pass"
    assert "classification" in run  # None until the insight module computes it


def test_api_errors_are_json(client):
    response = client.get("/api/v1/packages/NOPE")
    assert response.status_code == 404 and response.get_json()["status"] == 404
    response = client.get("/api/v1/run/11111111-2222-4333-8444-555555555555")
    assert response.status_code == 404 and "not found" in response.get_json()["error"]


def test_openapi_describes_every_api_route(client, app):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/api/v1/",
        "/api/v1/recent",
        "/api/v1/run/{uuid}",
        "/api/v1/user/{user}/",
        "/api/v1/packages/{package}",
        "/api/v1/packages/{prefix}/{package}/{release}/{arch}",
        "/api/v1/statistics",
        "/api/v1/testlist",
        "/api/v1/releases/{release}/{arch}",
    ):
        assert path in paths, path
        assert "200" in paths[path]["get"]["responses"]
    # Every /api/v1 rule of the app (ours and other blueprints') is documented.
    documented = {re.sub(r"\{[^}]+\}", "*", p) for p in paths}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json":
            shape = re.sub(r"<[^>]+>", "*", rule.rule)
            if re.fullmatch(r"/api/v1/packages(/\*)+", shape) or shape == "/api/v1/user/*":
                continue  # the catch-all dispatchers are documented by their named forms; /user/x redirects
            assert shape in documented, rule.rule


def test_openapi_result_shape_includes_classification(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    schema = paths["/api/v1/packages/{package}/{release}/{arch}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    row = schema["properties"]["results"]["items"]["properties"]
    assert "classification" in row and "run_id" in row and row["show_retry"]["type"] == "boolean"
    assert any(p["name"] == "before" for p in paths["/api/v1/packages/{package}/{release}/{arch}"]["get"]["parameters"])
