# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's moving parts: request queues, a Launchpad stand-in and simulated workers.

A live site changes all the time: requests wait in queues, workers take
them, report status while they run and upload results, which are ingested
and published. The demo has no broker, workers or Launchpad, so this module
plays them, inside the demo program only:

- :class:`DemoQueues` holds the ``debci-*`` queues; request.cgi publishes
  into it (it has the publisher's interface), the workers take from it.
- :class:`DemoLaunchpad` answers request.cgi's Launchpad questions from the
  demo's own data: every demo package is published, and the demo user may
  upload them.
- :class:`DemoWorkers` is a thread that starts, advances and finishes jobs.
  It keeps running.json through the status collector's state rules and
  queued.json through cache-amqp's document code, writes each finished
  run's objects into the local store as a worker does, records it the way
  download-results does, and republishes the public DB every
  :data:`PUBLISH_S` seconds with publish-db's code. So "updated N s ago"
  stays fresh and ``/health`` stays green for as long as the demo runs.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from webcontrol import archive, atomicfile, db, demodata, ingest, results
from webcontrol.config import Config
from webcontrol.launchpad import Publication
from webcontrol.messages import MalformedMessage, StatusMessage, TestRequest, new_uuid, submit_time
from webcontrol.store.local import LocalStore

log = logging.getLogger(__name__)

TICK_S = 2.0
PUBLISH_S = 30.0
STATS_S = 3600.0
MAX_RUNNING = 6
#: The workers keep about this many requests waiting, adding generated ones.
TARGET_QUEUED = 10
JOB_SECONDS = (20, 75)
#: Outcomes of a finished demo job: mostly passes, some failures, a few neutral.
EXITCODES = (0, 0, 0, 0, 0, 2, 4, 4, 8)


class DemoQueues:
    """In-memory ``debci-*`` queues, oldest request first across all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, list[tuple[int, bytes]]] = {}
        self._sequence = 0

    def publish(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Queue ``(queue name, body)`` pairs (request.cgi's publisher interface)."""
        with self._lock:
            for queue, body in messages:
                self._sequence += 1
                self._queues.setdefault(queue, []).append((self._sequence, body))

    def bodies(self, queue: str) -> list[bytes]:
        with self._lock:
            return [body for _, body in self._queues.get(queue, [])]

    def size(self) -> int:
        with self._lock:
            return sum(len(items) for items in self._queues.values())

    def take(self) -> tuple[str, bytes] | None:
        """The oldest waiting request and its queue, removed; None when all are empty."""
        with self._lock:
            heads = [(items[0][0], queue) for queue, items in self._queues.items() if items]
            if not heads:
                return None
            _, queue = min(heads)
            return queue, self._queues[queue].pop(0)[1]


@dataclass
class DemoLaunchpad:
    """Launchpad's answers for the demo: its packages are published, its user may upload them."""

    packages: frozenset[str]
    user: str
    teams: tuple[str, ...]
    #: Where a real client's service root would be; nothing is ever fetched from it.
    base: str = "demo:launchpad/1.0/"

    def ppa_exists(self, owner: str, name: str) -> bool:
        return bool(owner) and bool(name)

    def publication(self, source: str, release: str, version: str | None = None, ppa: str | None = None) -> Publication:
        return Publication(source in self.packages or ppa is not None, "main")

    def can_upload(self, nick: str, release: str, package: str, component: str) -> bool:
        return nick == self.user and package in self.packages

    def super_teams(self, nick: str) -> list[str]:
        return list(self.teams) if nick == self.user else []

    def participants(self, team: str) -> list[str]:
        return [self.user] if team in self.teams else []


@dataclass
class Job:
    queue: str
    release: str
    arch: str
    request: TestRequest
    started: float
    seconds: int
    lines: list[str] = field(default_factory=list)


class DemoWorkers:
    """Simulated workers in a thread: see the module's description."""

    def __init__(self, config: Config, queues: DemoQueues, releases: list[str], arches: list[str], seed: int = 0):
        self.config = config
        self.queues = queues
        self.releases = releases
        self.arches = arches
        self.rng = random.Random(seed)
        #: Every queue the workers serve: name -> (context, release, arch).
        self.places = {
            results.queue_name(context, release, arch): (context, release, arch)
            for context in results.CONTEXTS
            for release in releases
            for arch in arches
        }
        self.store = LocalStore(config.need("web", "results_dir"))
        self.running: dict[str, Job] = {}
        self.finished = 0
        self.last_publish = time.monotonic()
        self.last_stats = 0.0
        self.versions = self._archive_versions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn = None

    # The thread ---------------------------------------------------------------------------------

    def start(self) -> DemoWorkers:
        self._thread = threading.Thread(target=self._loop, name="demo-workers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        self._conn = db.connect_rw(self.config.need("web", "database"))
        try:
            while not self._stop.is_set():
                try:
                    self.step(time.monotonic())
                except (OSError, db.DatabaseError, archive.FetchFailed) as err:
                    # A demo whose folder is gone or full: say why, keep trying.
                    log.error("demo workers: %s", err)
                self._stop.wait(TICK_S)
        finally:
            self._conn.close()

    # One step ----------------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Refill, start, advance and finish jobs, then write the live files (and publish when due)."""
        from webcontrol.services.amqp_status_collector import RunningState

        self._refill()
        while len(self.running) < MAX_RUNNING and self._start_next(now):
            pass
        state = RunningState()
        for uuid, job in list(self.running.items()):
            elapsed = int(now - job.started)
            if elapsed >= job.seconds:
                del self.running[uuid]
                self._finish(job)
                continue
            while len(job.lines) <= elapsed // 10:
                step = len(job.lines)
                job.lines.append(f"{step * 10:>4}s autopkgtest: {job.request.package}: test step {step + 1}")
            message = StatusMessage(
                job.release,
                job.arch,
                job.request.package,
                True,
                job.request.params,
                elapsed,
                "\n".join(job.lines[-10:]) + "\n",
                uuid,
            )
            state.apply(message, now)
        data = json.dumps(state.tree, ensure_ascii=False, separators=(",", ":"))
        atomicfile.write_atomic(self.config.need("web", "running_cache"), data)
        self._write_queued()
        if now - self.last_publish >= PUBLISH_S:
            self.publish()
        if now - self.last_stats >= STATS_S:
            self._stats()
            self.last_stats = now

    def _refill(self) -> None:
        missing = TARGET_QUEUED - self.queues.size()
        for _ in range(max(0, min(missing, 3))):
            release = self.rng.choice(self.releases)
            package = self.rng.choice(demodata.DEMO_PACKAGES)
            version = self.versions.get((release, package), "1.0-1")
            context = self.rng.choice(("ubuntu", "ubuntu", "ubuntu", "huge"))
            params = {"triggers": [f"{package}/{version}"], "submit-time": submit_time(), "uuid": new_uuid()}
            queue = results.queue_name(context, release, self.rng.choice(self.arches))
            self.queues.publish([(queue, TestRequest(package, params).serialise())])

    def _start_next(self, now: float) -> bool:
        taken = self.queues.take()
        if taken is None:
            return False
        queue, body = taken
        place = self.places.get(queue)
        try:
            request = TestRequest.parse(body)
        except MalformedMessage as err:
            log.warning("demo workers: dropping a malformed request on %s: %s", queue, err)
            return True
        if place is None:
            log.warning("demo workers: no worker serves %s", queue)
            return True
        low, high = JOB_SECONDS
        seconds = self.rng.randint(low, high)
        # At the first start, jobs are already under way, as on a site that has been running.
        started = now - self.rng.randint(0, seconds // 2) if not self.finished else now
        uuid = request.params.get("uuid") if isinstance(request.params.get("uuid"), str) else new_uuid()
        self.running[uuid] = Job(queue, place[1], place[2], request, started, seconds)
        log.info("demo workers: started %s on %s/%s", request.package, place[1], place[2])
        return True

    def _finish(self, job: Job) -> None:
        """Write the run as a worker does and record it as download-results does."""
        self.finished += 1
        params = job.request.params
        if results.is_private_request(params):
            log.info("demo workers: private job for %s finished (no public result)", job.request.package)
            return
        ppas = params.get("ppas") or []
        triggers = [t for t in params.get("triggers") or [] if isinstance(t, str)]
        own = [t.split("/", 1)[1] for t in triggers if t.startswith(f"{job.request.package}/")]
        version = own[0] if own else self.versions.get((job.release, job.request.package), "1.0-1")
        when = datetime.datetime.now(datetime.timezone.utc)
        run = demodata.DemoRun(
            container=results.ppa_container(job.release, ppas[-1]) if ppas else results.distro_container(job.release),
            release=job.release,
            arch=job.arch,
            package=job.request.package,
            run_id=f"{when:%Y%m%d_%H%M%S}_{self.rng.getrandbits(20):05x}@",
            exitcode=self.rng.choice(EXITCODES),
            version=version,
            triggers=" ".join(triggers) or f"{job.request.package}/{version}",
            duration=job.seconds,
            requester=str(params.get("requester") or ""),
            all_proposed=bool(params.get("all-proposed")),
            testname=params.get("testname") or None,
            uuid=params.get("uuid") or new_uuid(),
        )
        demodata.write_run(self.store, run, self.rng)
        try:
            record = ingest.record_from_completion(run.completion_message())
        except ingest.NotIngested as why:
            log.info("demo workers: %s finished, not for the DB: %s", run.swift_dir, why)
            return
        if self._conn is not None:
            db.record_results(self._conn, [record])
        log.info("demo workers: %s finished with exit code %d", run.swift_dir, run.exitcode)

    # The files the site reads -------------------------------------------------------------------

    def _write_queued(self) -> None:
        from webcontrol.services.cache_amqp import queue_entry, queued_document

        def entry(context: str, release: str, arch: str) -> dict:
            return queue_entry(self.queues.bodies(results.queue_name(context, release, arch)))

        document = queued_document(self.releases, {release: self.arches for release in self.releases}, entry)
        atomicfile.write_json_atomic(self.config.need("web", "amqp_queue_cache"), document)

    def publish(self) -> None:
        from webcontrol.services import publish_db

        publish_db.publish(self.config)
        self.last_publish = time.monotonic()

    def _stats(self) -> None:
        from webcontrol.services import stats

        target = Path(self.config.need("web", "stats_cache_dir")) / "stats.json"
        atomicfile.write_json_atomic(target, stats.compute(self.config.need("web", "database_public")))

    def _archive_versions(self) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        url = self.config.get("web", "archive_url")
        if not url:
            return found
        for release in self.releases:
            try:
                fetched = archive.fetch(archive.sources_url(url, release, "main"), None)
            except archive.FetchFailed as err:
                log.warning("demo workers: no archive versions for %s: %s", release, err)
                continue
            for package, version in archive.highest_versions(fetched.body or b"").items():
                found[(release, package)] = version
        return found
