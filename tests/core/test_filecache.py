# SPDX-License-Identifier: GPL-3.0-or-later
"""webcontrol.filecache: values made from real files, remade when a file changes."""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest

from tests.threads import call_together
from webcontrol import livestate
from webcontrol.atomicfile import write_json_atomic
from webcontrol.filecache import FileCache, stamp


class CountingLoader:
    """A JSON loader that counts its calls (how often the cache went to the file)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, path, *args):
        with self._lock:
            self.calls += 1
        with open(path, encoding="utf-8") as handle:
            return (json.load(handle), args) if args else json.load(handle)


def _shift_mtime(path, seconds: int) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_loads_once_per_version_and_again_after_a_rename(tmp_path):
    path = tmp_path / "queued.json"
    write_json_atomic(path, {"v": 1})
    load = CountingLoader()
    cache = FileCache(load, missing={})
    assert cache.get(path) == {"v": 1}
    assert cache.get(str(path)) == {"v": 1}  # str and Path name the same entry
    assert load.calls == 1
    write_json_atomic(path, {"v": 2, "more": True})
    found_stamp, value = cache.get_with_stamp(path)
    assert value == {"v": 2, "more": True}
    assert found_stamp == (os.stat(path).st_mtime_ns, os.stat(path).st_size) == stamp(path)
    assert load.calls == 2


def test_same_size_rewrite_with_a_new_mtime_is_seen(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('{"joe": "aaaa"}')
    load = CountingLoader()
    cache = FileCache(load, missing={})
    assert cache.get(path) == {"joe": "aaaa"}
    # Renamed over, same size: only the mtime tells the versions apart.
    new = tmp_path / "keys.json.new"
    new.write_text('{"joe": "bbbb"}')
    os.utime(new, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns))
    _shift_mtime(new, 1)
    os.replace(new, path)
    assert cache.get(path) == {"joe": "bbbb"}
    # Rewritten in place, same size, mtime moved.
    path.write_text('{"joe": "cccc"}')
    _shift_mtime(path, 2)
    assert cache.get(path) == {"joe": "cccc"}
    assert load.calls == 3


def test_missing_file_gives_the_missing_value_until_it_appears(tmp_path):
    path = tmp_path / "running.json"
    load = CountingLoader()
    cache = FileCache(load, missing={})
    assert cache.get_with_stamp(path) == (None, {})
    assert cache.get(None) == {} and cache.get("") == {}
    assert load.calls == 0
    write_json_atomic(path, {"hello": {}})
    assert cache.get(path) == {"hello": {}}
    path.unlink()
    assert cache.get(path) == {}  # a removed file is not answered from the old version


def test_without_missing_value_the_loader_reports_the_missing_file(tmp_path):
    path = tmp_path / "public.db"
    load = CountingLoader()
    cache = FileCache(load)
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            cache.get(path)
    assert load.calls == 2  # never remembered


def test_unreadable_path_is_logged_and_gives_the_missing_value(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cache = FileCache(CountingLoader(), missing={})
    with caplog.at_level(logging.ERROR, logger="webcontrol.filecache"):
        assert cache.get(blocker / "revoked-sessions.json") == {}
        assert cache.get(tmp_path / "absent.json") == {}
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot read {blocker / 'revoked-sessions.json'}: [Errno 20] Not a directory: "
        f"'{blocker / 'revoked-sessions.json'}'"
    ]


def test_broken_content(tmp_path):
    path = tmp_path / "queued.json"
    path.write_text('{"ubuntu": ')
    # The live-state loader turns a broken file into an empty one, and that answer is kept for the version.
    assert livestate.queued_cache.get(path) == {}
    write_json_atomic(path, {"ubuntu": {"noble": {"amd64": []}}})
    assert livestate.queued_cache.get(path) == {"ubuntu": {"noble": {"amd64": []}}}
    # A loader that raises keeps nothing: the next call tries the file again.
    path.write_text("[1, ")
    load = CountingLoader()
    cache = FileCache(load, missing={})
    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get(path)
    assert load.calls == 2


def test_one_value_per_argument_set_bounded(tmp_path):
    path = tmp_path / "public.db"
    write_json_atomic(path, [1])
    load = CountingLoader()
    cache = FileCache(load, max_entries=2)
    assert cache.get(path, "noble", 10) == ([1], ("noble", 10))
    assert cache.get(path, "jammy", 10) == ([1], ("jammy", 10))
    assert cache.get(path, "noble", 10) == ([1], ("noble", 10))
    assert load.calls == 2
    cache.get(path, "focal", 10)  # pushes out the least recently used: jammy
    cache.get(path, "noble", 10)
    assert load.calls == 3
    cache.get(path, "jammy", 10)
    assert load.calls == 4


def test_concurrent_readers_see_whole_versions_and_settle_on_the_last(tmp_path):
    path = tmp_path / "running.json"
    write_json_atomic(path, {"version": 0, "pad": "x" * 1000})
    load = CountingLoader()
    cache = FileCache(load, missing={})
    versions = 30
    start = threading.Barrier(9)
    seen: list[int] = []
    problems: list[BaseException] = []

    def reader() -> None:
        start.wait()
        try:
            for _ in range(300):
                value = cache.get(path)
                assert value["pad"] == "x" * 1000
                seen.append(value["version"])
        except BaseException as err:  # handed to the main thread, which fails the test
            problems.append(err)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    start.wait()
    for version in range(1, versions + 1):
        write_json_atomic(path, {"version": version, "pad": "x" * 1000})
        _shift_mtime(path, version)
    for thread in threads:
        thread.join()
    assert problems == []
    assert set(seen) <= set(range(versions + 1)) and len(seen) == 8 * 300
    assert cache.get(path)["version"] == versions
    calls = load.calls
    assert [cache.get(path)["version"] for _ in range(100)] == [versions] * 100
    assert load.calls == calls


def test_concurrent_first_readers_load_a_version_once(tmp_path):
    """Threads asking for a version being loaded wait for it: one parse, one value, for all of them."""
    path = tmp_path / "queued.json"
    write_json_atomic(path, {"queues": {"n": list(range(1000))}})
    started = threading.Event()
    release = threading.Event()
    loader = CountingLoader()

    def slow_load(path, *args):
        started.set()
        release.wait(10)
        return loader(path, *args)

    cache = FileCache(slow_load, missing={})
    got = call_together(lambda: cache.get(path), started, release)
    assert loader.calls == 1
    assert len(got) == 8 and all(value is got[0] for value in got)
