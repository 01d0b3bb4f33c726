# SPDX-License-Identifier: GPL-3.0-or-later
"""Under the shipped Apache site, each WSGI daemon loads the apps when it starts, not on its first request.

mod_wsgi recycles daemon processes (a graceful reload after log rotation, a
crashed daemon). A new daemon that imports Flask and the apps only when the
first request reaches it makes that request wait for the imports; the site
preloads browse.cgi and request.cgi, and the aliases reuse what was loaded.
mod_wsgi says in the error log (at the info level the test server logs) each
time a daemon loads a script file.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.deploy import apache
from tests.deploy.test_apache import Site, local_store_site

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

PROCESSES = 2
PRELOADED = ("browse.cgi", "request.cgi")
LOADED = re.compile(r"mod_wsgi \(pid=(\d+), process='autopkgtest-web'.*\): Loading Python script file '[^']*/([^'/]+)'")


@pytest.fixture(scope="module")
def fresh_site():
    with local_store_site("autopkgtest-web-apache-preload-", PROCESSES=str(PROCESSES), THREADS="2") as site:
        yield site


def script_loads(site: Site) -> list[tuple[str, str]]:
    """(daemon pid, script file name) for each load mod_wsgi logged so far."""
    loads = []
    for name in ("error.log", "autopkgtest-web-error.log"):
        path = Path(site.server.base) / "logs" / name
        if path.exists():
            loads += LOADED.findall(path.read_text(errors="replace"))
    return loads


def test_each_daemon_loads_the_apps_before_any_request_and_requests_reuse_them(fresh_site):
    expected = {(pid, script) for pid in range(PROCESSES) for script in PRELOADED}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        loads = script_loads(fresh_site)
        by_script = {script: {pid for pid, name in loads if name == script} for script in PRELOADED}
        if all(len(pids) == PROCESSES for pids in by_script.values()):
            break
        time.sleep(0.2)
    assert {script: len(pids) for script, pids in by_script.items()} == dict.fromkeys(PRELOADED, PROCESSES), (
        f"no request was sent, yet not every daemon loaded {PRELOADED}: {loads}\n{fresh_site.explain()}"
    )
    assert len(expected) == len(loads)

    # Enough requests to reach both daemons: none loads a script again.
    for _ in range(4 * PROCESSES):
        assert fresh_site.get("/")[0] == 200, fresh_site.explain()
        assert fresh_site.get("/request.cgi")[0] in (302, 400, 401, 403), fresh_site.explain()
    assert sorted(script_loads(fresh_site)) == sorted(loads)
