# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo folder is built through the real programs and served as one site."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from werkzeug.test import Client

from webcontrol import config as configmod
from webcontrol.services import demo


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    config_path = demo.build(root, runs_per_test=2)
    return root, configmod.load(str(config_path))


def test_build_goes_through_ingest_and_publish(demo_site):
    root, config = demo_site
    import sqlite3

    public = sqlite3.connect(config.get("web", "database_public"))
    count = public.execute("SELECT COUNT(*) FROM result").fetchone()[0]
    assert count == len(demo.RELEASES) * len(demo.ARCHES) * 20 * 2 + 7 * len(demo.ARCHES)  # + one upload's runs
    assert public.execute("SELECT COUNT(*) FROM current_version").fetchone()[0] == 20 * len(demo.RELEASES)
    assert json.loads((root / "run" / "ppa_containers.json").read_text()) == [
        "autopkgtest-questing-ana-glib-next",
        "autopkgtest-questing-joe-hello-fixes",
    ]
    running = json.loads((root / "run" / "running.json").read_text())
    assert "private-test" in running and len(running) >= 2
    queued = json.loads((root / "run" / "queued.json").read_text())
    assert queued["releases"] == list(demo.RELEASES)
    assert "private job" in queued["queues"]["ppa"]["questing"]["amd64"]["requests"]
    assert "secret" not in (root / "run" / "queued.json").read_text()


def test_one_server_routes_every_app(demo_site):
    _root, config = demo_site
    client = Client(demo.make_wsgi_app(config))
    client_open = client.open
    client.open = lambda *args, **kwargs: client_open(*args, buffered=True, **kwargs)  # read and close each answer
    home = client.get("/")
    assert home.status_code == 200 and "hello" in home.get_data(as_text=True)
    assert client.get("/packages/h/hello/noble/amd64").status_code == 200
    assert client.get("/request.cgi?release=noble").status_code == 403  # login form, from request.cgi
    assert client.head("/request.cgi").status_code == 405
    private = client.get("/private-results/")  # from private-results
    assert private.status_code == 200 and "Please provide the path to the private result." in private.get_data(
        as_text=True
    )
    sha = client.get("/static/autopkgtest.db.sha256").get_data(as_text=True)
    import hashlib

    assert hashlib.sha256(client.get("/static/autopkgtest.db").get_data()).hexdigest() == sha


def test_demo_upload_breaks_packages_with_a_searchable_error(demo_site):
    from webcontrol import demodata

    _root, config = demo_site
    client = Client(demo.make_wsgi_app(config))
    source, version = demodata.BREAKING_TRIGGER.split("/")
    data = client.get(f"/api/v1/trigger/{source}/{version}").get_json()
    assert data["summary"]["text"].startswith(f"{4 + 4 + 1} regressions in 3 packages")
    assert [g["package"] for g in data["groups"][:3]] == ["bash", "chrony", "nginx"]
    found = client.get("/api/v1/search?q=g_once_init_leave_pointer").get_json()
    assert {g["package"] for g in found["groups"]} == {"bash", "chrony", "nginx"}
    recurring = client.get("/api/v1/search?q=%22Segmentation+fault%22").get_json()
    assert len({g["package"] for g in recurring["groups"]}) >= 2
    # /retry belongs to request.cgi: anonymous gets its login form; the JSON twin answers JSON.
    assert '<form action="/login" method="post">' in client.post("/retry").get_data(as_text=True)
    assert client.post("/api/v1/retry", json={"items": []}).get_json()["status"] == 403


def test_command_serves_on_loopback(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = tmp_path / "d"
    demo.build(root, runs_per_test=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "webcontrol.services.demo", "--dir", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert f"http://127.0.0.1:{port}/" in process.stdout.readline()
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/queues.json", timeout=5) as response:
                    assert set(json.load(response)) == {"ubuntu", "huge", "ppa", "upstream"}
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("demo server did not answer")
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def test_every_artifacts_link_resolves_tmpfail_rows_included(demo_site):
    """Each result row links artifacts.tar.gz; the demo must have the file behind every link."""
    import re
    import sqlite3

    _root, config = demo_site
    client = Client(demo.make_wsgi_app(config))
    public = sqlite3.connect(config.get("web", "database_public"))
    tmpfails = public.execute(
        "SELECT DISTINCT test.package, test.release, test.arch FROM result JOIN test ON test.id = result.test_id"
        " WHERE result.exitcode IN (16, 20) ORDER BY 1, 2, 3"
    ).fetchall()
    assert tmpfails, "the demo data should hold tmpfail results"
    checked = 0
    for package, release, arch in tmpfails:
        page = client.get(f"/packages/{package}/{release}/{arch}").get_data(as_text=True)
        for link in re.findall(r'href="([^"]+/artifacts\.tar\.gz)"', page):
            path = link.split("://", 1)[-1].split("/", 1)[1]
            response = client.get("/" + path)
            response.close()
            assert response.status_code == 200, link
            checked += 1
    assert checked >= len(tmpfails)
