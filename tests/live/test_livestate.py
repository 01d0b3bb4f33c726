# SPDX-License-Identifier: GPL-3.0-or-later
"""The live-state reader: recorded files, odd files, and the duplicate checks (docs/formats.rst, Duplicates)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from webcontrol import livestate, results
from webcontrol.atomicfile import write_json_atomic

DATA = Path(__file__).resolve().parents[1] / "data" / "client-data"
RUN_2022 = DATA / "ppa-dev-tools" / "running-20220822.json"
RUN_2024 = DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.RUN_DATA.json"


@pytest.mark.parametrize("path", [RUN_2022, RUN_2024], ids=["2022", "2024"])
def test_recorded_run_keys_recompute(path):
    raw = livestate.load_running(path)
    jobs = livestate.running_jobs(raw)
    assert jobs
    for job in jobs:
        assert results.run_key(job.params) == job.run_key
        assert isinstance(job.duration, int)
        assert not job.private


def test_running_jobs_fields_and_count():
    raw = livestate.load_running(RUN_2022)
    jobs = livestate.running_jobs(raw)
    # Leaves, not run keys: two systemd-upstream keys hold several arches each.
    assert len(jobs) == 13
    assert livestate.running_count(raw) == 13
    dovecot = [j for j in jobs if j.package == "dovecot" and j.arch == "armhf"][0]
    assert dovecot.release == "kinetic"
    assert dovecot.duration == 80
    assert dovecot.params["requester"] == "bryce"
    assert dovecot.uuid is None


def test_private_and_uuid():
    raw = {
        "private-test": {"abc": {"noble": {"amd64": [{}, 5, "Running private test"]}}},
        "hello": {"k": {"noble": {"arm64": [{"uuid": "u-1", "triggers": ["a/1"]}, "7", "tail"]}}},
    }
    jobs = {j.package: j for j in livestate.running_jobs(raw)}
    assert jobs["private-test"].private
    assert jobs["hello"].uuid == "u-1" and jobs["hello"].duration == 7 and not jobs["hello"].private


@pytest.mark.parametrize("content", [None, b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_missing_or_broken_files_are_empty(tmp_path, content):
    path = tmp_path / "f.json"
    if content is not None:
        path.write_bytes(content)
    assert livestate.load_running(path) == {}
    assert livestate.load_queued(path) == {}
    assert livestate.running_jobs(livestate.load_running(path)) == []
    assert list(livestate.queued_requests(livestate.load_queued(path))) == []
    assert livestate.queues_json({}) == {} and livestate.queue_sizes({}) == {}


def test_odd_shapes_do_not_raise():
    raw = {"p": {"k": {"r": {"a": "nope", "b": [1]}, "s": 3}}, "q": []}
    assert livestate.running_jobs(raw) == []
    queued = {"queues": {"ubuntu": {"noble": {"amd64": {"size": "x", "requests": [5, "hello"]}, "i386": 3}}}}
    items = list(livestate.queued_requests(queued))
    assert [(i.text, i.malformed, i.package) for i in items] == [
        ("malformed request", True, ""),
        ("hello", False, "hello"),
    ]
    assert livestate.queue_sizes(queued) == {"ubuntu": {"noble": {"amd64": 2}}}


def _queued(requests_by_queue):
    queues = {}
    for (ctx, rel, arch), items in requests_by_queue.items():
        queues.setdefault(ctx, {}).setdefault(rel, {})[arch] = {"size": len(items), "requests": items}
    return {"releases": ["noble"], "arches": ["amd64"], "queues": queues, "generated": "2026-11-29T09:00:00Z"}


def test_queued_requests_views():
    hello = 'hello\n{"requester": "joe", "triggers": ["hello/1"]}'
    raw = _queued(
        {
            ("ubuntu", "noble", "amd64"): [hello, "private job", "bare", "malformed request"],
            ("huge", "noble", "amd64"): ['x {"triggers": ["a/1"], "readable-by": "joe"}'],
        }
    )
    items = list(livestate.queued_requests(raw))
    assert [(i.context, i.position, i.package, i.private, i.malformed) for i in items] == [
        ("ubuntu", 1, "hello", False, False),
        ("ubuntu", 2, "", True, False),
        ("ubuntu", 3, "bare", False, False),
        ("ubuntu", 4, "", False, True),
        ("huge", 1, "x", True, False),
    ]
    assert items[0].params == {"requester": "joe", "triggers": ["hello/1"]}
    assert items[4].params == {}
    assert livestate.queues_json(raw)["ubuntu"]["noble"]["amd64"][0] == hello
    assert livestate.queue_sizes(raw) == {"ubuntu": {"noble": {"amd64": 4}}, "huge": {"noble": {"amd64": 1}}}
    assert livestate.queued_count(raw) == 5


def test_file_age(tmp_path):
    path = tmp_path / "running.json"
    assert livestate.file_age(path) is None
    write_json_atomic(path, {"a": {}})
    os.utime(path, (os.stat(path).st_atime, os.stat(path).st_mtime - 100))
    assert 99 <= livestate.file_age(path) < 110


# Duplicate detection (docs/formats.rst, Duplicates) ----------------------------------

BASE = {"triggers": ["b/2", "a/1"], "ppas": ["joe/ppa"], "all-proposed": "1", "requester": "joe"}


def _running(params, package="hello", release="noble", arch="amd64"):
    return {package: {results.run_key(params): {release: {arch: [params, 10, "tail"]}}}}


def test_is_running_matches_same_fields_in_any_order():
    raw = _running(dict(BASE, **{"submit-time": "2024-01-01 00:00:00"}))
    same = {"triggers": ["a/1", "b/2"], "ppas": ["joe/ppa"], "all-proposed": "1", "requester": "someone else"}
    assert livestate.is_running(raw, "hello", "noble", "amd64", same)


@pytest.mark.parametrize(
    "change",
    [
        {"triggers": ["a/1"]},
        {"all-proposed": None},
        {"ppas": []},
        {"ppas": ["joe/other"]},
        {"build-git": "https://x/y.git"},
        {"env": ["A=1"]},
        {"testname": "smoke"},
    ],
)
def test_is_running_differs_on_each_field(change):
    raw = _running(BASE)
    params = {k: v for k, v in dict(BASE, **change).items() if v is not None}
    assert not livestate.is_running(raw, "hello", "noble", "amd64", params)


def test_is_running_other_place_and_private():
    raw = _running(BASE)
    assert not livestate.is_running(raw, "hello", "noble", "arm64", BASE)
    assert not livestate.is_running(raw, "hello", "jammy", "amd64", BASE)
    assert not livestate.is_running(raw, "other", "noble", "amd64", BASE)
    private = {"private-test": {"": {"noble": {"amd64": [{}, 1, "Running private test"]}}}}
    assert not livestate.is_running(private, "private-test", "noble", "amd64", {})
    hidden = _running(dict(BASE, **{"readable-by": "joe"}))
    assert not livestate.is_running(hidden, "hello", "noble", "amd64", dict(BASE, **{"readable-by": "joe"}))


def test_is_running_github_env_set():
    params = {"build-git": "https://g/x.git#main", "env": ["A=1", "B=2"], "ppas": ["u/p"], "testname": "t"}
    raw = _running(params)
    reordered = dict(params, env=["B=2", "A=1"])
    assert livestate.is_running(raw, "hello", "noble", "amd64", reordered)
    assert not livestate.is_running(raw, "hello", "noble", "amd64", dict(params, env=["A=1"]))


def _item(package, params):
    return package + "\n" + json.dumps(params, sort_keys=True)


def test_is_queued_matches_and_ignores_huge():
    wanted = {"triggers": ["a/1", "b/2"], "ppas": ["joe/ppa"], "all-proposed": "1"}
    for ctx in ("ubuntu", "ppa", "upstream"):
        raw = _queued({(ctx, "noble", "amd64"): ["other\n{}", _item("hello", dict(BASE, requester="x"))]})
        assert livestate.is_queued(raw, "hello", "noble", "amd64", wanted), ctx
    huge = _queued({("huge", "noble", "amd64"): [_item("hello", BASE)]})
    assert not livestate.is_queued(huge, "hello", "noble", "amd64", wanted)


@pytest.mark.parametrize("change", [{"triggers": ["a/1"]}, {"all-proposed": None}, {"ppas": []}])
def test_is_queued_differs_on_each_field(change):
    raw = _queued({("ubuntu", "noble", "amd64"): [_item("hello", BASE)]})
    params = {k: v for k, v in dict(BASE, **change).items() if v is not None}
    assert not livestate.is_queued(raw, "hello", "noble", "amd64", params)
    # and the reverse: a queued request without the field vs a request with it
    raw2 = _queued({("ubuntu", "noble", "amd64"): [_item("hello", params)]})
    assert not livestate.is_queued(raw2, "hello", "noble", "amd64", BASE)


def test_is_queued_space_separator_prefix_names_and_private():
    raw = _queued(
        {
            ("ppa", "noble", "amd64"): [
                "hello-extra " + json.dumps(BASE),
                "private job",
                "hello " + json.dumps(dict(BASE, swiftuser="s")),
            ]
        }
    )
    assert not livestate.is_queued(raw, "hello", "noble", "amd64", BASE)
    raw = _queued({("ppa", "noble", "amd64"): ["hello " + json.dumps(BASE)]})
    assert livestate.is_queued(raw, "hello", "noble", "amd64", BASE)
    assert not livestate.is_queued(raw, "hello", "noble", "arm64", BASE)
    bare = _queued({("ubuntu", "noble", "amd64"): ["hello"]})
    assert livestate.is_queued(bare, "hello", "noble", "amd64", {})
    assert not livestate.is_queued(bare, "hello", "noble", "amd64", {"triggers": ["a/1"]})


def test_json_the_fast_parser_refuses_still_loads(tmp_path):
    # NaN and integers beyond 64 bits are valid for Python's json but not for orjson.
    path = tmp_path / "running.json"
    path.write_text('{"p": {"k": {"r": {"a": [{}, 123456789012345678901234567890, "t"]}}}, "n": NaN}')
    raw = livestate.load_running(path)
    assert raw["p"]["k"]["r"]["a"][1] == 123456789012345678901234567890


def test_credentials_in_a_string_ppas_are_hidden_too():
    assert livestate.is_hidden({"ppas": "joe:t0ken@joe/private"})
    assert livestate.is_hidden({"ppas": ["joe:t0ken@joe/private"]})
    assert livestate.is_hidden({"readable-by": "joe"}) and livestate.is_hidden({"swiftuser": "x"})
    assert not livestate.is_hidden({"ppas": ["joe/ppa"], "readable-by": "", "swiftuser": None})
    raw = {"queues": {"ppa": {"noble": {"amd64": {"size": 1, "requests": ['x {"ppas": "a:t@b/c"}']}}}}}
    (item,) = livestate.queued_requests(raw)
    assert item.private and item.params == {}
