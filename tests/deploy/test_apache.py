# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped Apache site in a real Apache + mod_wsgi, serving the installed project.

Apache listens on 127.0.0.1; the WSGI daemons run the project from a
virtualenv made with Debian's python3 (tests/deploy/apache.py). /results/ is
proxied to the test Swift, and request.cgi's [amqp] uri is the real broker.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import secrets
import shutil
import sqlite3
import string
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest

from tests.deploy import apache
from tests.fakes.launchpad import FakeLaunchpad
from tests.services import amqp as amqp_fixtures
from webcontrol import config as configmod
from webcontrol import db

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

AMQP_URI = amqp_fixtures.BROKER_URI
API_USER, API_KEY = "joe", "s3cret"
AUTHORIZED = {"Authorization": f"Bearer {API_USER}:{API_KEY}"}
ARCH = "amd64"
PACKAGE = "hello"
RUN_ID = "20261129_081500_abcde@"
CLIENT_AGENTS = ("curl/7.88.1", "Wget/1.21.3", "Python-urllib/3.11", "python-requests/2.31.0", "Go-http-client/1.1")


def random_release() -> str:
    """A release name no other test uses, so its debci-<rel>-amd64 queue is ours alone."""
    return "t" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def web_paths(data, public_db, runtime, state, release: str) -> dict[str, str]:
    """The [web] keys both Apache sites share: DB, live-state files, caches and state folders."""
    return {
        "database": str(data / "rw.db"),
        "database_public": str(public_db),
        "running_cache": str(runtime / "running.json"),
        "amqp_queue_cache": str(runtime / "queued.json"),
        "stats_cache_dir": str(runtime),
        "ppa_containers_cache_dir": str(runtime),
        "indexed_packages": str(runtime / "indexed-packages.json"),
        "releases": release,
        "state_dir": str(state),
        "runtime_dir": str(runtime),
    }


def build_public_db(path: Path, release: str) -> None:
    conn = sqlite3.connect(path)
    try:
        db.create_public_schema(conn)
        conn.commit()
        db.record_results(
            conn,
            [
                db.ResultRecord(
                    release=release,
                    arch=ARCH,
                    package=PACKAGE,
                    run_id=RUN_ID,
                    version="2.10-3",
                    triggers=f"{PACKAGE}/2.10-3",
                    duration=125,
                    exitcode=0,
                    requester="",
                    uuid=str(uuid.uuid4()),
                )
            ],
        )
    finally:
        conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Path(f"{path}.sha256").write_text(digest)


