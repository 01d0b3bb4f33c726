# SPDX-License-Identifier: GPL-3.0-or-later
import json
from pathlib import Path

import pytest

from webcontrol import results

DATA = Path(__file__).parents[1] / "data" / "client-data"


@pytest.mark.parametrize(
    "code,name",
    [
        (0, "pass"),
        (2, "pass"),
        (4, "fail"),
        (6, "fail"),
        (8, "neutral"),
        (12, "fail"),
        (14, "fail"),
        (16, "tmpfail"),
        (20, "error"),
        (99, "denylisted"),
        (1, "otherfail"),
        (None, "otherfail"),
    ],
)
def test_result_names(code, name):
    assert results.result_name(code) == name


@pytest.mark.parametrize(
    "code,verdict,github",
    [
        (0, "pass", "success"),
        (2, "pass", "success"),
        (4, "fail", "failure"),
        (6, "fail", "failure"),
        (8, "neutral", "error"),
        (12, "fail", "failure"),
        (14, "fail", "failure"),
        (16, "tmpfail", "error"),
        (20, "fail", "error"),
        (99, "denylisted", "error"),
        (1, "fail", "error"),
        (None, "fail", "error"),
    ],
)
def test_verdicts_and_github_states(code, verdict, github):
    """Exit 20 reads ``error`` on pages and GitHub, but insight and britney count it as a failure."""
    assert results.verdict(code) == verdict
    assert results.is_decisive(code) == (verdict in ("pass", "fail"))
    assert results.github_state(code) == github


def test_names_and_containers():
    assert results.is_launchpad_name("j") and results.is_launchpad_name("ubuntu-archive-bot")
    assert not results.is_launchpad_name("Joe") and not results.is_launchpad_name("joe\n")
    assert results.is_ppa_name("dovecot-merge-v1e2.3.19.1adfsg1-2")
    assert not results.is_ppa_name("x") and not results.is_ppa_name("My_PPA")
    assert results.ppa_of_container("autopkgtest-noble-bryce-chrony-merge", "noble", "bryce") == "chrony-merge"
    assert results.ppa_of_container("autopkgtest-noble-bryce-chrony-merge", "noble", "bry") is None
    assert results.ppa_of_container("autopkgtest-noble-bryce-", "noble", "bryce") is None
    assert results.may_be_ppa_container("autopkgtest-noble-joe-ppa") and not results.may_be_ppa_container(
        "autopkgtest-noble"
    )
    assert results.release_of_container("autopkgtest-noble") == "noble"
    assert results.release_of_container("autopkgtest-noble-joe-ppa") is None
    assert results.release_of_container("autopkgtest-") is None
    assert results.is_private_container("private-autopkgtest-noble")
    assert not results.is_private_container("autopkgtest-noble-private-ppa")


def test_layout():
    assert results.srchash("hello") == "h" and results.srchash("libpng1.6") == "libp"
    assert (
        results.run_dir("noble", "amd64", "libpng1.6", "20240221_110051_a1b2c@")
        == "noble/amd64/libp/libpng1.6/20240221_110051_a1b2c@"
    )
    assert results.parse_run_dir("noble/amd64/h/hello/20240221_110051_a1b2c@/result.tar") == (
        "noble",
        "amd64",
        "hello",
        "20240221_110051_a1b2c@",
    )
    assert results.parse_run_dir("noble/amd64/x/hello/20240221_110051_a1b2c@/result.tar") is None
    assert results.ppa_container("noble", "user:tok@joe/ppa:ABCDEF") == "autopkgtest-noble-joe-ppa"
    assert results.queue_name("ubuntu", "noble", "amd64") == "debci-noble-amd64"
    assert results.queue_name("ppa", "noble", "amd64") == "debci-ppa-noble-amd64"


def test_run_ids_and_human_formats():
    assert results.is_run_id("20240221_110051_a1b2c@") and results.is_run_id("20140101_000000@")
    assert not results.is_run_id("20240221_110051_a1b2c")
    assert results.human_date("20240221_110051_a1b2c@") == "2024-02-21 11:00:51 UTC"
    assert results.human_duration(303) == "0h 05m 03s"
    assert results.human_duration(5255) == "1h 27m 35s"


def run_samples():
    for name in ("ppa-dev-tools/running-20220822.json", "ubuntu-dev-tools/test_running_autopkgtests.RUN_DATA.json"):
        data = json.loads((DATA / name).read_text())
        for package, keys in data.items():
            for key, releases in keys.items():
                for _release, arches in releases.items():
                    for _arch, (params, _seconds, _tail) in arches.items():
                        yield package, key, params


def test_run_key_reproduces_every_recorded_key():
    samples = list(run_samples())
    assert len(samples) > 5
    for package, key, params in samples:
        if package == "private-test":
            continue
        assert results.run_key(params) == key


def test_private_requests():
    assert results.is_private_request({"readable-by": ["joe"]})
    assert results.is_private_request({"swiftuser": "britney"})
    assert results.is_private_request({"ppas": ["u:tok@joe/ppa"]})
    assert not results.is_private_request({"ppas": ["joe/ppa"], "readable-by": []})


def test_credentials_in_a_bare_ppas_string_are_private_too():
    assert results.is_private_request({"ppas": "user:token@joe/ppa"})
    assert not results.is_private_request({"ppas": "joe/ppa"})
