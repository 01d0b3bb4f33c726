# SPDX-License-Identifier: GPL-3.0-or-later
"""Every pattern in the package matches a whole value: a trailing newline never slips through ``$``."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import webcontrol
from webcontrol import results


def _patterns():
    for info in pkgutil.walk_packages(webcontrol.__path__, "webcontrol."):
        if info.name.endswith(("request.cgi", "browse.cgi", "private-results.cgi")):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{info.name}.{name}", value


def test_no_pattern_ends_in_a_dollar():
    loose = [
        name
        for name, pattern in _patterns()
        if pattern.pattern.endswith("$") and not pattern.pattern.endswith("\\$") and not pattern.flags & re.MULTILINE
    ]
    assert loose == []


@pytest.mark.parametrize(
    "pattern,value",
    [
        (results.PACKAGE_RE, "hello"),
        (results.VERSION_RE, "1.0-1"),
        (results.SOURCE_VERSION_RE, "hello/1.0-1"),
        (results.SERIES_RE, "noble"),
        (results.ARCH_RE, "amd64"),
        (results.RUN_ID_RE, "20240101_000000_abcde@"),
        (results.UUID_RE, "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10"),
    ],
)
def test_names_with_a_trailing_newline_are_refused(pattern, value):
    assert pattern.match(value)
    assert not pattern.match(value + "\n")


@pytest.mark.parametrize(
    "trigger",
    ["hello/1.0-1", "glib2.0/2.80-1", "a.b+c/1:2~3-4", "migration-reference/0", "hello/", "/1.0", "Hello/1.0"]
    + ["hello/1.0/x", "hello//1.0", "hello/1 0", "hello\n/1.0", "h/1.0", "ppa:user/ppa", "hello", ""],
)
def test_a_source_version_trigger_is_a_package_a_slash_and_a_version(trigger):
    source, _, version = trigger.partition("/")
    expected = bool(results.PACKAGE_RE.match(source) and results.VERSION_RE.match(version))
    assert bool(results.SOURCE_VERSION_RE.match(trigger)) is expected
