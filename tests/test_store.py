# SPDX-License-Identifier: GPL-3.0-or-later
"""One behaviour suite for both result stores: a local directory and a real Swift.

Every listing assertion runs against both, so callers can rely on the local
store behaving exactly like Swift.
"""

from __future__ import annotations

import gzip
import os
import threading
import uuid

import pytest

from webcontrol.config import ConfigError, from_dict
from webcontrol.store import (
    ContainerNotFound,
    InvalidName,
    InvalidRequest,
    ObjectNotFound,
    StoreError,
    open_store,
)
from webcontrol.store.local import LocalStore
from webcontrol.store.swift import SwiftStore

RUNS = [
    "20240101_000000_aaaaa@",
    "20240221_110051_a1b2c@",
    "20240301_090000_00000@",
]
FILES = ["artifacts.tar.gz", "log.gz", "result.tar"]


@pytest.fixture(params=["local", "swift"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalStore(tmp_path / "results")
    else:
        yield request.getfixturevalue("swift_store")


@pytest.fixture
def container():
    return f"autopkgtest-t{uuid.uuid4().hex[:10]}"


def names(rows):
    return [row.name for row in rows]


def fill(store, container, objects):
    for name in objects:
        store.put_object(container, name, name.encode())


def hello_layout():
    objects = []
    for src, prefix in (("hello", "h"), ("hello-dbgsym", "h"), ("libpng", "libp")):
        for run in RUNS:
            for file in FILES:
                objects.append(f"noble/amd64/{prefix}/{src}/{run}/{file}")
    objects.append("noble/amd64/h/hello-extra")  # a plain object next to the folders
    return objects


def test_full_listing_is_in_byte_order(store, container):
    objects = hello_layout() + ["noble/amd64/h/hello.x", "noble/amd64/h/hello/Z", "noble/amd64/h/héllo/x"]
    fill(store, container, reversed(objects))
    listed = names(store.list_objects(container, limit=10000))
    # Byte order: "-" (0x2d) and "." (0x2e) sort before "/" (0x2f), "é" after ASCII.
    assert listed == sorted(objects, key=lambda n: n.encode())
    assert listed.index("noble/amd64/h/hello-dbgsym/20240101_000000_aaaaa@/artifacts.tar.gz") < listed.index(
        "noble/amd64/h/hello/20240101_000000_aaaaa@/artifacts.tar.gz"
    )


def test_prefix_and_delimiter_at(store, container):
    fill(store, container, hello_layout())
    rows = store.list_objects(container, prefix="noble/amd64/h/hello/", delimiter="@")
    assert names(rows) == [f"noble/amd64/h/hello/{run}" for run in RUNS]
    assert all(row.subdir == row.name for row in rows)
    # britney's form: marker = prefix + last run id it knows.
    rows = store.list_objects(
        container, prefix="noble/amd64/h/hello/", delimiter="@", marker="noble/amd64/h/hello/" + RUNS[0]
    )
    assert names(rows) == [f"noble/amd64/h/hello/{run}" for run in RUNS[1:]]


def test_delimiter_slash_mixes_objects_and_subdirs(store, container):
    fill(store, container, hello_layout())
    rows = store.list_objects(container, prefix="noble/amd64/h/", delimiter="/")
    assert [(row.name, row.subdir) for row in rows] == [
        ("noble/amd64/h/hello-dbgsym/", "noble/amd64/h/hello-dbgsym/"),
        ("noble/amd64/h/hello-extra", None),
        ("noble/amd64/h/hello/", "noble/amd64/h/hello/"),
    ]
    assert rows[1].bytes == len(b"noble/amd64/h/hello-extra")
    top = store.list_objects(container, delimiter="/")
    assert names(top) == ["noble/"]


def test_partial_prefix_within_a_folder(store, container):
    fill(store, container, hello_layout())
    assert names(store.list_objects(container, prefix="noble/amd64/h/hello-", delimiter="/")) == [
        "noble/amd64/h/hello-dbgsym/",
        "noble/amd64/h/hello-extra",
    ]
    rows = store.list_objects(container, prefix="noble/amd64/libp/libpng/20240221")
    assert names(rows) == [f"noble/amd64/libp/libpng/20240221_110051_a1b2c@/{f}" for f in FILES]
    assert store.list_objects(container, prefix="noble/amd64/x/") == []
    assert store.list_objects(container, prefix="noble/amd64/h/hello-extra/") == []


def test_marker_is_strictly_after_and_paging_by_last_name(store, container):
    objects = hello_layout()
    fill(store, container, objects)
    expected = sorted(objects)
    pages, marker = [], None
    while True:
        page = store.list_objects(container, marker=marker, limit=4)
        if not page:
            break
        assert len(page) <= 4
        pages.append(names(page))
        marker = page[-1].name
    assert [n for page in pages for n in page] == expected
    assert len(pages) == -(-len(expected) // 4)
    # A marker that is not an object name is still a lower bound.
    assert names(store.list_objects(container, marker="noble/amd64/h/hello/2024", limit=1)) == [
        f"noble/amd64/h/hello/{RUNS[0]}/artifacts.tar.gz"
    ]
    assert store.list_objects(container, marker=expected[-1]) == []


def test_delimiter_paging_does_not_repeat_subdirs(store, container):
    fill(store, container, hello_layout())
    prefix = "noble/amd64/h/hello/"
    got = list(store.iter_objects(container, prefix=prefix, delimiter="@", page_size=1))
    assert names(got) == [prefix + run for run in RUNS]
    # A marker inside a roll-up re-emits that roll-up, as Swift does.
    rows = store.list_objects(container, prefix=prefix, delimiter="@", marker=f"{prefix}{RUNS[1]}/log.gz")
    assert names(rows) == [prefix + RUNS[1], prefix + RUNS[2]]


def test_end_marker_and_limit(store, container):
    objects = hello_layout()
    fill(store, container, objects)
    rows = store.list_objects(container, prefix="noble/amd64/h/hello/", end_marker=f"noble/amd64/h/hello/{RUNS[1]}")
    assert names(rows) == [f"noble/amd64/h/hello/{RUNS[0]}/{f}" for f in FILES]
    assert len(store.list_objects(container, limit=1)) == 1
    with pytest.raises(InvalidRequest):
        store.list_objects(container, limit=0)
    with pytest.raises(InvalidRequest):
        store.list_objects(container, limit=10001)


def test_iter_objects_pages_through_everything(store, container):
    objects = [f"jammy/arm64/s/six/2023{i:04d}_000000_abcde@/result.tar" for i in range(23)]
    fill(store, container, objects)
    assert names(store.iter_objects(container, page_size=5)) == objects


def test_empty_and_missing_container(store, container):
    store.put_object(container, "x", b"1")
    store.delete_object(container, "x")
    assert store.list_objects(container) == []
    assert store.list_objects(container, prefix="a/", delimiter="/") == []
    assert container in store.list_containers(prefix="autopkgtest-t")
    with pytest.raises(ContainerNotFound):
        store.list_objects(container + "-missing")
    with pytest.raises(ContainerNotFound):
        store.get_object(container + "-missing", "x")


def test_list_containers_sorted_with_prefix(store, container):
    for suffix in ("-b", "-a", "-c-d"):
        store.put_object(container + suffix, "o", b"")
    assert store.list_containers(prefix=container) == [container + s for s in ("-a", "-b", "-c-d")]
    assert store.list_containers(prefix=container + "-nothing") == []


def test_log_gz_headers_and_streaming(store, container):
    body = gzip.compress(b"autopkgtest [10:00:00]: starting\n" + os.urandom(300_000).hex().encode())
    name = "noble/amd64/h/hello/20240221_110051_a1b2c@/log.gz"
    store.put_object(container, name, body)
    store.put_object(container, name.replace("log.gz", "result.tar"), b"tar")
    stream = store.open_object(container, name)
    try:
        assert stream.content_type == "text/plain; charset=UTF-8"
        assert stream.content_encoding == "gzip"
        assert stream.content_length == len(body)
        assert stream.last_modified is not None
        chunks = list(stream.chunks)
    finally:
        stream.close()
    assert len(chunks) > 1, "a large object must arrive in several chunks"
    assert b"".join(chunks) == body  # stored bytes, not decompressed
    assert store.get_object(container, name) == body
    other = store.open_object(container, name.replace("log.gz", "result.tar"))
    assert (other.content_type, other.content_encoding) == ("application/octet-stream", None)
    other.close()
    info = store.head_object(container, name)
    assert info.bytes == len(body)
    listed = store.list_objects(container, prefix=name)
    assert listed[0].bytes == len(body)
    assert listed[0].content_type.replace(" ", "") == "text/plain;charset=UTF-8"


def test_missing_object(store, container):
    store.put_object(container, "a/b", b"1")
    for call in (store.get_object, store.open_object, store.head_object, store.delete_object):
        with pytest.raises(ObjectNotFound):
            call(container, "a/missing")
    with pytest.raises(ObjectNotFound):
        store.get_object(container, "a")  # a "folder" is not an object


def test_overwrite_and_delete(store, container):
    store.put_object(container, "a/b/c", b"one")
    store.put_object(container, "a/b/c", b"two")
    assert store.get_object(container, "a/b/c") == b"two"
    store.delete_object(container, "a/b/c")
    assert store.list_objects(container, delimiter="/") == []


# Local store only: names must never reach outside the root.


@pytest.mark.parametrize(
    "name",
    ["../x", "a/../../x", "/etc/passwd", "a/./b", "a//b", "a\0b", "..", "a/..", ".~tmp.x", "a/.~tmp.b/c"],
)
def test_local_rejects_traversal_in_object_names(tmp_path, name):
    store = LocalStore(tmp_path / "root")
    store.put_object("c", "ok", b"1")
    (tmp_path / "x").write_text("secret")
    for call in (store.get_object, store.open_object, store.delete_object):
        with pytest.raises(InvalidName):
            call("c", name)
    with pytest.raises(InvalidName):
        store.put_object("c", name, b"evil")
    assert (tmp_path / "x").read_text() == "secret"


@pytest.mark.parametrize("container", ["..", ".", "a/b", "", "x\0", ".hidden", "../root"])
def test_local_rejects_bad_container_names(tmp_path, container):
    store = LocalStore(tmp_path / "root")
    with pytest.raises(InvalidName):
        store.list_objects(container)
    with pytest.raises(InvalidName):
        store.put_object(container, "o", b"1")


def test_local_symlink_out_of_container_is_refused(tmp_path):
    store = LocalStore(tmp_path / "root")
    store.put_object("c", "ok", b"1")
    (tmp_path / "secret").write_text("secret")
    os.symlink(tmp_path / "secret", tmp_path / "root" / "c" / "link")
    with pytest.raises(InvalidName):
        store.get_object("c", "link")
    assert names(store.list_objects("c")) == ["ok"]


def test_local_hides_temp_files_and_missing_root(tmp_path):
    store = LocalStore(tmp_path / "root")
    store.put_object("c", "a/b", b"1")
    (tmp_path / "root" / "c" / "a" / ".~tmp.b.1234").write_bytes(b"partial")
    assert names(store.list_objects("c")) == ["a/b"]
    with pytest.raises(StoreError, match="does not exist"):
        LocalStore(tmp_path / "nowhere").list_containers()


def test_local_listing_sees_new_objects_immediately(tmp_path):
    # The directory cache must never hide a write made just after a listing.
    store = LocalStore(tmp_path / "root")
    store.put_object("c", "d/1", b"")
    assert names(store.list_objects("c")) == ["d/1"]
    store.put_object("c", "d/2", b"")
    assert names(store.list_objects("c")) == ["d/1", "d/2"]


def test_open_store_selects_by_config(tmp_path, swift_server):
    local = open_store(from_dict({"web": {"results_dir": str(tmp_path)}}))
    assert isinstance(local, LocalStore)
    remote = open_store(from_dict({"swift": swift_server.config_section()}))
    try:
        assert isinstance(remote, SwiftStore)
        remote.list_containers()
    finally:
        remote.close()


# Swift only: failures become StoreError with a clear message, and the store recovers.


def test_swift_down_gives_store_error_then_recovers(swift_server, container):
    store = SwiftStore.from_config(
        from_dict({"swift": swift_server.config_section()}), starting_backoff=0.01, max_backoff=0.05
    )
    try:
        store.put_object(container, "a", b"1")
        with swift_server.stopped():
            with pytest.raises(StoreError) as caught:
                store.list_objects(container)
            assert not isinstance(caught.value, ContainerNotFound)
            assert "cannot reach" in str(caught.value) and "connection refused" in str(caught.value)
            with pytest.raises(StoreError, match="cannot reach"):
                store.get_object(container, "a")
        # Same store object, same connection: works again after Swift is back.
        assert names(store.list_objects(container)) == ["a"]
        assert store.get_object(container, "a") == b"1"
    finally:
        store.close()


def test_swift_bad_credentials(swift_server):
    section = dict(swift_server.config_section(), os_password="wrong")
    store = SwiftStore.from_config(from_dict({"swift": section}), starting_backoff=0.01)
    with pytest.raises(StoreError, match="authentication as test:tester failed"):
        store.list_containers()
    store.close()


def test_swift_config_keystone_v3_and_missing_keys():
    section = {
        "os_auth_url": "https://keystone.example:5000/v3",
        "os_username": "bot",
        "os_password": "secret",
        "os_project_name": "autopkgtest",
        "os_region_name": "RegionOne",
    }
    store = SwiftStore.from_config(from_dict({"swift": section}))
    conn = store._pool.take()  # no Keystone here: check what would be sent
    assert (conn.authurl, conn.user, conn.key, conn.auth_version) == (section["os_auth_url"], "bot", "secret", "3")
    assert conn.os_options == {
        "project_name": "autopkgtest",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "region_name": "RegionOne",
    }
    assert conn.retries == 5
    store._pool.give_back(conn)
    store.close()
    del section["os_password"]
    with pytest.raises(ConfigError, match=r"\[swift\] os_password"):
        SwiftStore.from_config(from_dict({"swift": section}))


def test_one_store_shared_by_threads(store, container):
    # Web apps keep one store per process and serve requests from several threads.
    fill(store, container, [f"d{i}/o" for i in range(8)])
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(5):
                assert store.get_object(container, f"d{i}/o") == f"d{i}/o".encode()
                assert len(store.list_objects(container, delimiter="/")) == 8
                stream = store.open_object(container, f"d{(i + 1) % 8}/o")
                assert b"".join(stream.chunks) == f"d{(i + 1) % 8}/o".encode()
                stream.close()
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
