# SPDX-License-Identifier: GPL-3.0-or-later
"""The /request form in headless Chromium: it submits to request.cgi and shows the outcome inline.

browse (with the request pages blueprint) and request.cgi are served from one
real WSGI server on 127.0.0.1, as Apache routes them on one site. Chromium is
driven through chromedriver's W3C WebDriver HTTP API directly (no driver
package needed).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
from werkzeug.serving import make_server

from tests.fakes.fixtures import drain, login
from webcontrol.messages import TestRequest
from webcontrol.web.browse import create_app as create_browse_app
from webcontrol.web.request import create_app as create_request_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
REQUEST_PATHS = ("/request.cgi", "/login", "/logout", "/github/webhook")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver are not installed"
)


class WebDriver:
    def __init__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.process = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={self.profile}"]
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    def s(self, method: str, path: str, body: dict | None = None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.s("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self.s("POST", f"/element/{element}/clear", {})
        self.s("POST", f"/element/{element}/value", {"text": text})

    def click(self, css: str) -> None:
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def script(self, source: str):
        return self.s("POST", "/execute/sync", {"script": source, "args": []})

    def wait_text(self, css: str, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.script(f"return document.querySelector({json.dumps(css)}).innerText")
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared in {css}: {text!r}")

    def quit(self) -> None:
        try:
            self.s("DELETE", "")
        except OSError:
            pass
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def server(site):
    """browse + request.cgi on one origin, links from the request host (browse serves the form's script)."""
    del site.values["web"]["site_url"]
    config = site.config
    browse = create_browse_app(config)
    request_app = create_request_app(config)

    def dispatch(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(REQUEST_PATHS):
            return request_app(environ, start_response)
        return browse(environ, start_response)

    httpd = make_server("127.0.0.1", 0, dispatch, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", request_app
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def browser():
    driver = WebDriver()
    yield driver
    driver.quit()


def test_form_submits_inline(server, browser, site, launchpad, amqp_uri):
    url, request_app = server
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.uploaders.add(("joe", "hello"))
    client = request_app.test_client()
    login(client, "joe")
    browser.get(url + "/request")
    browser.s("POST", "/cookie", {"cookie": {"name": "session", "value": client.get_cookie("session").value}})
    browser.get(url + "/request")
    assert "Logout joe" in browser.script("return document.body.innerText")

    # A validation error is shown inline, on the same page.
    browser.type("input[name=package]", "hello")
    browser.type("input[name=trigger]", "hello")
    browser.click("input[name=arch][value=amd64]")
    browser.click("button[type=submit]")
    text = browser.wait_text("#outcome", "invalid request")
    assert "Malformed trigger, must be srcpackage/version" in text
    assert browser.script("return location.pathname") == "/request"

    # A valid request is queued and the submission page shows inline.
    browser.type("input[name=trigger]", "hello/1.0")
    browser.click("button[type=submit]")
    text = browser.wait_text("#outcome", "Test request submitted.")
    (raw,) = drain(amqp_uri, f"debci-{site.release}-amd64")
    request = TestRequest.parse(raw)
    assert request.params["triggers"] == ["hello/1.0"] and request.params["requester"] == "joe"
    assert request.params["uuid"] in text
