# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo command as a visitor meets it: it stops when told, stays fresh, and lets one log in and request."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from tests.demo_process import DemoProcess
from tests.request.test_form_browser import CHROMEDRIVER, CHROMIUM, WebDriver
from webcontrol import config as configmod
from webcontrol.services import demo

HEALTH_WATCH_S = 185
HEALTH_EVERY_S = 10


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-live")
    demo.build(root, runs_per_test=1)
    return root


@pytest.fixture
def served(built):
    process = DemoProcess(built)
    try:
        process.wait_for(process.url)
        yield process
    finally:
        process.stop()
        # Shown by pytest when the test failed: the demo's log, tracebacks of 500s included.
        print(process.output()[-20000:])


@pytest.mark.parametrize(
    "signum, during",
    [
        # download-all-results runs in-process with its own graceful-stop handlers.
        (signal.SIGTERM, "demo: running download-all-results"),
        # After it: its handlers must not be left behind.
        (signal.SIGINT, "demo: running publish-db"),
    ],
)
def test_a_signal_stops_a_first_run_within_5_s(tmp_path, signum, during):
    process = DemoProcess(tmp_path / "demo")
    try:
        process.wait_for(during)
        process.process.send_signal(signum)
        started = time.monotonic()
        try:
            code = process.process.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo still runs 5 s after signal {signum}")
        assert time.monotonic() - started < 5
        assert code != 0  # an unfinished build
        assert not (tmp_path / "demo" / demo.READY).exists()
    finally:
        process.stop()


def test_health_stays_200_for_3_minutes_while_jobs_run_and_finish(served, built):
    """Simulated workers keep running.json, queued.json and the public DB fresh, as the live site's programs do."""
    config = configmod.load(str(built / "autopkgtest-cloud.conf"))
    public = config.get("web", "database_public")

    def result_count() -> int:
        conn = sqlite3.connect(f"file:{public}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        finally:
            conn.close()

    before = result_count()
    running_seen = set()
    deadline = time.monotonic() + HEALTH_WATCH_S
    checks = 0
    while True:
        status, body = get(served.url + "/health")
        assert status == 200, body.decode()
        checks += 1
        running = json.loads(get(served.url + "/static/running.json")[1])
        running_seen |= set(running)
        if time.monotonic() >= deadline:
            break
        time.sleep(HEALTH_EVERY_S)
    assert checks >= HEALTH_WATCH_S // HEALTH_EVERY_S
    page = get(served.url + "/running")[1].decode()
    ages = re.findall(r'<span data-age="(?:running|queued)">(\d+)</span> s ago', page)
    assert len(ages) == 2 and all(int(age) <= 10 for age in ages), ages
    # Jobs came and went, and the finished ones became published results.
    assert len(running_seen) > len(running)
    assert result_count() > before


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver are not installed")
def test_visitor_logs_in_requests_a_test_and_retries_one(served):
    browser = WebDriver()
    try:
        browser.get(served.url + "/request")
        browser.click("form.login button")
        # The demo's own login service asks once, then the site knows the visitor.
        browser.wait_text("body", "demo's built-in login service")
        browser.click("#demo-login-approve")
        browser.wait_text("body", "Logout demo")
        assert browser.script("return location.pathname") == "/request"

        browser.type("input[name=package]", "hello")
        browser.type("input[name=trigger]", "hello/2.0-1ubuntu1")
        browser.click("input[name=arch][value=amd64]")
        browser.click("button[type=submit]")
        text = browser.wait_text("#outcome", "Test request submitted.")
        (uuid,) = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))
        # The request reached the demo's queue: it waits there or a simulated worker runs it already.
        deadline = time.monotonic() + 15
        while (
            uuid
            not in get(served.url + "/queues.json")[1].decode() + get(served.url + "/static/running.json")[1].decode()
        ):
            assert time.monotonic() < deadline, f"request {uuid} is neither queued nor running"
            time.sleep(0.5)

        # A failed result's retry link submits the same test again (libpng1.6 fails nearly always).
        for arch in demo.ARCHES:
            browser.get(f"{served.url}/packages/libpng1.6/noble/{arch}")
            if browser.script("return document.querySelectorAll('a.retry').length"):
                break
        else:
            pytest.fail("no retry link on any libpng1.6/noble page")
        browser.click("a.retry")
        browser.wait_text("body", "Test request submitted.")
        assert "/request.cgi" in browser.script("return location.pathname")
    finally:
        browser.quit()
