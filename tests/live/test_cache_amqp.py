# SPDX-License-Identifier: GPL-3.0-or-later
"""cache-amqp against the real broker: recorded queues, hiding rules, peeking safety, locks, semaphores."""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import threading
import time

import pika
import pytest

from tests.live.helpers import QUEUED_2024, QUEUES_2022, browse_client, wait_for
from tests.services.amqp import drain
from webcontrol import amqp, config, db, livestate, results
from webcontrol.services import cache_amqp


def make_public_db(path, arches: dict[str, list[str]]) -> None:
    """A public DB whose ``test`` rows (each with one result) give these release → arches."""
    conn = db.connect_rw(path)
    for n, (release, names) in enumerate(arches.items()):
        for arch in names:
            test_id = conn.execute(
                "INSERT INTO test (release, arch, package) VALUES (?, ?, 'hello')", (release, arch)
            ).lastrowid
            conn.execute(
                "INSERT INTO result (test_id, run_id, version, triggers, duration, exitcode, requester, env)"
                " VALUES (?, ?, '1', 'hello/1', 10, 0, '', '')",
                (test_id, f"2020010{n % 9 + 1}_000000@"),
            )
    # A test row without results does not make its arch appear.
    conn.execute("INSERT INTO test (release, arch, package) VALUES (?, 'riscv64', 'nores')", (next(iter(arches)),))
    conn.close()


class Queues:
    """Test-unique debci queues: ``<prefix>-debci-...``."""

    def __init__(self, amqp_names):
        self.names = amqp_names
        self.prefix = amqp_names.prefix + "-"

    def name(self, context, release, arch) -> str:
        return self.names.queue(results.queue_name(context, release, arch))

    def publish(self, queue: str, bodies: list[bytes]) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.names.uri))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            amqp.declare_request_queue(channel, queue)
            for body in bodies:
                channel.basic_publish("", queue, body, amqp.PERSISTENT)
        finally:
            connection.close()

    def cache(self, tmp_path, releases, arches, **kwargs) -> cache_amqp.QueueCache:
        return cache_amqp.QueueCache(
            self.names.uri, str(tmp_path / "queued.json"), releases, arches, queue_prefix=self.prefix, **kwargs
        )


@pytest.fixture
def queues(amqp_names):
    return Queues(amqp_names)


def _recorded_layout(recorded: dict) -> tuple[list[str], dict[str, list[str]]]:
    releases: list[str] = []
    arches: dict[str, set] = {}
    for by_release in recorded.values():
        for release, by_arch in by_release.items():
            if release not in releases:
                releases.append(release)
            arches.setdefault(release, set()).update(by_arch)
    return releases, {release: sorted(names) for release, names in arches.items()}


def _publish_recorded(queues, recorded: dict) -> None:
    """Every request of a recorded queued.json into its queue on the broker, in order."""
    for context, by_release in recorded.items():
        for release, by_arch in by_release.items():
            for arch, items in by_arch.items():
                if items:
                    queues.publish(queues.name(context, release, arch), [item.encode() for item in items])


