# SPDX-License-Identifier: GPL-3.0-or-later
"""Anonymous home and run pages answered from their kept bytes (web/browse/page_cache.py).

Every test looks at what a visitor gets, and at whether Flask made it
(Flask's request_started signal): a kept page must be the bytes Flask
would send now, and a change of anything it shows must reach the very
next request.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
import uuid as uuidmod

import flask
import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client, EnvironBuilder

from tests.insight import site as sitemod
from webcontrol import config as configmod
from webcontrol.atomicfile import write_json_atomic
from webcontrol.web.browse import create_app, live_cache, page_cache


@pytest.fixture(scope="module")
def cache_site(tmp_path_factory):
    site = sitemod.build(tmp_path_factory.mktemp("page-cache-site"))
    alert = site.root / "alert"
    alert.write_text("info:Welcome\n")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(site.config_path)
    values = {section: dict(parser[section]) for section in parser.sections()}
    values["web"]["alert"] = str(alert)
    configmod.write(values, site.config_path)
    site.config = configmod.load(site.config_path)
    return site


@pytest.fixture
def app(cache_site):
    """A new app per test: nothing kept from another test."""
    return create_app(cache_site.config)


class FlaskRequests:
    """How many requests reached Flask (its request_started signal)."""

    def __init__(self, app: flask.Flask) -> None:
        self.count = 0
        flask.request_started.connect(self._started, app)

    def _started(self, _sender, **_extra) -> None:
        self.count += 1


@pytest.fixture
def flask_requests(app):
    return FlaskRequests(app)


def flask_path(app: flask.Flask) -> Client:
    """A client of the app's WSGI stack below the page cache: what Flask sends for the request now."""
    layer = app.wsgi_app
    while not isinstance(layer, page_cache.AnonymousPages):
        layer = layer.app
    return Client(layer.app)


def answer(response) -> tuple:
    return response.status, list(response.headers.items()), response.get_data()


#: The historical JSON list, polled by scripts: kept too.
LEGACY_RECENT = "/api/experimental/recent.json"


def run_page(site, index: int) -> str:
    return f"/run/{site.hello[index].uuid}"


@pytest.fixture
def live_files_ageless(cache_site):
    """The live files dated a minute ahead: the home page shows their ages as 0 s, whenever it is asked."""
    future = time.time() + 60
    for key in ("running_cache", "amqp_queue_cache"):
        os.utime(cache_site.config.get("web", key), (future, future))


# Same bytes as Flask --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "page", ["home", "statistics", "passing run", "failing run", "failing run without result.tar", "legacy recent.json"]
)
def test_a_kept_page_is_the_status_headers_and_bytes_flask_sends(
    app, flask_requests, cache_site, live_files_ageless, method, page
):
    site = cache_site
    path = {
        "home": "/",
        "statistics": "/statistics",
        "passing run": run_page(site, 0),
        "failing run": run_page(site, 2),
        "legacy recent.json": LEGACY_RECENT,
    }.get(page)
    moved = None
    if page == "failing run without result.tar":
        path = run_page(site, 9)
        tar = site.root / "results/autopkgtest-noble" / f"noble/amd64/h/hello/{site.hello[9].run_id}/result.tar"
        moved = tar.rename(tar.with_suffix(".moved"))
    try:
        client = app.test_client()
        first = answer(client.open(path, method=method))
        made = flask_requests.count
        kept = answer(client.open(path, method=method))
        assert flask_requests.count == made, f"{path} was made again, not answered from its kept bytes"
        fresh = answer(flask_path(app).open(path, method=method))
        full = flask_path(app).get(path).get_data()
    finally:
        if moved is not None:
            moved.rename(tar)
    assert kept == first == fresh
    status, headers, body = kept
    assert status == "200 OK"
    names = [name.lower() for name, _value in headers]
    assert "set-cookie" not in names
    assert ("X-Content-Type-Options", "nosniff") in headers and ("X-Frame-Options", "DENY") in headers
    if page == "legacy recent.json":
        assert ("Content-Type", "application/json") in headers
    else:
        assert ("Content-Security-Policy", page_cache_csp()) in headers
        assert ("Vary", "Cookie") in headers
    assert ("Content-Length", str(len(full))) in headers
    if method == "HEAD":
        assert body == b""
    elif page == "legacy recent.json":
        newest = sqlite3.connect(site.public).execute("SELECT run_id FROM result ORDER BY run_id DESC").fetchone()
        assert json.loads(body)[0]["run_id"] == newest[0]
    else:
        assert b"Welcome" in body and b"Logout" not in body
    if page == "failing run without result.tar":
        assert b"is not in the result store" in full


