# SPDX-License-Identifier: GPL-3.0-or-later
"""In CI a skip fails the run unless tests/allowed-skips.txt lists it with a reason."""

from __future__ import annotations

import pytest

from tests import ci_skips

SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("tool is not installed")

@pytest.mark.skipif(True, reason="chromium is not installed")
def test_marked():
    pass

def test_listed():
    pytest.skip("allowed here")

@pytest.fixture
def service():
    pytest.skip("service is not running")

def test_fixture_skips(service):
    pass

@pytest.mark.xfail(reason="a known bug, not a skip")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makepyfile(test_tools=SKIPPING)
    allowed = pytester.path / "allowed.txt"
    allowed.write_text("# comment\n\ntest_tools.py::test_listed | the reason it may skip\n")
    monkeypatch.setenv("AUTOPKGTEST_WEB_ALLOWED_SKIPS", str(allowed))
    return pytester


def test_in_ci_unlisted_skips_fail(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = project.runpytest("-p", "tests.ci_skips")
    # A skip at setup (a skipif mark, a fixture) becomes an error, one in the test body a failure.
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*skipped in CI but not listed in allowed.txt: Skipped: tool is not installed*",
            "*skipped in CI but not listed in allowed.txt: *chromium is not installed*",
            "*skipped in CI but not listed in allowed.txt: Skipped: service is not running*",
        ]
    )


def test_outside_ci_skips_stay_skips(project, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    project.runpytest("-p", "tests.ci_skips").assert_outcomes(passed=1, skipped=4, xfailed=1)


def test_a_listed_skip_needs_a_reason(tmp_path):
    path = tmp_path / "allowed.txt"
    path.write_text("tests/deploy/test_apache.py\n")
    with pytest.raises(pytest.UsageError, match="expected '<node id> | <reason>'"):
        ci_skips.read_allowed(path)


def test_the_shipped_list_is_well_formed():
    for prefix, reason in ci_skips.read_allowed(ci_skips.DEFAULT_LIST).items():
        assert prefix.startswith("tests/") and reason
