# SPDX-License-Identifier: GPL-3.0-or-later
"""running.js in headless Chromium against a real WSGI server: /running updates itself without a reload.

The page is loaded with one version of running.json; as soon as it has been
served, the test's middleware writes the next version (one job ran on,
one finished, one started). Chromium's virtual time lets the 10 s poll fire
at once; the dumped DOM must show the new duration, the finished job and
the notice about the new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading

import pytest
from werkzeug.serving import make_server

from tests.live.helpers import browse_client
from tests.live.test_cache_amqp import make_public_db
from webcontrol import results
from webcontrol.atomicfile import write_json_atomic
from webcontrol.web.browse import live_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")


def _tree(jobs: dict[str, int]) -> dict:
    tree: dict = {}
    for package, duration in jobs.items():
        params = {"triggers": [f"{package}/1"], "requester": "joe"}
        tree[package] = {results.run_key(params): {"noble": {"amd64": [params, duration, f"{duration}s log line"]}}}
    return tree


def test_running_page_updates_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(live_data, "REFRESH_MIN_S", 0.0)
    make_public_db(tmp_path / "public.db", {"noble": ["amd64"]})
    running = tmp_path / "running.json"
    write_json_atomic(running, _tree({"hello": 100, "gone": 50}))
    app = browse_client(tmp_path, site_url=None).application  # links from the request host

    def next_version_after_page(environ, start_response):
        body = app(environ, start_response)
        if environ["PATH_INFO"] == "/running":
            write_json_atomic(running, _tree({"hello": 4321, "newpkg": 5}))
        return body

    httpd = make_server("127.0.0.1", 0, next_version_after_page, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"http://127.0.0.1:{httpd.server_port}/running",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "HOME": profile},
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        httpd.shutdown()
        httpd.server_close()
    page = done.stdout
    assert "<th>Running for:</th><td>1h 12m 01s (4321s)</td>" in page, page[-3000:]
    assert "✔ finished" in page  # "gone" is no longer running
    assert "1 new job started since this page was loaded" in page
    assert '<span id="running-count">2</span>' in page
    assert "(live)" in page
