# SPDX-License-Identifier: GPL-3.0-or-later
"""browse.cgi pages as users and scraping clients see them (docs/formats.rst, Pages and API)."""

from __future__ import annotations

import os
import re
import urllib.parse

import pytest

import webcontrol
from tests.browse import site as sitemod
from tests.browse.htmltables import tables, vertical

SITE = "https://autopkgtest.example.com"


def text(response) -> str:
    return response.get_data(as_text=True)


# Home --------------------------------------------------------------------------------------


def test_home_shows_latest_results_counts_links_and_version(client):
    page = text(client.get("/"))
    # The newest results first: chrony (Mar 2024) is newer than glib2.0 and hello.
    assert page.index("chrony") < page.index("glib2.0")
    assert f"{SITE}/run/{sitemod.HELLO_UUID}" in page or f"{SITE}/packages/h/hello/noble/amd64/" in page
    assert f"autopkgtest-web {webcontrol.__version__}" in page
    assert f'href="{SITE}/static/autopkgtest.db"' in page
    assert f'href="{SITE}/static/autopkgtest.db.sha256"' in page
    assert f'href="{SITE}/static/running.json"' in page
    assert f'href="{SITE}/queues.json"' in page
    assert f'href="{SITE}/testlist#index-liba"' in page and f'href="{SITE}/testlist#index-z"' in page
    # 5 running leaves in the 2024 sample + our hello job; 4 queued messages (size counts private ones).
    assert re.search(r">\d+ running</a> <span class=\"age\">\(updated \d+ s ago\)", page)
    assert ">4 queued</a>" in page
    # The alert banner, escaped.
    assert "Maintenance &lt;b&gt;tonight&lt;/b&gt;" in page and 'class="alert alert-warning"' in page


def test_login_state_on_every_page(client):
    assert 'action="https://autopkgtest.example.com/login"' in text(client.get("/recent"))
    assert "Logout" not in text(client.get("/recent"))
    with client.session_transaction() as session:
        session["nickname"] = "joe<x>"
        session["sid"] = "0123456789abcdef"
    for path in ("/", "/packages/hello", "/recent", "/packages/NOPE"):
        assert "Logout joe&lt;x&gt;" in text(client.get(path)), path


# Package page (docs/formats.rst, Package matrix) ----------------------------------------------------------------------


def test_package_matrix_is_first_table_with_contract_shape(client):
    response = client.get("/packages/hello")
    assert response.status_code == 200
    page = text(response)
    first = tables(page)[0]
    assert "table" in first.attrs["class"].split()
    header = first.rows[0]
    assert all(cell.tag == "th" for cell in header)
    assert [cell.text for cell in header] == ["", "jammy", "noble"]
    rows = {row[0].text: row[1:] for row in first.rows[1:]}
    assert set(rows) == {"amd64", "arm64", "s390x"}
    jammy, noble = rows["amd64"]
    assert noble.attrs["class"] == "pass" and "pass" in noble.text
    assert noble.links == [f"{SITE}/packages/h/hello/noble/amd64"]
    assert "neutral" in rows["arm64"][1].text and "tmpfail" in rows["s390x"][1].text
    assert "pass" in jammy.text


def test_package_matrix_empty_cell_has_empty_text(client):
    first = tables(text(client.get("/packages/libpng1.6")))[0]
    rows = {row[0].text: row[1:] for row in first.rows[1:]}
    jammy, noble = rows["amd64"]
    assert jammy.text == "" and jammy.links == []
    assert "fail" in noble.text and noble.links == [f"{SITE}/packages/libp/libpng1.6/noble/amd64"]


def test_package_page_running_block_and_queued(client):
    page = text(client.get("/packages/h/hello"))
    assert "<th>Release:</th>" in page and "<th>Architecture:</th>" in page
    lines = page.splitlines()
    running_for = next(i for i, line in enumerate(lines) if "Running for:" in line)
    assert "1h 27m 35s (5255s)" in lines[running_for]
    uuid_line = next(i for i, line in enumerate(lines) if "<th>UUID:</th>" in line)
    assert 0 < running_for - uuid_line <= 20 and sitemod.RUNNING_UUID in "\n".join(lines[uuid_line : uuid_line + 2])
    assert "&lt;b&gt;test&lt;/b&gt;" in page  # the log tail is escaped
    assert "Queued tests for ubuntu noble amd64" in page and "hello/2.10-4" in page
    assert "Queued tests for huge noble arm64" in page


