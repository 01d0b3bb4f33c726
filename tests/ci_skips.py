# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin: in CI (``CI=true``), a skipped test is a failed test unless it is allowed.

Tests that need Chromium, Apache, systemd-analyze, root or a RabbitMQ server
skip where those are missing, which is right on a developer's machine and
wrong in CI, where a skip would hide that nothing was checked. The allowed
skips are listed in ``tests/allowed-skips.txt``, one per line::

    <node id, or a prefix of node ids> | <why it may skip in CI>

A line without a reason is refused. ``AUTOPKGTEST_WEB_ALLOWED_SKIPS`` names
another list (the plugin's own tests use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).with_name("allowed-skips.txt")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def read_allowed(path: Path) -> dict[str, str]:
    """``{node id prefix: reason}``. Raises pytest.UsageError for a line without a reason."""
    allowed = {}
    if not path.exists():
        return allowed
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        prefix, _bar, reason = line.partition("|")
        if not prefix.strip() or not reason.strip():
            raise pytest.UsageError(f"{path}:{number}: expected '<node id> | <reason>', got {line!r}")
        allowed[prefix.strip()] = reason.strip()
    return allowed


class SkipGuard:
    def __init__(self, path: Path):
        self.path = path
        self.allowed = read_allowed(path)

    def is_allowed(self, nodeid: str) -> bool:
        return any(nodeid.startswith(prefix) for prefix in self.allowed)

    def fail_unless_allowed(self, report) -> None:
        if not report.skipped or hasattr(report, "wasxfail") or self.is_allowed(report.nodeid):
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI but not listed in {self.path.name}: {reason}"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        self.fail_unless_allowed(outcome.get_result())

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        outcome = yield
        self.fail_unless_allowed(outcome.get_result())


def pytest_configure(config) -> None:
    if in_ci():
        path = Path(os.environ.get("AUTOPKGTEST_WEB_ALLOWED_SKIPS") or DEFAULT_LIST)
        config.pluginmanager.register(SkipGuard(path), "autopkgtest-web-ci-skips")