@pytest.mark.parametrize("method", cache_amqp.PEEK_METHODS)
@pytest.mark.parametrize("sample", [QUEUES_2022, QUEUED_2024], ids=["2022", "2024"])
def test_recorded_queues_round_trip(queues, tmp_path, sample, method):
    recorded = json.loads(sample.read_text())
    releases, arches = _recorded_layout(recorded)
    _publish_recorded(queues, recorded)
    cache = queues.cache(tmp_path, releases, arches, peek_method=method)
    document = cache.run_once()
    raw = livestate.load_queued(tmp_path / "queued.json")
    assert raw == document
    assert raw["releases"] == releases and raw["arches"] == sorted({a for v in arches.values() for a in v})
    make_public_db(tmp_path / "public.db", arches)
    client = browse_client(tmp_path, " ".join(releases))
    served = json.loads(client.get("/queues.json").get_data())
    assert served == livestate.queues_json(raw)
    sizes = json.loads(client.get("/queue_size.json").get_data())
    for context, by_release in recorded.items():
        for release, by_arch in by_release.items():
            for arch, items in by_arch.items():
                assert served[context][release][arch] == items, (context, release, arch)
                assert sizes[context][release][arch] == len(items)
                for item in items:
                    package, params = item.split(None, 1)
                    assert isinstance(json.loads(params), dict)
    # Every context × release × arch has an entry, empty ones included.
    # (queued.json keeps contexts and releases in order; browse's /queues.json currently sorts keys.)
    assert list(raw["queues"]) == list(results.CONTEXTS)
    assert all(list(raw["queues"][c]) == releases for c in raw["queues"])
    assert sorted(served) == sorted(results.CONTEXTS)
    # Nothing was consumed: the queues still hold the same items in the same order.
    for context, by_release in recorded.items():
        for release, by_arch in by_release.items():
            for arch, items in by_arch.items():
                if items:
                    assert drain(queues.names.uri, queues.prefix + results.queue_name(context, release, arch)) == [
                        i.encode() for i in items
                    ]


@pytest.mark.parametrize("sample", [QUEUES_2022, QUEUED_2024], ids=["2022", "2024"])
def test_queue_json_files_are_written_beside_queued_json(queues, tmp_path, sample):
    """/queues.json and /queue_size.json come from files cache-amqp writes: the bytes browse.cgi derived."""
    recorded = json.loads(sample.read_text())
    releases, arches = _recorded_layout(recorded)
    _publish_recorded(queues, recorded)
    queues.cache(tmp_path, releases, arches).run_once()
    raw = livestate.load_queued(tmp_path / "queued.json")
    make_public_db(tmp_path / "public.db", arches)
    client = browse_client(tmp_path, " ".join(releases))
    for name, derive in (("queues.json", livestate.queues_json), ("queue_size.json", livestate.queue_sizes)):
        derived = json.dumps(derive(raw), ensure_ascii=False).encode()  # how browse.cgi made them
        assert (tmp_path / name).read_bytes() == derived, name
        response = client.get("/" + name)
        assert response.get_data() == derived and response.mimetype == "application/json", name
        assert response.headers["Content-Length"] == str(len(derived))


def test_hiding_rules_and_sizes(queues, tmp_path):
    queue = queues.name("ppa", "noble", "amd64")
    bodies = [
        b'hello\n{"triggers": ["hello/1"], "requester": "joe"}',
        b'hello {"ppas": ["joe/ppa"], "triggers": ["hello/1"]}',
        b'secret\n{"ppas": ["joe:t0ken@joe/private"], "triggers": ["secret/1"]}',
        b'secret\n{"readable-by": ["joe"], "triggers": ["secret/1"]}',
        b'secret\n{"swiftuser": "x", "triggers": ["secret/1"]}',
        b'notsecret\n{"readable-by": "", "swiftuser": null, "triggers": ["x/1"]}',
        b"barepkg",
        b"barepkg2\n",
        b"\xff\xfe\xfd",
        b"pkg [1, 2]",
        b"pkg {broken",
        b'pkg "string"',
        b'strppa {"ppas": "joe:t0ken@joe/private"}',
        b"",
        b'pkg\t{"triggers": ["a/1"]}',
    ]
    queues.publish(queue, bodies)
    raw = queues.cache(tmp_path, ["noble"], {"noble": ["amd64"]}).run_once()
    entry = raw["queues"]["ppa"]["noble"]["amd64"]
    assert entry["size"] == len(bodies)
    assert entry["requests"] == [
        bodies[0].decode(),
        bodies[1].decode(),
        "private job",
        "private job",
        "private job",
        bodies[5].decode(),
        "barepkg\n{}",
        "barepkg2\n{}",
        "malformed request",
        "malformed request",
        "malformed request",
        "malformed request",
        "private job",
        "malformed request",
        bodies[14].decode(),
    ]
    text = (tmp_path / "queued.json").read_text()
    assert "t0ken" not in text and "joe/private" not in text
    assert raw["queues"]["ubuntu"]["noble"]["amd64"] == {"size": 0, "requests": []}
    for item in entry["requests"]:
        assert item in ("private job", "malformed request") or isinstance(json.loads(item.split(None, 1)[1]), dict)