def test_package_without_results_is_200_and_bad_name_404(client):
    response = client.get("/packages/no-such-package")
    assert response.status_code == 200 and "no previous results" in text(response)
    for bad in ("/packages/Hello", "/packages/-x", "/packages/a"):
        response = client.get(bad)
        assert response.status_code == 404, bad
        assert "Error 404" in text(response) and "Traceback" not in text(response)


def test_package_release_page_prefix_form(client):
    page = text(client.get("/packages/h/hello/noble"))
    first = tables(page)[0]
    assert [cell.text for cell in first.rows[0]] == ["", "noble"]
    assert f"{SITE}/packages/h/hello/noble/arm64" in page


def test_trailing_slash_redirects(client):
    response = client.get("/packages/h/hello/noble/amd64/?limit=5")
    assert response.status_code in (301, 308)
    assert response.headers["Location"].endswith("/packages/h/hello/noble/amd64?limit=5")
    response = client.get("/user/joe")
    assert response.status_code in (301, 308) and response.headers["Location"].endswith("/user/joe/")


# History --------------------------------------------------------------------------------------------


def _history_rows(page: str):
    table = next(t for t in tables(page) if "results" in t.attrs.get("class", ""))
    header = [cell.text for cell in table.rows[0]]
    return header, table.rows[1:]


def test_history_columns_running_queued_first_and_paging(client):
    page = text(client.get("/packages/hello/noble/amd64?limit=20"))
    header, rows = _history_rows(page)
    for column in ("Version", "Triggers", "Env", "Date", "Duration", "Requester", "Result", "UUID"):
        assert column in header
    result_at = header.index("Result")
    assert "running" in rows[0][result_at].text and "queued" in rows[1][result_at].text
    finished = rows[2:]
    assert len(finished) == 20
    assert sitemod.HELLO_UUID in finished[0][header.index("UUID")].text
    links = finished[0][-1].links
    assert f"{SITE}/results/autopkgtest-noble/noble/amd64/h/hello/" in links[1] and links[1].endswith("/log.gz")
    assert links[2].endswith("/artifacts.tar.gz")
    older = re.search(r'href="([^"]*before=[^"]*)"', page).group(1).replace("&amp;", "&")
    assert older.startswith(f"{SITE}/packages/h/hello/noble/amd64?before=")
    second = text(client.get(older.replace(SITE, "")))
    _, rows2 = _history_rows(second)
    assert len(rows2) == 20 and "running" not in rows2[0][result_at].text
    dates = [row[header.index("Date")].text for row in finished + rows2]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 40


def test_history_retry_only_on_newest_failure_per_version_and_triggers(client):
    data = client.get("/api/v1/packages/hello/noble/amd64?limit=250").get_json()
    newest = {}
    for row in data["results"]:  # newest first
        newest.setdefault((row["version"], row["triggers"]), row)
    expected = [r["run_id"] for r in newest.values() if r["result"] == "fail"]
    with_retry = [r for r in data["results"] if r["show_retry"]]
    assert expected and sorted(r["run_id"] for r in with_retry) == sorted(expected)
    retry = with_retry[0]["retry_url"]
    assert retry.startswith(f"{SITE}/request.cgi?release=noble&arch=amd64&package=hello&trigger=hello%2F2.10-")
    assert all(not r["show_retry"] for r in data["results"] if r["result"] == "pass")


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=x", "offset=-1", "before=yesterday"])
def test_history_bad_parameters_are_400_pages(client, query):
    response = client.get(f"/packages/hello/noble/amd64?{query}")
    assert response.status_code == 400
    assert "Error 400" in text(response) and "Traceback" not in text(response)
    assert client.get(f"/api/v1/packages/hello/noble/amd64?{query}").get_json()["status"] == 400


def test_history_unknown_test_is_empty_200(client):
    response = client.get("/packages/hello/noble/riscv64")
    assert response.status_code == 200 and "No results" in text(response)


def test_history_offset_compatibility(client):
    first = client.get("/api/v1/packages/hello/noble/amd64?limit=10").get_json()["results"]
    shifted = client.get("/api/v1/packages/hello/noble/amd64?limit=5&offset=5").get_json()["results"]
    assert [r["run_id"] for r in shifted] == [r["run_id"] for r in first[5:]]


# Run pages (docs/formats.rst, Run page) -------------------------------------------------------------------------------


