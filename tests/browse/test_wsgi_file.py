# SPDX-License-Identifier: GPL-3.0-or-later
"""webcontrol/browse.cgi as mod_wsgi loads it: by path, config from the WSGI environ."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from werkzeug.test import Client

CGI = Path(__file__).resolve().parents[2] / "webcontrol" / "browse.cgi"


def test_browse_cgi_loads_by_path_and_reads_config_from_environ(site):
    application = runpy.run_path(str(CGI))["application"]
    client = Client(application)
    environ = {"AUTOPKGTEST_CLOUD_CONF": str(site.root / "autopkgtest-cloud.conf")}
    response = client.get("/packages/hello", environ_overrides=environ)
    assert response.status_code == 200 and b'<table class="table matrix">' in response.data
    # Mounted under a script name (WSGIScriptAlias /browse ...): the same pages answer.
    response = client.get(
        "/browse/packages/hello",
        environ_overrides={**environ, "SCRIPT_NAME": "/browse", "PATH_INFO": "/packages/hello"},
    )
    assert response.status_code == 200


def test_browse_cgi_with_broken_config_is_a_plain_500(tmp_path):
    application = runpy.run_path(str(CGI))["application"]
    response = Client(application).get("/", environ_overrides={"AUTOPKGTEST_CLOUD_CONF": str(tmp_path / "missing")})
    assert response.status_code == 500 and b"Traceback" not in response.data


def test_a_page_module_that_cannot_be_imported_stops_browse_cgi_loading():
    """A broken feature module fails loading browse.cgi (the daemon's start) instead of quietly taking its pages away."""
    child = (
        "import runpy, sys\n"
        "sys.modules['webcontrol.web.browse.insight'] = None  # as if the module could not be imported\n"
        f"runpy.run_path({str(CGI)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "import of webcontrol.web.browse.insight halted" in done.stderr
