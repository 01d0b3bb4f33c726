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

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.deploy import apache
from tests.deploy.test_apache import Site, build_public_db, random_release, web_paths
from webcontrol import config as configmod

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

PROCESSES = 2
PRELOADED = ("browse.cgi", "request.cgi")
LOADED = re.compile(r"mod_wsgi \(pid=(\d+), process='autopkgtest-web'.*\): Loading Python script file '[^']*/([^'/]+)'")


@pytest.fixture(scope="module")
def fresh_site():
    release = random_release()
    base = apache.make_shared_tmpdir("autopkgtest-web-apache-preload-")
    data, state, runtime, store = (base / name for name in ("data", "state", "runtime", "store"))
    for folder in (data, state, runtime, store):
        folder.mkdir()
    public_db = data / "autopkgtest.db"
    build_public_db(public_db, release)
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
    defines = {"CONF": str(conf), "PUBLIC_DB": str(public_db), "RUNNING_JSON": str(runtime / "running.json")}
    try:
        with apache.serving(base, {**defines, "PROCESSES": str(PROCESSES), "THREADS": "2"}) as server:
            yield Site(server, release, public_db, {})
    finally:
        if os.environ.get("AUTOPKGTEST_WEB_KEEP_APACHE_LOGS") is None:
            shutil.rmtree(base, ignore_errors=True)


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