@pytest.mark.parametrize("method", cache_amqp.PEEK_METHODS)
def test_concurrent_consumer_loses_and_duplicates_nothing(queues, tmp_path, method):
    queue = queues.name("ubuntu", "noble", "amd64")
    published = [f'pkg{i}\n{{"triggers": ["pkg{i}/1"]}}'.encode() for i in range(800)]
    queues.publish(queue, published)
    taken: list[bytes] = []
    stop = threading.Event()

    def worker():
        connection = pika.BlockingConnection(pika.URLParameters(queues.names.uri))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        for method_, _props, body in channel.consume(queue, inactivity_timeout=0.05):
            if method_ is not None:
                taken.append(body)
                channel.basic_ack(method_.delivery_tag)
                time.sleep(0.001)
            if stop.is_set():
                break
        channel.cancel()
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    cache = queues.cache(tmp_path, ["noble"], {"noble": ["amd64"]}, peek_method=method)
    snapshots = []
    try:
        for _ in range(3):
            snapshots.append(cache.run_once()["queues"]["ubuntu"]["noble"]["amd64"]["requests"])
    finally:
        stop.set()
        thread.join(30)
    remaining = drain(queues.names.uri, queue)
    counts = collections.Counter(taken + remaining)
    assert len(taken + remaining) == len(published), (len(taken), len(remaining))
    assert set(counts) == set(published) and max(counts.values()) == 1
    # Each snapshot is an in-order run of the queue (a worker only takes from the head).
    order = {body.decode(): i for i, body in enumerate(published)}
    for snapshot in snapshots:
        positions = [order[item] for item in snapshot]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_semaphore_token_is_taken_and_released(queues, tmp_path, amqp_names, caplog):
    queue = queues.name("huge", "noble", "amd64")
    semaphore = amqp_names.queue("semaphore-huge-noble-amd64")
    queues.publish(queue, [b'a {"triggers": ["a/1"]}'])
    queues.publish(semaphore, [semaphore.encode()])
    cache = queues.cache(tmp_path, ["noble"], {"noble": ["amd64"]}, semaphore_wait=1.5)
    first = cache.run_once()
    assert first["queues"]["huge"]["noble"]["amd64"]["requests"] == ['a {"triggers": ["a/1"]}']
    # The token is back: exactly one message, its own name.
    assert drain(amqp_names.uri, semaphore) == [semaphore.encode()]
    # Now another host holds it (token consumed and not returned): the queue is skipped, previous entry kept.
    queues.publish(queue, [b'b {"triggers": ["b/1"]}'])
    caplog.set_level(logging.WARNING)
    second = cache.run_once()
    assert second["queues"]["huge"]["noble"]["amd64"] == first["queues"]["huge"]["noble"]["amd64"]
    assert any("semaphore" in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)


def test_reader_never_sees_partial_queued_json(queues, tmp_path):
    queue = queues.name("ubuntu", "noble", "amd64")
    queues.publish(queue, [f'p{i} {{"triggers": ["{"x" * 200}/{i}"]}}'.encode() for i in range(300)])
    cache = queues.cache(tmp_path, ["noble"], {"noble": ["amd64"]})
    path = tmp_path / "queued.json"
    cache.run_once()
    stop = threading.Event()
    bad, reads = [], [0]

    def reader():
        while not stop.is_set():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as err:
                bad.append(str(err))
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(15):
            cache.run_once()
    finally:
        stop.set()
        thread.join()
    assert not bad and reads[0] > 15


