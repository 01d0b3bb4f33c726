# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped Apache site parses with its own defaults, and those defaults match the systemd layout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import apache

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

SYSTEMD_DIR = apache.PROJECT / "systemd"


def run_config(tmp_path: Path, defines: dict[str, str], *flags: str) -> str:
    """apache2 -t on the site with only ``defines`` set (plus what apache2.conf would hold)."""
    lines = [
        "ServerRoot /etc/apache2",
        f"DefaultRuntimeDir {tmp_path}",
        f"PidFile {tmp_path}/apache2.pid",
        f"ErrorLog {tmp_path}/error.log",
        "ServerName 127.0.0.1",
        "User www-data",
        "Group www-data",
        *(f"LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so" for name in apache.MODULES),
        *(f"Define {key} {value}" for key, value in defines.items()),
        f"Include {apache.SITE_CONFIG}",
    ]
    (tmp_path / "httpd.conf").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["apache2", "-f", str(tmp_path / "httpd.conf"), "-t", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "APACHE_LOG_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


# The daemon user must exist for apache2 -t; autopkgtest-web is not created on test machines.
TEST_USER = {"AUTOPKGTEST_WEB_USER": "www-data", "AUTOPKGTEST_WEB_GROUP": "www-data"}


def test_defaults_parse_and_match_the_layout(tmp_path):
    out = run_config(tmp_path, TEST_USER, "-D", "DUMP_RUN_CFG")
    defines = dict(re.findall(r"^Define: (AUTOPKGTEST_WEB_\w+)=(.*)$", out, re.M))
    service = (SYSTEMD_DIR / "autopkgtest-web-publish-db.service").read_text()
    config_path = re.search(r"--config (\S+)", service)[1]
    assert defines["AUTOPKGTEST_WEB_CONF"] == config_path
    assert defines["AUTOPKGTEST_WEB_VHOST"] == "*:80"
    assert defines["AUTOPKGTEST_WEB_PUBLIC_DB"].startswith("/var/lib/autopkgtest-web/")
    assert defines["AUTOPKGTEST_WEB_RUNNING_JSON"].startswith("/run/autopkgtest-web/")
    exec_start = re.search(r"^ExecStart=(\S+)/bin/", service, re.M)[1]
    assert defines["AUTOPKGTEST_WEB_VENV"] == exec_start
    # Unset by default: no extra Listen (Debian's ports.conf has :80), no proxy without a Swift URL.
    assert "AUTOPKGTEST_WEB_LISTEN" not in defines
    assert "AUTOPKGTEST_WEB_SWIFT_STORAGE_URL" not in defines


def test_parses_with_every_optional_variable(tmp_path):
    run_config(
        tmp_path,
        {
            **TEST_USER,
            "AUTOPKGTEST_WEB_LISTEN": "127.0.0.1:8080",
            "AUTOPKGTEST_WEB_VHOST": "127.0.0.1:8080",
            "AUTOPKGTEST_WEB_SERVER_NAME": "https://autopkgtest.example.com",
            "AUTOPKGTEST_WEB_SWIFT_STORAGE_URL": "https://swift.example.com/v1/AUTH_abc",
        },
    )


def test_required_mod_wsgi_settings_and_no_user_agent_rules():
    text = apache.SITE_CONFIG.read_text()
    directives = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert "WSGIMapHEADToGET Off" in directives
    assert "WSGIPassAuthorization On" in directives
    assert "SetEnv AUTOPKGTEST_CLOUD_CONF ${AUTOPKGTEST_WEB_CONF}" in directives
    for line in directives:
        assert not re.search(r"BrowserMatch|HTTP_USER_AGENT|SetEnvIf(NoCase)?\s+User-Agent", line, re.I), line


def load_charm_siteconfig():
    """The charm's pure rendering module, loaded from its file (the charm is not a package of the project)."""
    import importlib.util

    path = apache.PROJECT / "charms" / "autopkgtest-web" / "src" / "siteconfig.py"
    spec = importlib.util.spec_from_file_location("autopkgtest_web_charm_siteconfig", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_charms_apache_variables_parse(tmp_path):
    siteconfig = load_charm_siteconfig()
    inputs = siteconfig.SiteInputs(
        amqp_uri="amqp://u:p@broker:5672",
        swift={},
        site_url="https://autopkgtest.example.com",
        swift_storage_url="https://swift.example.com/v1/AUTH_abc",
        port=8080,
    )
    rendered = siteconfig.render_apache_defines(inputs)
    defines = dict(line.split()[1:3] for line in rendered.splitlines() if line.startswith("Define "))
    defines.update(TEST_USER)  # the charm's service user does not exist on test machines
    out = run_config(tmp_path, defines, "-D", "DUMP_VHOSTS")
    assert "*:8080" in out
