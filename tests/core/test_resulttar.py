# SPDX-License-Identifier: GPL-3.0-or-later
import io
import tarfile

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


def _tar(members, fmt, extra=()):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info in extra:
            tar.addfile(info)
        for name, text in members.items():
            payload = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


LONG = "x" * 150  # longer than a plain header's name field: a GNU or pax extension header


FLAVOURS = [
    (fmt, extra)
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)
    for extra in ("plain", "directory", "long name")
    if (fmt, extra) != (tarfile.USTAR_FORMAT, "long name")  # ustar cannot store a 150-character name
]


@pytest.mark.parametrize(("fmt", "extra"), FLAVOURS)
def test_every_tar_flavour_reads_the_same(fmt, extra):
    """Plain tars take the quick walk, the others tarfile: a reader sees the same result either way."""
    members = {LONG: "ignored"} if extra == "long name" else {}
    members["exitcode"] = "4\n"
    directories = [tarfile.TarInfo("somedir")] if extra == "directory" else []
    for info in directories:
        info.type = tarfile.DIRTYPE
    members.update({"testpkg-version": "hello 2.10-3\n", "requester": "zoë\n", "testinfo.json": '{"uuid": "u-1"}'})
    parsed = resulttar.parse(_tar(members, fmt, directories))
    assert (parsed.exitcode, parsed.package, parsed.version, parsed.requester, parsed.uuid) == (
        4,
        "hello",
        "2.10-3",
        "zoë",
        "u-1",
    )


def test_truncated_or_corrupt_tars_are_damaged_whichever_reader_sees_them():
    whole = resulttar.build(0, "hello", "1", 1, {"uuid": "u"})
    for data in (whole[:700], b"\0" * 100, b"", whole[:148] + b"0000000\0" + whole[156:]):
        with pytest.raises(resulttar.DamagedResult):
            resulttar.parse(data)
