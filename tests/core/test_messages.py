# SPDX-License-Identifier: GPL-3.0-or-later
import json

import pytest

from webcontrol.messages import CompletionMessage, MalformedMessage, StatusMessage, TestRequest, submit_time


def test_request_round_trip_and_wire_format():
    request = TestRequest("hello", {"triggers": ["hello/1"], "requester": "joe", "uuid": "u"})
    body = request.serialise()
    assert body == b'hello\n{"requester": "joe", "triggers": ["hello/1"], "uuid": "u"}'
    assert TestRequest.parse(body) == request
    assert TestRequest.parse(b'dovecot {"ppas": ["a/b"]}').params == {"ppas": ["a/b"]}
    assert TestRequest.parse(b"hello") == TestRequest("hello", {}, bare=True)
    for bad in (b"", b"hello [1]", b"hello {", b"\xff"):
        with pytest.raises(MalformedMessage):
            TestRequest.parse(bad)


def test_submit_time_form():
    import datetime

    stamp = submit_time(datetime.datetime(2024, 2, 22, 1, 56, 14, 123456, tzinfo=datetime.timezone.utc))
    assert stamp == "2024-02-22 01:56:14+0000"


def test_status_round_trip_and_rejects():
    status = StatusMessage("noble", "amd64", "hello", True, {"triggers": ["hello/1"]}, 30, "tail", "u")
    assert StatusMessage.parse(status.serialise()) == status
    with pytest.raises(MalformedMessage, match="running"):
        StatusMessage.parse(
            json.dumps({"release": "n", "architecture": "a", "package": "p", "running": "yes"}).encode()
        )


def test_completion_contract_example():
    body = json.dumps(
        {
            "architecture": "amd64",
            "container": "autopkgtest-noble",
            "duration": "342\n",
            "exitcode": 0,
            "package": "hello",
            "testpkg_version": "hello 2.10-3ubuntu1",
            "release": "noble",
            "requester": "joe\n",
            "swift_dir": "noble/amd64/h/hello/20240221_110051_a1b2c@",
            "triggers": "hello/2.10-3ubuntu1",
            "env": "all-proposed=1",
            "uuid": "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
        }
    ).encode()
    message = CompletionMessage.parse(body)
    assert (message.run_id, message.duration, message.requester, message.testpkg_version) == (
        "20240221_110051_a1b2c@",
        342,
        "joe",
        "2.10-3ubuntu1",
    )
    with pytest.raises(MalformedMessage, match="run id"):
        CompletionMessage.parse(body.replace(b"a1b2c@", b"a1b2c"))
    with pytest.raises(MalformedMessage, match="exceeds"):
        CompletionMessage.parse(b" " * (2 * 1024 * 1024))


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E+999", "9" * 400 + ".0"])
def test_overflowing_numbers_are_malformed(number):
    status = json.dumps(
        {
            "release": "noble",
            "architecture": "amd64",
            "package": "hello",
            "running": True,
            "duration": 0,
            "logtail": "x",
        }
    ).replace('"duration": 0', f'"duration": {number}')
    with pytest.raises(MalformedMessage, match="out of range"):
        StatusMessage.parse(status.encode())
    completion = json.dumps(
        {
            "architecture": "amd64",
            "container": "autopkgtest-noble",
            "exitcode": 0,
            "package": "hello",
            "release": "noble",
            "swift_dir": "noble/amd64/h/hello/20240221_110051_a1b2c@",
            "duration": 0,
        }
    ).replace('"duration": 0', f'"duration": {number}')
    with pytest.raises(MalformedMessage, match="out of range"):
        CompletionMessage.parse(completion.encode())