def page_cache_csp() -> str:
    from webcontrol.web.appbase import CONTENT_SECURITY_POLICY

    return CONTENT_SECURITY_POLICY


# Never one visitor's page for another ---------------------------------------------------------------------------------


def session_cookie(app: flask.Flask, nick: str) -> str:
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({"nickname": nick, "sid": secrets.token_hex(16), "_permanent": True})


@pytest.mark.parametrize("page", ["home", "run"])
def test_a_logged_in_user_sees_their_nick_and_anonymous_visitors_never_do(app, cache_site, page):
    path = "/" if page == "home" else run_page(cache_site, 2)
    anonymous = app.test_client()
    user = app.test_client()
    user.set_cookie("session", session_cookie(app, "joe"), domain="localhost")
    for _turn in range(2):
        assert b"Logout joe" not in anonymous.get(path).data
        assert b"Logout joe" in user.get(path).data
        assert b"Logout joe" not in anonymous.get(path).data
    page_for_user = user.get(path)
    assert "Set-Cookie" not in page_for_user.headers or "session=" in page_for_user.headers["Set-Cookie"]


def test_requests_with_a_cookie_authorization_or_query_go_through_flask(app, flask_requests, live_files_ageless):
    client = app.test_client()
    client.get("/")
    client.get("/")
    made = flask_requests.count
    client.get("/", headers={"Authorization": "Basic am9lOnNlY3JldA=="})
    with_cookie = app.test_client()
    with_cookie.set_cookie("other", "1", domain="localhost")
    with_cookie.get("/")
    assert flask_requests.count == made + 2
    for _turn in range(2):
        page = client.get("/?from=feed").data.decode()
        # The login form comes back to the page asked for, query included.
        assert 'name="next" value="http://localhost/?from=feed"' in page
    assert flask_requests.count == made + 4


def test_the_kept_recent_json_answers_only_the_bare_list(app, flask_requests, cache_site):
    """Scripts poll the bare list; what a client or a broken peer adds to it gets what it asks for, or its error."""
    client = app.test_client()
    whole = client.get(LEGACY_RECENT).json
    assert client.get(LEGACY_RECENT).json == whole
    made = flask_requests.count
    assert len(client.get(f"{LEGACY_RECENT}?limit=2").json) == 2
    assert client.get(f"{LEGACY_RECENT}?limit=nonsense").status_code == 400
    assert client.get(f"{LEGACY_RECENT}?limit=100&release=<script>").status_code == 400
    forged = app.test_client()
    forged.set_cookie("session", "forged", domain="localhost")
    assert forged.get(LEGACY_RECENT).json == whole
    assert client.get(LEGACY_RECENT + "/").status_code == 404
    assert client.post(LEGACY_RECENT).status_code == 405
    assert flask_requests.count == made + 6
    assert client.get(LEGACY_RECENT).json == whole
    assert flask_requests.count == made + 6


def test_the_host_and_forwarded_scheme_are_part_of_what_is_kept(app, live_files_ageless):
    client = app.test_client()
    for _turn in range(2):
        assert 'value="http://one.example/"' in client.get("/", headers={"Host": "one.example"}).data.decode()
        assert 'value="http://two.example/"' in client.get("/", headers={"Host": "two.example"}).data.decode()
        https = client.get("/", headers={"Host": "one.example", "X-Forwarded-Proto": "https"}).data.decode()
        assert 'value="https://one.example/"' in https


# Freshness ---------------------------------------------------------------------------------------------------------


