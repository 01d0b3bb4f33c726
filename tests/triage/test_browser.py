# SPDX-License-Identifier: GPL-3.0-or-later
"""/trigger and /search in headless Chromium, served by a real WSGI server on 127.0.0.1."""

from __future__ import annotations

import configparser
import re
import threading

import pytest
from werkzeug.serving import make_server

from tests.browse.test_browser import CHROMIUM, dom, screenshot
from tests.fakes.fixtures import login
from tests.triage import site as triagesite
from webcontrol import config as configmod
from webcontrol.web.browse import create_app

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")


class LoggedIn:
    """WSGI wrapper: every request carries joe's session cookie (Chromium's command line cannot log in)."""

    def __init__(self, app):
        client = app.test_client()
        login(client, "joe")
        self.cookie = f"session={client.get_cookie('session').value}"
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(dict(environ, HTTP_COOKIE=self.cookie), start_response)


def serve(app):
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    site = triagesite.build(tmp_path_factory.mktemp("triage-browser"))
    # Links built from the request host, so the browser loads our CSS.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(site.root / "autopkgtest-cloud.conf")
    parser.remove_option("web", "site_url")
    path = site.root / "browser.conf"
    with open(path, "w") as handle:
        parser.write(handle)
    app = create_app(configmod.load(str(path)))
    running = [serve(app), serve(LoggedIn(app))]
    yield [f"http://127.0.0.1:{httpd.server_port}" for httpd in running]
    for httpd in running:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


def test_logged_in_trigger_page_has_the_retry_form(servers):
    url = f"{servers[1]}/trigger/glib2.0/2.82.0-1"
    page = dom(url)
    assert "Logout joe" in page and 'name="csrf_token"' in page
    boxes = re.findall(r'<input type="checkbox" form="retry-form" name="item"[^>]*>', page)
    assert len(boxes) == 4 and sum('checked=""' in box for box in boxes) == 3
    screenshot(url, "trigger-retry")


def test_trigger_page_puts_regressions_first(server):
    url = f"{server}/trigger/glib2.0/2.82.0-1"
    page = dom(url)
    assert "3 regressions in 2 packages, 1 running, 2 queued" in page
    first = page.index('data-package="gtk3"')
    assert first < page.index('data-package="libfoo"') < page.index('data-package="pango"')
    assert page.count('<td class="classification regression">regression</td>') == 3
    assert "Running now" in page and "Queued now" in page
    screenshot(url, "trigger")
    screenshot(url, "trigger-phone", "390,844")


def test_history_triggers_lead_to_the_trigger_page(server):
    page = dom(f"{server}/packages/g/gtk3/noble/amd64")
    assert f'<a class="trigger" href="{server}/trigger/glib2.0/2.82.0-1">glib2.0/2.82.0-1</a>' in page


def test_search_page_highlights_and_escapes(server):
    url = f"{server}/search?q=g_once_init_leave_pointer"
    page = dom(url)
    for package in ("gtk3", "libfoo", "pango", "cairo"):
        assert f'data-package="{package}"' in page
    assert "<mark>g_once_init_leave_pointer</mark>" in page
    hostile = dom(f"{server}/search?q=script")
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;<mark>script</mark>&gt;alert('x')" in hostile
    assert "<script>alert" not in hostile
    screenshot(url, "search")
    screenshot(url, "search-phone", "390,844")


def test_search_filters_from_the_form(server):
    page = dom(f"{server}/search?q=g_once_init_leave_pointer&release=jammy")
    assert 'data-package="gtk3" data-release="jammy"' in page
    assert 'data-release="noble"' not in page
    assert '<option selected="">jammy</option>' in page
