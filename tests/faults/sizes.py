# SPDX-License-Identifier: GPL-3.0-or-later
"""Test sizes of the fault suite: small in CI, full under ``AUTOPKGTEST_WEB_SOAK=1`` (``bench/soak``)."""

from __future__ import annotations

import os

SOAK = os.environ.get("AUTOPKGTEST_WEB_SOAK") == "1"


def size(name: str, ci: int, soak: int) -> int:
    """A test size: ``AUTOPKGTEST_WEB_FAULTS_<NAME>`` if set, else the CI or soak default."""
    value = os.environ.get(f"AUTOPKGTEST_WEB_FAULTS_{name.upper()}")
    if value:
        return int(value)
    return soak if SOAK else ci
