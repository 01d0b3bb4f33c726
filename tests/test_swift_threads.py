# SPDX-License-Identifier: GPL-3.0-or-later
"""One SwiftStore shared by the threads of a web process, against the real Swift through a loopback relay.

A request that stalls (a slow object, a Swift retry) holds up only its own
thread, and the threads share one login.
"""

from __future__ import annotations

import gc
import threading
import uuid
from pathlib import Path

import pytest

from tests.services.http_relay import HttpRelay
from webcontrol.config import from_dict
from webcontrol.store import StoreError
from webcontrol.store.swift import SwiftStore

AUTH = "/auth/v1.0"


@pytest.fixture
def relay(swift_server):
    if not swift_server.running:
        swift_server.start()
    relay = HttpRelay(swift_server.ports["proxy"]).start()
    yield relay
    relay.stop()


@pytest.fixture
def relayed_store(swift_server, relay):
    section = dict(swift_server.config_section(), os_auth_url=relay.url + AUTH)
    store = SwiftStore.from_config(from_dict({"swift": section}))
    yield store
    store.close()


@pytest.fixture
def container(swift_store):
    name = f"threads-{uuid.uuid4().hex[:12]}"
    swift_store.put_object(name, "slow", b"slow body")
    swift_store.put_object(name, "fast", b"fast body")
    return name


def _in_thread(func) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = func()
        except BaseException as err:  # noqa: BLE001 - the test reads it
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_stalled_get_does_not_hold_up_other_threads(relay, relayed_store, container):
    assert relayed_store.get_object(container, "fast") == b"fast body"  # logged in
    relay.hold(f"/{container}/slow")
    slow, slow_outcome = _in_thread(lambda: relayed_store.get_object(container, "slow"))
    try:
        assert relay.held.wait(10), "the slow GET never reached Swift"
        fast, fast_outcome = _in_thread(lambda: relayed_store.get_object(container, "fast"))
        fast.join(5)
        assert not fast.is_alive(), "a GET waited for another thread's stalled GET"
        assert fast_outcome == {"value": b"fast body"}
        stream = relayed_store.open_object(container, "fast")  # a streamed body too
        assert b"".join(stream.chunks) == b"fast body"
        stream.close()
    finally:
        relay.release()
        slow.join(30)
    assert slow_outcome == {"value": b"slow body"}


def test_threads_and_streams_share_one_login(relay, relayed_store, container):
    threads = [_in_thread(lambda: [relayed_store.get_object(container, "fast") for _ in range(5)])[0] for _ in range(6)]
    for _ in range(3):
        stream = relayed_store.open_object(container, "slow")
        assert b"".join(stream.chunks) == b"slow body"
    for thread in threads:
        thread.join(30)
    assert relay.count("GET", f"/v1/AUTH_test/{container}/fast") == 30
    assert relay.count("GET", AUTH) == 1


def test_a_refused_token_is_renewed_once_for_all_connections(relay, relayed_store, container, swift_server):
    assert relayed_store.get_object(container, "fast") == b"fast body"
    # Swift forgets every token when it restarts (tempauth keeps them in the proxy's memory cache).
    with swift_server.stopped():
        pass
    threads = [_in_thread(lambda: relayed_store.get_object(container, "fast")) for _ in range(4)]
    for thread, _ in threads:
        thread.join(30)
    assert [outcome for _, outcome in threads] == [{"value": b"fast body"}] * 4
    assert relay.count("GET", AUTH) == 2


def _relayed(swift_server, relay, **kwargs) -> SwiftStore:
    section = dict(swift_server.config_section(), os_auth_url=relay.url + AUTH)
    return SwiftStore.from_config(from_dict({"swift": section}), **kwargs)


def test_a_get_answered_5xx_is_retried_then_fails_naming_the_status(swift_server, relay, container):
    store = _relayed(swift_server, relay, retries=2, starting_backoff=0.01, max_backoff=0.02)
    path = f"/v1/AUTH_test/{container}/fast"
    try:
        relay.fail(path, 503, 2)
        assert store.get_object(container, "fast") == b"fast body"
        assert relay.count("GET", path) == 3
        relay.fail(path, 503, 10)
        with pytest.raises(StoreError, match=f"GET of {container}/fast failed at .*: HTTP 503"):
            store.get_object(container, "fast")
        assert relay.count("GET", path) == 3 + 3  # the first try and two retries
    finally:
        store.close()


def test_a_get_whose_token_is_refused_logs_in_again_once(relay, relayed_store, container):
    path = f"/v1/AUTH_test/{container}/fast"
    assert relayed_store.get_object(container, "fast") == b"fast body"
    relay.fail(path, 401, 1)
    assert relayed_store.get_object(container, "fast") == b"fast body"
    assert relay.count("GET", AUTH) == 2
    # A token refused again right after a login: the credentials are wrong, no loop of logins.
    relay.fail(path, 401, 5)
    with pytest.raises(StoreError, match="authentication as test:tester failed"):
        relayed_store.get_object(container, "fast")
    assert relay.count("GET", AUTH) == 3


def test_a_listing_answered_5xx_is_retried(swift_server, relay, container):
    store = _relayed(swift_server, relay, retries=2, starting_backoff=0.01, max_backoff=0.02)
    try:
        relay.fail(f"/v1/AUTH_test/{container}?", 500, 1)
        assert [row.name for row in store.list_objects(container)] == ["fast", "slow"]
    finally:
        store.close()


def _established_to(port: int) -> int:
    """Open TCP connections on this host whose far end is ``port`` on loopback (client sides)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
            count += 1
    return count


def test_connections_of_ended_threads_and_dropped_stores_are_closed(swift_server, relay, container):
    """A web process's threads come and go and its store is never closed: no socket may stay behind."""
    stores = [_relayed(swift_server, relay)]
    reader = threading.Thread(target=lambda: stores[0].get_object(container, "fast"))
    reader.start()
    reader.join(30)
    gc.collect()
    assert _established_to(relay.port) == 0
    assert stores[0].get_object(container, "fast") == b"fast body"  # on this thread, kept alive
    assert _established_to(relay.port) >= 1
    stores.clear()
    gc.collect()  # an unclosed socket found here would fail the test with a ResourceWarning
    assert _established_to(relay.port) == 0