@contextlib.contextmanager
def local_store_site(prefix: str, files: dict[str, bytes] | None = None, **defines: str):
    """The shipped site under Apache with the local result store (no Swift) and one result in its DB.

    ``files`` are written into the store first (paths below the store folder); ``defines`` are more
    ``AUTOPKGTEST_WEB_*`` variables (``PROCESSES="4"``). The Site knows its ``runtime`` folder.
    """
    release = random_release()
    base = apache.make_shared_tmpdir(prefix)
    data, state, runtime, store = (base / name for name in ("data", "state", "runtime", "store"))
    for folder in (data, state, runtime, store):
        folder.mkdir()
    public_db = data / "autopkgtest.db"
    build_public_db(public_db, release)
    for name, body in (files or {}).items():
        path = store / name.format(release=release)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    (runtime / "running.json").write_text("{}")
    conf = base / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {
                **web_paths(data, public_db, runtime, state, release),
                "results_store": "local",
                "results_dir": str(store),
                "openid_provider": "http://127.0.0.1:9/",
                "launchpad_api": "http://127.0.0.1:9/",
            },
        },
        conf,
    )
    apache.give_to_apache_user([*apache.tree(base, data, state, runtime, store), conf])
    try:
        # No SWIFT_STORAGE_URL: the site's proxy section is left out.
        site_defines = {"CONF": str(conf), "PUBLIC_DB": str(public_db), "RUNNING_JSON": str(runtime / "running.json")}
        with apache.serving(base, {**site_defines, **defines}) as server:
            site = Site(server, release, public_db, {})
            site.runtime = runtime
            yield site
    finally:
        if os.environ.get("AUTOPKGTEST_WEB_KEEP_APACHE_LOGS") is None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def swift(request):
    """The session Swift when the suite's plugin provides it, else one of our own."""
    try:
        yield request.getfixturevalue("swift_server")
        return
    except pytest.FixtureLookupError:
        pass
    from tests.services.swift import start_swift

    server = start_swift()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def public_log(swift):
    """A public container holding one log.gz, like the workers upload."""
    import swiftclient

    container = f"autopkgtest-t{uuid.uuid4().hex[:10]}"
    name = f"noble/{ARCH}/h/{PACKAGE}/{RUN_ID}/log.gz"
    body = gzip.compress(b"autopkgtest log\n" * 200)
    conn = swiftclient.Connection(swift.auth_url, swift.user, swift.key, auth_version="1")
    try:
        conn.put_container(container, headers={"X-Container-Read": ".r:*,.rlistings"})
        conn.put_object(container, name, body, content_type="application/gzip")
        yield container, name, body
        conn.delete_object(container, name)
        conn.delete_container(container)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def launchpad():
    """Fake Launchpad on loopback: joe may upload hello, whose version is published in the release."""
    fake = FakeLaunchpad().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def site(swift, launchpad):
    release = random_release()
    launchpad.state.publish(PACKAGE, "2.10-3", release)
    launchpad.state.uploaders.add((API_USER, PACKAGE))
    queues = amqp_fixtures.AmqpNames(AMQP_URI)
    queues.queues += [f"debci-{ctx}{release}-{ARCH}" for ctx in ("", "huge-", "ppa-", "upstream-")]
    base = apache.make_shared_tmpdir("autopkgtest-web-apache-")
    data = base / "data"
    state = base / "state"
    runtime = base / "runtime"
    for folder in (data, state, runtime):
        folder.mkdir()
    public_db = data / "autopkgtest.db"
    build_public_db(public_db, release)
    running = {}
    (runtime / "running.json").write_text(json.dumps(running))
    queued = {
        "releases": [release],
        "arches": [ARCH],
        "queues": {
            ctx: {release: {ARCH: {"size": 0, "requests": []}}} for ctx in ("ubuntu", "huge", "ppa", "upstream")
        },
    }
    queued["queues"]["ubuntu"][release][ARCH] = {
        "size": 1,
        "requests": [f'{PACKAGE}\n{{"triggers": ["{PACKAGE}/2.10-4"], "submit-time": "2026-11-29 08:00:00"}}'],
    }
    (runtime / "queued.json").write_text(json.dumps(queued))
    (base / "api-keys.json").write_text(json.dumps({API_USER: API_KEY}))
    conf = base / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {
                **web_paths(data, public_db, runtime, state, release),
                "team_cache": str(runtime / "team-cache.json"),
                "swift_storage_url": swift.storage_url,
                "allowed_requestors": "autopkgtest-requestors",
                "api_keys": str(base / "api-keys.json"),
                "launchpad_api": launchpad.url,
                # Nothing may ever reach a real SSO from this test.
                "openid_provider": "http://127.0.0.1:9/",
            },
            "amqp": {"uri": AMQP_URI},
            "swift": swift.config_section(),
        },
        conf,
    )
    # Apache serves as www-data, and so do the WSGI daemons here (the service user in production).
    apache.give_to_apache_user(
        [base, data, state, runtime, *data.iterdir(), *runtime.iterdir(), conf, base / "api-keys.json"]
    )
    defines = {
        "CONF": str(conf),
        "PUBLIC_DB": str(public_db),
        "RUNNING_JSON": str(runtime / "running.json"),
        "SWIFT_STORAGE_URL": swift.storage_url,
    }
    try:
        with apache.serving(base, defines) as server:
            yield Site(server, release, public_db, running)
    finally:
        queues.cleanup()
        if os.environ.get("AUTOPKGTEST_WEB_KEEP_APACHE_LOGS") is None:
            shutil.rmtree(base, ignore_errors=True)