def test_run_page_by_uuid_exact_cells(client):
    response = client.get(f"/run/{sitemod.HELLO_UUID}")
    page = text(response)
    assert response.status_code == 200
    assert re.search(r"<th>Result</th>\s*<td class=\"pass\">pass</td>", page)
    assert re.search(r"<th>Duration</th>\s*<td>0h 09m 09s</td>", page)
    cells = vertical(tables(page)[0])
    for label in (
        "Package",
        "Release",
        "Architecture",
        "Version",
        "Triggers",
        "Env",
        "Date",
        "Duration",
        "Requester",
        "Result",
        "UUID",
        "Run ID",
        "Log",
        "Artifacts",
    ):
        assert label in cells, label
    assert cells["Date"].text.endswith(" UTC") and cells["Run ID"].text.endswith("@")


def test_run_page_by_run_id_and_retry(client):
    page = text(client.get("/packages/libp/libpng1.6/noble/amd64/20240226_100005_c0001@"))
    cells = vertical(tables(page)[0])
    assert cells["Result"].attrs["class"] == "fail" and cells["Requester"].text == "joe"
    assert cells["♻"].links == [
        f"{SITE}/request.cgi?release=noble&arch=amd64&package=libpng1.6&trigger=libpng1.6%2F1.6.43-5"
    ]
    same = text(client.get("/packages/libpng1.6/noble/amd64/20240226_100005_c0001@"))
    assert vertical(tables(same)[0])["Run ID"].text == "20240226_100005_c0001@"
    assert client.get("/packages/libpng1.6/noble/amd64/20990101_000000@").status_code == 404


def test_otherfail_and_old_run_id(client):
    page = text(client.get("/packages/s/six/jammy/amd64/20220827_144521@"))
    cells = vertical(tables(page)[0])
    assert cells["Result"].attrs["class"] == "otherfail"
    assert cells["Date"].text == "2022-08-27 14:45:21 UTC"


def test_unknown_queued_and_running_uuids_are_404(client):
    for uuid, extra in (
        ("11111111-2222-4333-8444-555555555555", None),
        (sitemod.QUEUED_UUID, "Queued"),
        (sitemod.RUNNING_UUID, "In progress"),
    ):
        response = client.get(f"/run/{uuid}")
        assert response.status_code == 404
        assert f"uuid {uuid} not found" in text(response)
        if extra:
            assert extra in text(response)
    assert client.get("/run/not-a-uuid").status_code == 404


# Recent, user, statistics, testlist, releases ------------------------------------------------------------------


def test_recent_filters(client):
    data = client.get("/api/v1/recent?limit=10&result=fail").get_json()
    assert data["results"] and all(r["result"] == "fail" for r in data["results"])
    data = client.get("/api/v1/recent?release=jammy&arch=amd64").get_json()
    assert {(r["release"], r["arch"]) for r in data["results"]} == {("jammy", "amd64")}
    data = client.get("/api/v1/recent?user=joe").get_json()
    assert [r["package"] for r in data["results"]] == ["libpng1.6"]
    assert client.get("/recent?result=bogus").status_code == 400
    assert client.get("/recent?release=a-b").status_code == 400
    page = text(client.get("/recent?limit=10"))
    assert page.count("<tr>") >= 10


def test_experimental_recent_json_exact_shape(client):
    items = client.get("/api/experimental/recent.json?limit=500").get_json()
    keys = {
        "package",
        "release",
        "arch",
        "version",
        "triggers",
        "additional_params",
        "human_date",
        "human_sec",
        "requester",
        "code",
        "url",
        "show_retry",
        "all_proposed",
        "uuid",
        "run_id",
    }
    assert all(set(item) == keys for item in items)
    six = next(item for item in items if item["package"] == "six")
    assert six["uuid"] is None and six["code"] == "otherfail" and six["show_retry"] is True
    proposed = next(item for item in items if item["additional_params"] == "all-proposed=1")
    assert proposed["all_proposed"] is True and isinstance(proposed["show_retry"], bool)
    assert items[0]["human_sec"] == "0h 26m 21s"
    assert items[0]["url"] == f"{SITE}/results/autopkgtest-noble/noble/armhf/c/chrony/20240326_184806_3f2a1@/log.gz"


