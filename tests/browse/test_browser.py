# SPDX-License-Identifier: GPL-3.0-or-later
"""browse pages in headless Chromium, served by a real WSGI server on 127.0.0.1.

Chromium's own command line does the work (``--dump-dom`` for assertions on
the rendered DOM, ``--screenshot`` for pictures under
``test-artifacts/browse/``); no browser driver package is needed.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.browse import site as sitemod
from webcontrol import config as configmod
from webcontrol.web.browse import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browse"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    # Same site, but links built from the request host so the browser loads our CSS.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(site.root / "autopkgtest-cloud.conf")
    parser.remove_option("web", "site_url")
    path = tmp_path_factory.mktemp("browser") / "autopkgtest-cloud.conf"
    with open(path, "w") as handle:
        parser.write(handle)
    app = create_app(configmod.load(str(path)))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def chromium(*args: str) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": profile},
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return done.stdout


def dom(url: str) -> str:
    return chromium("--virtual-time-budget=2000", "--dump-dom", url)


def screenshot(url: str, name: str, size: str = "1280,900", *extra: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    target.unlink(missing_ok=True)
    chromium(f"--screenshot={target}", f"--window-size={size}", *extra, url)
    assert target.exists() and target.stat().st_size > 2000, f"no screenshot of {url}"
    return target


def test_home_page(server):
    page = dom(server + "/")
    assert "Autopkgtest results" in page and "Latest results" in page
    assert "chrony</strong> on noble/armhf" in page
    assert "Maintenance &lt;b&gt;tonight&lt;/b&gt;" in page  # escaped, not bold
    screenshot(server + "/", "home")
    screenshot(server + "/", "home-phone", "390,844")
    screenshot(server + "/", "home-dark", "1280,900", "--force-dark-mode", "--blink-settings=preferredColorScheme=0")


def test_package_page(server):
    page = dom(server + "/packages/hello")
    assert '<table class="table matrix">' in page
    assert "✔ pass" in page and "😐 neutral" in page and "⚠ tmpfail" in page
    assert "Running for:" in page and "1h 27m 35s (5255s)" in page
    screenshot(server + "/packages/hello", "package")
    screenshot(server + "/packages/hello", "package-phone", "390,844")


def test_history_page(server):
    page = dom(server + "/packages/h/hello/noble/amd64?limit=25")
    assert page.count('<td class="pass">') + page.count('<td class="fail">') == 25
    assert "older »" in page and "▶ running" in page and "… queued" in page
    screenshot(server + "/packages/h/hello/noble/amd64?limit=25", "history")


def test_run_page(server):
    page = dom(f"{server}/run/{sitemod.HELLO_UUID}")
    assert '<th>Result</th><td class="pass">pass</td>' in page
    assert sitemod.HELLO_UUID in page
    screenshot(f"{server}/run/{sitemod.HELLO_UUID}", "run")


def test_log_page(server):
    url = f"{server}/packages/c/chrony/noble/armhf/20240326_184806_3f2a1@/log"
    page = dom(url)
    assert "test upstream-simulation-test-suite" in page and "dpkg/1.22.6ubuntu5" in page
    assert '<details class="log-section summary" open="">' in page
    screenshot(url, "log")