class Site:
    def __init__(self, server: apache.ApacheServer, release: str, public_db: Path, running: dict):
        self.server = server
        self.release = release
        self.public_db = public_db
        self.running = running

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
        """One raw request (no redirect following, no decompression): (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def get(self, path: str, **headers):
        status, head, body = self.request("GET", path, headers)
        if head.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return status, head, body

    def explain(self) -> str:
        return self.server.log_tail()


def test_installed_package_has_every_data_file(site):
    """Templates, static files and WSGI files must survive a non-editable install (pyproject.toml package-data)."""
    checkout = apache.PROJECT / "webcontrol"
    wanted = {
        str(path.relative_to(checkout))
        for path in checkout.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    installed = {str(path.relative_to(site.server.code)) for path in site.server.code.rglob("*") if path.is_file()}
    missing = sorted(wanted - installed)
    assert not missing, "missing from the installed package (pyproject.toml package-data): " + ", ".join(missing)


def test_home_page(site):
    status, headers, body = site.get("/")
    assert status == 200, site.explain()
    assert headers["Content-Type"].startswith("text/html")
    assert PACKAGE.encode() in body  # the latest results list


def _without_date(answer) -> tuple:
    status, headers, body = answer
    return status, [(name, value) for name, value in headers.items() if name != "Date"], body


@pytest.mark.parametrize("page", ["run", "statistics"])
def test_pages_kept_for_anonymous_visitors_are_the_ones_flask_sends(site, page):
    """Under mod_wsgi too (docs/architecture.rst): a kept page is what Flask sends for a request with a cookie."""
    with contextlib.closing(sqlite3.connect(site.public_db)) as conn:
        run_uuid = conn.execute("SELECT uuid FROM result").fetchone()[0]
    path = f"/run/{run_uuid}" if page == "run" else "/statistics"
    # More requests than daemons: each makes the page once, then sends it kept.
    anonymous = [_without_date(site.request("GET", path)) for _turn in range(12)]
    from_flask = _without_date(site.request("GET", path, {"Cookie": "unrelated=1"}))
    assert from_flask[0] == 200, site.explain()
    assert all(answer == from_flask for answer in anonymous)
    headers = dict(from_flask[1])
    assert "Set-Cookie" not in headers and "Content-Security-Policy" in headers
    assert b"Logout" not in from_flask[2]
    for _turn in range(2):
        https = site.request("GET", path, {"X-Forwarded-Proto": "https"})[2]
        assert f'name="next" value="https://127.0.0.1:{site.server.port}{path}"'.encode() in https
        plain = site.request("GET", path)[2]
        assert f'name="next" value="http://127.0.0.1:{site.server.port}{path}"'.encode() in plain


def test_wsgi_daemons_run_with_the_shipped_environment(site):
    """The drop-in's MALLOC_ARENA_MAX reaches the mod_wsgi daemons, which inherit Apache's environment."""
    assert site.get("/")[0] == 200, site.explain()
    wanted = apache.service_environment()
    assert wanted.get("MALLOC_ARENA_MAX") == "2"
    daemons = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            name = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, IndexError):
            continue
        if int(stat[1]) == site.server.proc.pid and name.startswith(b"(wsgi:"):
            daemons.append(entry)
    assert daemons
    for daemon in daemons:
        env = dict(item.split("=", 1) for item in (daemon / "environ").read_text().split("\0") if "=" in item)
        assert {key: env.get(key) for key in wanted} == wanted


@pytest.mark.parametrize("agent", CLIENT_AGENTS)
def test_no_user_agent_blocking(site, agent):
    status, _, _ = site.get("/queues.json", **{"User-Agent": agent})
    assert status == 200, site.explain()


def test_pages_are_compressed(site):
    status, headers, body = site.request("GET", "/", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert b"<html" in gzip.decompress(body).lower()


def test_static_style(site):
    status, headers, body = site.get("/static/style.css")
    assert status == 200, site.explain()
    assert headers["Content-Type"].startswith("text/css")
    assert headers["Cache-Control"] == "max-age=60"
    assert body.strip()


def test_public_db_download_matches_its_sha256(site):
    status, headers, digest = site.get("/static/autopkgtest.db.sha256")
    assert status == 200, site.explain()
    status, headers, body = site.get("/static/autopkgtest.db")
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    assert "Last-Modified" in headers
    assert hashlib.sha256(body).hexdigest() == digest.decode().strip()
    assert body == site.public_db.read_bytes()


def test_running_json_is_served_from_its_configured_path(site):
    status, headers, body = site.get("/static/running.json")
    assert status == 200, site.explain()
    assert json.loads(body) == site.running


def test_queues_json(site):
    status, headers, body = site.get("/queues.json")
    assert status == 200, site.explain()
    assert headers["Content-Type"].startswith("application/json")
    queues = json.loads(body)
    assert queues["ubuntu"][site.release][ARCH][0].startswith(f"{PACKAGE}\n")
    assert queues["huge"][site.release][ARCH] == []


def test_results_are_proxied_to_swift(site, public_log):
    container, name, content = public_log
    status, headers, body = site.request("GET", f"/results/{container}/{name}")
    assert status == 200, site.explain()
    assert body == content
    status, _, listing = site.get(f"/results/{container}/?format=json")
    assert status == 200
    assert [item["name"] for item in json.loads(listing)] == [name]


def test_results_proxy_is_anonymous(site, swift):
    """A private container stays private through the proxy, even for a client that sends a valid token."""
    import swiftclient

    container = f"private-t{uuid.uuid4().hex[:10]}"
    conn = swiftclient.Connection(swift.auth_url, swift.user, swift.key, auth_version="1")
    try:
        conn.put_container(container)  # no read ACL
        conn.put_object(container, "noble/amd64/h/hello/x@/log.gz", b"secret", content_type="application/gzip")
        _, token = conn.get_auth()
        for headers in ({}, {"X-Auth-Token": token}, {"Authorization": f"Bearer {token}"}):
            status, _, body = site.request("GET", f"/results/{container}/noble/amd64/h/hello/x@/log.gz", headers)
            assert status == 401, (headers.keys(), status)
            assert b"secret" not in body
        conn.delete_object(container, "noble/amd64/h/hello/x@/log.gz")
        conn.delete_container(container)
    finally:
        conn.close()


def test_results_proxy_is_read_only(site, public_log):
    container, name, _ = public_log
    status, _, _ = site.request("PUT", f"/results/{container}/{name}", body=b"overwritten")
    assert status == 403
    status, _, body = site.request("GET", f"/results/{container}/{name}")
    assert status == 200 and body != b"overwritten"


@pytest.mark.parametrize(
    "path, target",
    [
        (f"/packages/{PACKAGE}/", f"/packages/{PACKAGE}"),
        (f"/packages/h/{PACKAGE}/noble/amd64/", f"/packages/h/{PACKAGE}/noble/amd64"),
        ("/running.shtml", "/running"),
        # Hostile names stay escaped in Location (no header injection).
        ("/packages/a%0D%0Ab/", "/packages/a%0d%0ab"),
    ],
)
def test_redirects(site, path, target):
    status, headers, _ = site.request("GET", path)
    assert status == 301
    assert headers["Location"] == site.server.url + target


def test_package_page_via_browse(site):
    status, _, body = site.get(f"/packages/{PACKAGE}")
    assert status == 200, site.explain()
    assert site.release.encode() in body


def test_anonymous_request_gets_login_form(site):
    query = f"/request.cgi?release={site.release}&arch={ARCH}&package={PACKAGE}&trigger={PACKAGE}/2.10-3"
    status, _, body = site.get(query)
    assert status == 403, site.explain()
    assert b"<form" in body and b"/login" in body


def queued_bodies(queue: str) -> list[bytes]:
    """Consume what is in a queue; a queue nobody declared holds nothing."""
    try:
        return amqp_fixtures.drain(AMQP_URI, queue)
    except pika.exceptions.ChannelClosedByBroker as err:
        if err.reply_code == 404:
            return []
        raise


def request_query(site, path: str = "/request.cgi") -> str:
    return f"{path}?release={site.release}&arch={ARCH}&package={PACKAGE}&trigger={PACKAGE}/2.10-3"


@pytest.mark.parametrize("path", ["/request.cgi", "/request.cgi/", "/github/webhook"])
def test_head_never_submits(site, path):
    # An authorised, valid request (the GET below submits it); Accept-Encoding
    # makes mod_deflate active, with which mod_wsgi's default WSGIMapHEADToGET
    # would hand this HEAD to the app as a GET.
    status, headers, body = site.request("HEAD", request_query(site, path), {**AUTHORIZED, "Accept-Encoding": "gzip"})
    assert status == 405, site.explain()
    assert headers["Allow"].replace(" ", "") == "GET,POST"
    assert body == b""
    assert queued_bodies(f"debci-{site.release}-{ARCH}") == [], "a HEAD request submitted a test"


def test_authorised_get_submits_one_request(site):
    """The control for the HEAD test; it also shows the Authorization header reaches the app."""
    status, _, body = site.get(request_query(site), **AUTHORIZED)
    assert status == 200, body.decode(errors="replace") + site.explain()
    bodies = queued_bodies(f"debci-{site.release}-{ARCH}")
    assert len(bodies) == 1
    package, _, params = bodies[0].decode().partition("\n")
    assert package == PACKAGE
    assert json.loads(params)["requester"] == API_USER


def test_login_and_logout_reach_request_cgi(site):
    status, headers, _ = site.request("GET", "/login")
    assert status == 302
    assert headers["Location"] in ("/", site.server.url + "/")
    status, headers, _ = site.request("GET", "/logout")
    assert status == 302


def test_private_results_are_routed_to_their_app(site):
    status, _, body = site.get("/private-results/")
    assert status == 200, site.explain()
    assert b"Please provide the path to the private result." in body
    status, _, body = site.get(f"/private-results/autopkgtest-noble/noble/{ARCH}/h/{PACKAGE}/{RUN_ID}/log.gz")
    assert status == 403
    assert b"Limited to private results only." in body


def test_retry_and_its_json_twin_reach_request_cgi(site):
    """/retry and /api/v1/retry are request.cgi's, not browse.cgi's catch-all (split SCRIPT_NAME too)."""
    item = {"release": site.release, "arch": ARCH, "package": PACKAGE, "triggers": [f"{PACKAGE}/2.10-3"]}
    body = json.dumps({"items": [item]}).encode()
    status, _, answer = site.request("POST", "/api/v1/retry", {**AUTHORIZED, "Content-Type": "application/json"}, body)
    assert status == 200, answer.decode(errors="replace") + site.explain()
    result = json.loads(answer)
    assert result["queued"] == 1 and result["items"][0]["uuid"]
    assert len(queued_bodies(f"debci-{site.release}-{ARCH}")) == 1
    status, _, page = site.request("POST", "/retry")
    assert status == 403 and b'<form action="/login" method="post">' in page