def _config(tmp_path, releases="noble jammy", uri="amqp://guest:guest@127.0.0.1:5672/"):
    make_public_db(tmp_path / "public.db", {"jammy": ["amd64", "s390x"], "noble": ["amd64", "arm64"]})
    path = tmp_path / "c.conf"
    config.write(
        {
            "web": {
                "database_public": tmp_path / "public.db",
                "amqp_queue_cache": tmp_path / "queued.json",
                "releases": releases,
            },
            "amqp": {"uri": uri},
        },
        path,
    )
    return path


def test_program_one_pass_shape(amqp_uri, tmp_path):
    # Release names no real queue has, so the shared broker's queues are never peeked.
    suffix = str(time.time_ns())[-6:]
    conf = _config(tmp_path, releases=f"t{suffix}a t{suffix}b")
    make_public_db(tmp_path / "public.db", {f"t{suffix}a": ["amd64", "s390x"], f"t{suffix}b": ["arm64"]})
    assert cache_amqp.main(["--config", str(conf)]) == 0
    raw = json.loads((tmp_path / "queued.json").read_text())
    assert list(raw) == ["releases", "arches", "queues", "generated"]
    assert raw["releases"] == [f"t{suffix}a", f"t{suffix}b"]
    assert raw["arches"] == ["amd64", "arm64", "s390x"]
    assert raw["generated"].endswith("Z") and len(raw["generated"]) == 20
    assert raw["queues"]["ppa"] == {
        f"t{suffix}a": {"amd64": {"size": 0, "requests": []}, "s390x": {"size": 0, "requests": []}},
        f"t{suffix}b": {"arm64": {"size": 0, "requests": []}},
    }
    assert list(raw["queues"]) == list(results.CONTEXTS)


def test_program_lock_held_exits_zero(tmp_path, caplog):
    conf = _config(tmp_path)
    with open(tmp_path / "queued.json.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        caplog.set_level(logging.INFO)
        assert cache_amqp.main(["--config", str(conf)]) == 0
    assert any("held by another cache-amqp" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "queued.json").exists()


def test_program_broker_down_fails_with_message(tmp_path, capsys):
    conf = _config(tmp_path, uri="amqp://guest:guest@127.0.0.1:1/")
    assert cache_amqp.main(["--config", str(conf)]) == 1
    assert "RabbitMQ" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cache_amqp.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--loop" in out and "queued.json" in out


def test_loop_runs_until_stopped(queues, tmp_path):
    cache = queues.cache(tmp_path, ["noble"], {"noble": ["amd64"]})
    thread = threading.Thread(target=cache.run_forever, args=(0.2,))
    thread.start()
    path = tmp_path / "queued.json"
    try:
        wait_for(path.exists, what="first pass")
        queues.publish(queues.name("upstream", "noble", "amd64"), [b'x {"triggers": ["x/1"]}'])
        wait_for(
            lambda: (
                livestate.queue_sizes(livestate.load_queued(path)).get("upstream", {}).get("noble", {}).get("amd64")
                == 1
            ),
            what="a later pass sees the new request",
        )
    finally:
        cache.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_consume_peek_falls_back_to_get_when_pushes_stall(queues, tmp_path, monkeypatch):
    """If the consumer stops early (slow broker), basic_get takes the rest: complete and in order."""
    monkeypatch.setattr(cache_amqp, "DRAIN_IDLE_S", 0.0005)
    queue = queues.name("ubuntu", "noble", "arm64")
    published = [f'p{i} {{"triggers": ["p{i}/1"]}}'.encode() for i in range(1000)]
    queues.publish(queue, published)
    cache = queues.cache(tmp_path, ["noble"], {"noble": ["arm64"]})
    for _ in range(2):
        entry = cache.run_once()["queues"]["ubuntu"]["noble"]["arm64"]
        assert entry["requests"] == [b.decode() for b in published]
    assert drain(queues.names.uri, queue) == published
