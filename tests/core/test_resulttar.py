# SPDX-License-Identifier: GPL-3.0-or-later
import pytest

from webcontrol import ingest, resulttar


def test_parse_full_tar():
    tar = resulttar.build(
        4,
        "hello",
        "2.10-3",
        42,
        {
            "custom_environment": ["ADT_TEST_TRIGGERS=hello/2.10-3  glib2.0/2.80"],
            "uuid": "u-1",
            "all-proposed": "1",
            "testname": "smoke",
        },
        "joe",
        "libc6\t2.39\n",
        "smoke FAIL\n",
    )
    parsed = resulttar.parse(tar)
    assert (parsed.exitcode, parsed.package, parsed.version, parsed.duration, parsed.requester) == (
        4,
        "hello",
        "2.10-3",
        42,
        "joe",
    )
    assert parsed.triggers == "hello/2.10-3 glib2.0/2.80"
    record = ingest.record_from_tar("autopkgtest-noble", "noble", "amd64", "hello", "20240101_000000_aaaaa@", parsed)
    assert (record.env, record.uuid) == ("all-proposed=1,testname=smoke", "u-1")


def test_tolerates_missing_optional_members_and_bad_testinfo():
    minimal = resulttar.build(20, "hello", None, None, None)
    parsed = resulttar.parse(minimal)
    assert parsed.version == "unknown" and parsed.duration is None and parsed.testinfo == {}
    with pytest.raises(ingest.NotIngested, match="no triggers"):
        ingest.record_from_tar("autopkgtest-noble", "noble", "amd64", "hello", "20240101_000000_aaaaa@", parsed)
    repaired = resulttar.build(0, "hello", "1", 1, {"message": "This file has been added manually"})
    assert resulttar.parse(repaired).triggers == ""


@pytest.mark.parametrize("data", [b"", b"garbage" * 100, resulttar.build(0, "h", "1", 1, {})[:700]])
def test_damaged_tars_raise(data):
    with pytest.raises(resulttar.DamagedResult):
        resulttar.parse(data)


def test_ppa_results_are_not_ingested():
    tar = resulttar.parse(resulttar.build(0, "hello", "1", 1, {"custom_environment": ["ADT_TEST_TRIGGERS=hello/1"]}))
    with pytest.raises(ingest.NotIngested, match="not a distro container"):
        ingest.record_from_tar("autopkgtest-noble-joe-ppa", "noble", "amd64", "hello", "20240101_000000_aaaaa@", tar)
