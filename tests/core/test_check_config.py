# SPDX-License-Identifier: GPL-3.0-or-later
"""``--check-config``: a real validation of the file, not a --help that exits 0 whatever the file holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def program(name: str, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name(name)
    assert script.exists(), f"console script {name} is not installed in this environment"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60, cwd="/")


def test_missing_file_is_named_and_fails(tmp_path):
    done = program("publish-db", "--check-config", "--config", str(tmp_path / "nope.conf"))
    assert done.returncode == 2
    assert f"cannot read configuration {tmp_path / 'nope.conf'}" in done.stderr


def test_every_problem_is_named_typos_included(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("[web]\ndatabse = /srv/rw.db\ndatabase_public = /srv/public.db\n[amqq]\nuri = amqp://h\n")
    done = program("publish-db", "--check-config", "--config", str(conf))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert f"{conf}: unknown key [web] databse (did you mean database?)" in lines
    assert f"{conf}: unknown section [amqq] (did you mean [amqp]?)" in lines
    assert f"{conf}: missing required key [web] database" in lines
    assert done.stdout == ""


def test_invalid_value_is_named(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("[web]\ndatabase = /a\ndatabase_public = /b\nteam_cache_seconds = soon\n")
    done = program("publish-db", "--check-config", "--config", str(conf))
    assert done.returncode == 2 and "[web] team_cache_seconds = 'soon' is invalid" in done.stderr


def test_good_file_for_one_program_passes_and_the_site_check_wants_more(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("[web]\ndatabase = /a\ndatabase_public = /b\n")
    done = program("publish-db", "--check-config", "--config", str(conf))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"{conf}: configuration OK", "")
    # The same file is not enough for the status collector, nor for the whole site.
    done = program("amqp-status-collector", "--check-config", "--config", str(conf))
    assert done.returncode == 2 and "missing required key [amqp] uri" in done.stderr
    site = subprocess.run(
        [sys.executable, "-m", "webcontrol.configcheck", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert site.returncode == 2 and "missing required key [web] results_dir (results_store is local)" in site.stderr


def test_shipped_example_passes_the_site_check(tmp_path):
    conf = tmp_path / "autopkgtest-cloud.conf"
    shutil.copy(ROOT / "autopkgtest-cloud.conf.example", conf)
    site = subprocess.run(
        [sys.executable, "-m", "webcontrol.configcheck", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert site.returncode == 0, site.stderr
