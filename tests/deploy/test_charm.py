# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the charm's own unit tests (charms/autopkgtest-web/tests) from the project's suite.

They run in a separate pytest process because the charm's modules are
imported from its src/ folder by bare names (charm, host, siteconfig), as
Juju runs them, and its tests folder is not part of the project's packages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHARM_DIR = Path(__file__).resolve().parents[2] / "charms" / "autopkgtest-web"


def test_charm_unit_tests():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=CHARM_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"charm unit tests failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in done.stdout.splitlines()[-1]
