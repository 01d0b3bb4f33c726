# SPDX-License-Identifier: GPL-3.0-or-later
"""The log viewer on the three recorded real logs (docs/formats.rst, Logs)."""

from __future__ import annotations

from tests.browse import site as sitemod
from webcontrol import logviewer


def parse(name: str) -> logviewer.ParsedLog:
    return logviewer.parse_gzip((sitemod.DATA / "ppa-dev-tools" / name).read_bytes())


def test_prefixed_format_triggers_and_summary():
    log = parse("results-chrony-armhf.log.gz")
    assert log.triggers == ["dpkg/1.22.6ubuntu5"]
    summary = {test: result for test, result, _ in log.summary}
    assert summary["upstream-simulation-test-suite"] == "FAIL"
    assert summary["run_system_tests"] == "PASS" and summary["time-sources-from-dhcp-servers"] == "SKIP"
    titles = [s.title for s in log.sections]
    assert titles[0] == "Preparation" and titles[-1] == "Summary"
    assert "test upstream-simulation-test-suite" in titles
    marks = {s.title: s.result for s in log.sections}
    assert marks["test upstream-simulation-test-suite"] == "FAIL" and marks["test run_system_tests"] == "PASS"


def test_old_format_two_triggers_two_failures():
    log = parse("results-six-s390x.log.gz")
    assert log.triggers == ["pygobject/3.42.2-2", "six/1.16.0-4"]
    assert [(t, r) for t, r, _ in log.summary] == [("ramdiskluns.sh", "FAIL"), ("saveconfig.sh", "FAIL")]
    assert log.summary[0][2] == "non-zero exit status 1"


def test_testbed_failure_has_no_summary_but_keeps_text():
    log = parse("results-rabbitmq-server-armhf.log.gz")
    assert log.triggers == ["rabbitmq-server/3.9.27-0ubuntu0.1~jammy8"]
    assert not log.has_summary and log.summary == []
    text = "\n".join(line for s in log.sections for line in s.lines)
    assert "testbed failure" in text


def test_unstructured_and_broken_input_falls_back_to_raw():
    log = logviewer.parse("just some text\nno markers here")
    assert not log.structured and log.sections[0].kind == "raw"
    assert log.sections[0].lines == ["just some text", "no markers here"]
    try:
        logviewer.parse_gzip(b"not gzip")
    except logviewer.LogError:
        pass
    else:
        raise AssertionError("LogError expected")


def test_log_page_renders_sections(client):
    page = client.get("/packages/c/chrony/noble/armhf/20240326_184806_3f2a1@/log").get_data(as_text=True)
    assert "dpkg/1.22.6ubuntu5" in page and "test upstream-simulation-test-suite" in page
    assert 'class="mark fail">FAIL' in page and "<h2>Summary</h2>" in page
    data = client.get("/api/v1/packages/chrony/noble/armhf/20240326_184806_3f2a1@/log").get_json()
    assert data["log"]["has_summary"] and data["run"]["result"] == "fail"
    missing = client.get("/packages/hello/noble/amd64/20240213_103000_a00f9@/log")
    assert missing.status_code == 404 and "Traceback" not in missing.get_data(as_text=True)
