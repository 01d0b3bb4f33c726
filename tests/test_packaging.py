# SPDX-License-Identifier: GPL-3.0-or-later
"""A built wheel carries every file the package needs at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_static_files_and_wsgi_files(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("autopkgtest_web-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    needed = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "webcontrol").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert {"webcontrol/web/templates/base.html", "webcontrol/browse.cgi", "webcontrol/web/static/style.css"} <= needed
    assert needed - members == set()
    entry_points = next(m for m in members if m.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for program in (
        "download-results",
        "download-all-results",
        "publish-db",
        "cache-amqp",
        "amqp-status-collector",
        "update-github-jobs",
        "autopkgtest-stats",
        "cache-ppa-containers",
        "db-backup",
        "autopkgtest-web-demo",
    ):
        assert f"{program} = webcontrol.services." in scripts