def test_user_page_sections_and_paging(client):
    page = text(client.get(f"/user/{sitemod.HEAVY_USER}/?limit=50"))
    assert "Summary" in page and "PPA results" in page and "older »" in page and "show more" in page
    data = client.get(f"/api/v1/user/{sitemod.HEAVY_USER}/?limit=50&offset=50").get_json()
    assert len(data["results"]) == 50 and all(r["requester"] == "bryce" for r in data["results"])
    assert data["links"]["previous"] and data["links"]["next"]
    joe = client.get("/api/v1/user/joe/").get_json()
    assert [q["package"] for q in joe["queued"]] == ["hello"]
    assert [j["package"] for j in joe["running"]] == ["hello"]
    hidden = client.get("/api/v1/user/joe/?show-running=false&show-queued=false").get_json()
    assert hidden["running"] == [] and hidden["queued"] == [] and hidden["results"]
    only = client.get("/api/v1/user/joe/?only-results=1").get_json()
    assert only["running"] == [] and only["results"]
    assert client.get("/user/Bad_Name/").status_code == 404


def test_user_ppa_pages(client):
    data = client.get("/api/v1/user/bryce/ppa").get_json()
    assert {p["ppa"]: p["releases"] for p in data["ppas"]} == {
        "chrony-merge": ["noble"],
        "rabbitmq-sru": ["jammy"],
    }  # bryceson's container is not bryce's; kinetic is not a known release
    listing = client.get("/api/v1/user/bryce/ppa/chrony-merge").get_json()
    (group,) = listing["packages"]
    assert group["package"] == "chrony"
    assert group["runs"][0]["log_url"] == (
        f"{SITE}/results/autopkgtest-noble-bryce-chrony-merge/noble/armhf/c/chrony/20240326_184806_3f2a1@/log.gz"
    )
    assert "chrony" in text(client.get("/user/bryce/ppa/chrony-merge"))


def test_statistics_page(client):
    page = text(client.get("/statistics"))
    assert "Pass rate" in page and "33.33 %" in page
    rows = client.get("/api/v1/statistics").get_json()["stats"]
    noble_amd64 = next(r for r in rows if (r["release"], r["arch"]) == ("noble", "amd64"))
    assert noble_amd64 == {
        "release": "noble",
        "arch": "amd64",
        "numpkgs": 3,
        "numpkgspass": 1,
        "passruns": 224,
        "failruns": 28,
        "pass_rate": 33.33,
    }


def test_testlist_from_db_when_json_missing(client):
    page = text(client.get("/testlist"))
    assert 'id="index-libp"' in page and "libpng1.6" in page
    # The latest tested version (results' versions), as publish-db writes to the JSON file: not the
    # archive's current version (jammy's 1:2.10-2), which no result was recorded with.
    assert "https://launchpad.net/ubuntu/+archive/primary/+files/hello_2.10-5.dsc" in page
    assert "hello_2.10-2.dsc" not in page and "six_1.16.0-4.dsc" in page


def test_release_health(client):
    data = client.get("/api/v1/releases/noble").get_json()
    rows = {row["package"]: row for row in data["packages"]}
    libpng = {cell["arch"]: cell for cell in rows["libpng1.6"]["cells"]}
    assert libpng["arm64"]["result"]["result"] == "pass"
    assert libpng["amd64"]["result"] is None
    assert libpng["amd64"]["retry_url"].endswith("arch=amd64&package=libpng1.6&trigger=migration-reference%2F0")
    assert rows["glib2.0"]["cells"][0]["result"]["result"] == "fail"
    page = text(client.get("/releases/noble/arm64"))
    assert "N/A" in page and "libpng1.6" in page
    assert client.get("/releases/no-such").status_code == 404


def test_misc_routes(client):
    assert client.get("/favicon.ico").status_code == 204
    response = client.get("/running.shtml")
    assert response.status_code in (301, 302) and response.headers["Location"].endswith("/running")
    robots = client.get("/static/robots.txt")
    assert "Disallow: /" in text(robots) and "max-age=60" in robots.headers["Cache-Control"]
    assert "prefers-color-scheme: dark" in text(client.get("/static/style.css"))
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Error 404" in text(response)


def test_package_search_box_without_javascript(client):
    response = client.get("/packages?package=libpng1.6")
    assert response.status_code == 302 and response.headers["Location"] == f"{SITE}/packages/libp/libpng1.6"
    assert client.get("/packages?package=Bad!").status_code == 404
    assert client.get("/packages").status_code == 400