def republish_same_size_and_mtime(site, change: str, params: tuple) -> None:
    """A new public DB renamed into place as publish-db does, with the old one's size and mtime (a new inode)."""
    public = site.public
    before = os.stat(public)
    copy = public.with_name("autopkgtest.db.new")
    shutil.copyfile(public, copy)
    conn = sqlite3.connect(copy)
    assert conn.execute(change, params).rowcount == 1
    conn.commit()
    conn.close()
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(copy, public)
    after = os.stat(public)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ino != before.st_ino


def test_a_republished_db_shows_on_the_next_request(app, cache_site, live_files_ageless):
    site = cache_site
    client = app.test_client()
    run = run_page(site, 2)
    newest = sqlite3.connect(site.public).execute("SELECT run_id, triggers FROM result ORDER BY run_id DESC").fetchone()
    version = site.hello[2].version
    trigger = newest[1].split()[0]
    changed_trigger = trigger[:-1] + ("8" if trigger[-1] != "8" else "9")
    changed_version = version[:-1] + ("8" if version[-1] != "8" else "9")
    for _turn in range(2):
        home = client.get("/").data.decode()
        assert trigger in home and changed_trigger not in home
        assert f"<td>{changed_version}</td>" not in client.get(run).data.decode()
        assert changed_trigger not in {item["triggers"] for item in client.get(LEGACY_RECENT).json}
    republish_same_size_and_mtime(
        site,
        "UPDATE result SET triggers = replace(triggers, ?, ?) WHERE run_id = ?",
        (trigger, changed_trigger, newest[0]),
    )
    republish_same_size_and_mtime(
        site, "UPDATE result SET version = ? WHERE run_id = ?", (changed_version, site.hello[2].run_id)
    )
    assert changed_trigger in client.get("/").data.decode()
    assert f"<td>{changed_version}</td>" in client.get(run).data.decode()
    assert newest[1].replace(trigger, changed_trigger) in {item["triggers"] for item in client.get(LEGACY_RECENT).json}


def test_a_new_version_of_the_live_files_shows_on_the_next_request(app, cache_site, live_files_ageless):
    queued_path = cache_site.config.get("web", "amqp_queue_cache")
    client = app.test_client()
    for _turn in range(2):
        assert ">2 queued</a>" in client.get("/").data.decode()
    with open(queued_path) as handle:
        queued = json.load(handle)
    original = json.dumps(queued)
    queued["queues"]["ubuntu"]["noble"]["amd64"]["size"] = 3
    queued["queues"]["ubuntu"]["noble"]["amd64"]["requests"].append('hello\n{"triggers": ["hello/1.0-5"]}')
    try:
        with open(queued_path, "w") as handle:
            json.dump(queued, handle)
        future = time.time() + 60
        os.utime(queued_path, (future, future))
        assert ">3 queued</a>" in client.get("/").data.decode()
    finally:
        with open(queued_path, "w") as handle:
            handle.write(original)


def test_the_ages_of_the_live_files_shown_are_those_of_now(app, cache_site):
    running_path = cache_site.config.get("web", "running_cache")
    written = time.time() - 100
    os.utime(running_path, (written, written))
    client = app.test_client()
    ages = set()
    deadline = time.monotonic() + 5
    while len(ages) < 2 and time.monotonic() < deadline:
        page = client.get("/").data.decode()
        shown = int(re.search(r"running</a> <span class=\"age\">\(updated (\d+) s ago\)", page).group(1))
        assert abs(shown - (time.time() - written)) < 1.5, f"the page says {shown} s, the file is older"
        ages.add(shown)
        time.sleep(0.2)
    assert len(ages) >= 2


def test_new_statistics_show_on_the_next_request(app, cache_site):
    stats = cache_site.root / "cache" / "stats.json"
    client = app.test_client()
    try:
        for _turn in range(2):
            assert "Statistics have not been computed yet" in client.get("/statistics").data.decode()
        for numpkgs in (10, 12):
            entry = {"numpkgs": numpkgs, "numpkgspass": 5, "passruns": 50, "failruns": 7}
            write_json_atomic(stats, {"noble": {"amd64": entry}})  # as autopkgtest-stats writes it
            for _turn in range(2):
                page = client.get("/statistics").data.decode()
                assert f"<td>noble</td><td>amd64</td><td>{numpkgs}</td><td>5</td>" in page
    finally:
        stats.unlink(missing_ok=True)