def test_recent_paging_link(client):
    data = client.get("/api/v1/recent?limit=10&result=pass").get_json()
    # Keyset paging: the older page starts below this page's oldest run, whatever the depth.
    last = data["results"][-1]["run_id"]
    assert f"before={urllib.parse.quote(last)}" in data["older_url"] and "result=pass" in data["older_url"]
    assert "offset" not in data["older_url"]
    second = client.get(data["older_url"].replace(SITE, "").replace("/recent", "/api/v1/recent")).get_json()
    assert second["results"][0]["run_id"] < last
    # Old links with offset still land on the same rows.
    by_offset = client.get("/api/v1/recent?limit=10&result=pass&offset=10").get_json()
    assert [r["run_id"] for r in by_offset["results"]] == [r["run_id"] for r in second["results"]]


def test_history_of_unknown_test_shows_an_empty_table(client):
    page = text(client.get("/packages/hello/jammy/riscv64"))
    header, rows = _history_rows(page)
    assert "Result" in header and rows == []


def test_testlist_prefers_the_indexed_packages_json(client, site):
    path = site.root / "cache" / "indexed-packages.json"
    path.write_text('{"h": [["hello", "2.10-5"]], "z": [["zlib", "1:1.3"]]}')
    try:
        page = text(client.get("/testlist"))
        assert "hello_2.10-5.dsc" in page and 'id="index-z"' in page and "libpng1.6" not in page
    finally:
        path.unlink()


def test_testlist_follows_each_new_indexed_packages_file_and_escapes_names(client, site):
    """The page's HTML is kept per version of the file: a rewrite shows at once, odd names stay text."""
    path = site.root / "cache" / "indexed-packages.json"
    path.write_text('{"h": [["hello", "2.10-5"]]}')
    try:
        assert "hello_2.10-5.dsc" in text(client.get("/testlist"))
        path.write_text('{"a": [["a&b<i>", "1.0&2"], ["plain", ""]], "h": [["hello", "2.10-6"]]}')
        os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))  # a new version even within one tick
        page = client.get("/testlist").get_data(as_text=True)
        assert "hello_2.10-6.dsc" in page and "hello_2.10-5.dsc" not in page
        assert ">a&amp;b&lt;i&gt;</a>" in page and "<i>" not in page
        assert '/packages/a/a%26b%3Ci%3E">' in page and '+files/a%26b%3Ci%3E_1.0%262.dsc">1.0&amp;2</a>' in page
        assert '<li><a href="https://autopkgtest.example.com/packages/p/plain">plain</a></li>' in page
        data = client.get("/api/v1/testlist").get_json()
        assert [entry["package"] for group in data["groups"] for entry in group["packages"]] == [
            "a&b<i>",
            "plain",
            "hello",
        ]
    finally:
        path.unlink()


def test_missing_public_db_is_a_503_page(site, tmp_path):
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    configmod.write({"web": {"database_public": str(tmp_path / "nope.db"), "state_dir": str(tmp_path)}}, tmp_path / "c")
    client = create_app(configmod.load(str(tmp_path / "c"))).test_client()
    # /testlist falls back on the DB when the indexed-packages JSON is missing too.
    for path in ("/", "/packages/hello", "/api/v1/recent", "/testlist", "/flaky"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.get("/health").status_code == 503


def test_release_health_pages_by_package(client):
    first = client.get("/api/v1/releases/noble?limit=2").get_json()
    assert [p["package"] for p in first["packages"]] == ["glib2.0", "hello"]
    assert "after=hello" in first["more_url"]
    second = client.get("/api/v1/releases/noble?limit=2&after=hello").get_json()
    assert [p["package"] for p in second["packages"]] == ["libpng1.6"] and second["more_url"] is None
    assert client.get("/releases/noble?after=%3Cx%3E").status_code == 400


def test_private_running_jobs_show_nothing_of_their_params(client):
    for path in ("/packages/hello", "/api/v1/packages/hello", "/running", "/api/v1/running"):
        body = client.get(path).get_data(as_text=True)
        assert client.get(path).status_code == 200, path
        for secret in ("secret-team", "sneaky", "9.9-secret", "SECRET LOG"):
            assert secret not in body, (path, secret)


def test_pages_set_no_cookie_for_anonymous_visitors_and_vary_on_it(client):
    """What a cache between us and the browser needs: no cookie set, and the answer varies with the cookie."""
    for cookie in (None, "not-a-signed-session"):
        if cookie:
            client.set_cookie("session", cookie)
        page = client.get("/")
        assert page.status_code == 200 and "Set-Cookie" not in page.headers
        assert "Cookie" in page.headers["Vary"]
        assert "Login</button>" in page.get_data(as_text=True)  # anonymous
    # A page that never looks at the session does not vary with it.
    assert "Vary" not in client.get("/api/v1/openapi.json").headers