def test_a_result_tar_that_appears_shows_on_the_next_request(app, flask_requests, cache_site, live_files_ageless):
    site = cache_site
    page = run_page(site, 2)
    tar = site.root / "results/autopkgtest-noble" / f"noble/amd64/h/hello/{site.hello[2].run_id}/result.tar"
    moved = tar.rename(tar.with_suffix(".moved"))
    client = app.test_client()
    try:
        for _turn in range(2):
            assert b"is not in the result store" in client.get(page).data
        made = flask_requests.count
        assert b"is not in the result store" in client.get(page).data
        assert flask_requests.count == made, "the page of a missing result.tar is kept while it is missing"
    finally:
        moved.rename(tar)
    assert b"<td>added</td><td>libfoo1</td>" in client.get(page).data


# What is never kept ------------------------------------------------------------------------------------------------


def test_unknown_uuids_errors_and_odd_requests_are_never_kept(app, flask_requests, cache_site, live_files_ageless):
    client = app.test_client()
    unknown = f"/run/{uuidmod.uuid4()}"
    for _turn in range(2):
        assert client.get(unknown).status_code == 404
        client.get("/", headers={"Host": "h" * 300})
        client.post("/")
        client.get("/run/" + "A" * 36)
    made = flask_requests.count
    client.get(unknown)
    client.get("/", headers={"Host": "h" * 300})
    assert flask_requests.count == made + 2
    # A public DB that is gone: 503 from Flask, not kept, and the page is back once the DB is.
    public = cache_site.public
    moved = public.rename(public.with_suffix(".away"))
    try:
        assert client.get("/").status_code == 503
        assert client.get("/").status_code == 503
    finally:
        moved.rename(public)
    assert client.get("/").status_code == 200


# Counted as every request is ---------------------------------------------------------------------------------------


def page_latency_count(client, endpoint: str) -> float:
    text = client.get("/metrics").data.decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "autopkgtest_page_latency_seconds")
    counts = {s.labels["endpoint"]: s.value for s in family.samples if s.name.endswith("_count")}
    return counts.get(endpoint, 0.0)


def test_kept_pages_are_counted_in_the_metrics_and_as_requests_in_flight(
    app, flask_requests, cache_site, live_files_ageless
):
    client = app.test_client()
    client.get("/")
    client.get(run_page(cache_site, 0))
    home, run = page_latency_count(client, "pages.home"), page_latency_count(client, "pages.run_by_uuid")
    made = flask_requests.count
    for _turn in range(3):
        assert client.get("/").status_code == 200
        assert client.get(run_page(cache_site, 0)).status_code == 200
    assert flask_requests.count == made
    assert page_latency_count(client, "pages.home") == home + 3
    assert page_latency_count(client, "pages.run_by_uuid") == run + 3
    # A kept page is a request in flight until its body is closed, like any other.
    before = live_cache._in_flight
    body = app.wsgi_app(EnvironBuilder(path="/").get_environ(), lambda *_args: None)
    assert live_cache._in_flight == before + 1
    assert b"Latest results" in b"".join(body)
    body.close()
    assert live_cache._in_flight == before


def test_only_the_pages_asked_for_last_are_kept(cache_site, monkeypatch):
    monkeypatch.setattr(page_cache, "PAGES", 2)
    app = create_app(cache_site.config)
    flask_requests = FlaskRequests(app)
    client = app.test_client()
    first, second, third = (run_page(cache_site, index) for index in (0, 1, 4))
    for path in (first, second, first, third):
        client.get(path)
    made = flask_requests.count
    client.get(first)
    client.get(third)
    assert flask_requests.count == made
    client.get(second)
    assert flask_requests.count == made + 1, "the page asked for least lately was not let go"


def test_a_page_bigger_than_the_limit_is_not_kept(app, flask_requests, cache_site, monkeypatch, live_files_ageless):
    monkeypatch.setattr(page_cache, "MAX_BODY", 1000)
    client = app.test_client()
    for _turn in range(2):
        assert client.get(run_page(cache_site, 0)).status_code == 200
    assert flask_requests.count == 2
