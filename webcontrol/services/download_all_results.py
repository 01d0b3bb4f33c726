# SPDX-License-Identifier: GPL-3.0-or-later
"""download-all-results: fill the results DB from the result store (docs/formats.rst, rw DB).

For each release, newest first, it lists ``autopkgtest-<release>`` page by
page (1000 names, next page after the last name of each page) starting at
the container's saved marker, asks the DB in one query which of the page's
runs it already holds, downloads the ``result.tar`` of every run it lacks
(in parallel), and commits the page's
rows together with the new marker. A killed run therefore resumes at the first page it had not
committed. When a pass reaches the end of the container the marker is reset,
so the next run sweeps the whole listing again: new runs appear anywhere in
name order (a new ``a/aaa/`` run sorts before a marker at ``z/zzz/``), and
only objects the DB lacks are downloaded, so a sweep costs one listing
request and one DB query per 1000 objects. Damaged objects are logged, counted, listed at the end and
skipped; an unreachable store or DB is a failure (exit 1, marker unchanged).

``--from-backup`` is the fast way to rebuild a unit: it restores the newest
db-backup into the empty DB first (what db-backup --restore does), then
sweeps every container from the beginning, so only the results the backup
lacks are downloaded. A DB that already holds results is not overwritten:
the sweep then simply completes it (so an interrupted rebuild can be
re-run with the same command).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from webcontrol import db, ingest, results, resulttar
from webcontrol.config import Config
from webcontrol.services import db_backup
from webcontrol.services.base import run_program, stop_signals
from webcontrol.store import ContainerNotFound, ObjectInfo, ObjectNotFound, ResultStore, open_store

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
DEFAULT_WORKERS = 8


@dataclass
class Summary:
    stored: int = 0
    present: int = 0
    not_distro: int = 0
    damaged: list[str] = field(default_factory=list)
    listed: int = 0
    listings: int = 0  # listing requests
    lookups: int = 0  # DB queries asking which listed runs are stored

    def line(self) -> str:
        return (
            f"{self.stored} results stored, {self.present} already present, {self.not_distro} not for the DB, "
            f"{len(self.damaged)} damaged, {self.listed} objects listed "
            f"({self.listings} listing requests, {self.lookups} DB lookups)"
        )


class Progress:
    """A one-line progress display on a terminal, periodic log lines otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.started = time.monotonic()

    def update(self, container: str, summary: Summary, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 10):
            return
        self.last = now
        rate = summary.stored / max(now - self.started, 1e-6)
        text = f"{container}: {summary.listed} listed, {summary.stored} stored ({rate:.0f}/s), {len(summary.damaged)} damaged"
        if self.tty:
            self.stream.write(f"\r\033[K{text}" + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info("%s", text)


class Stopped(Exception):
    """A stop was asked while store requests were still out."""


class _Workers:
    """Threads running store requests for the main thread, which waits for them in short steps.

    The threads are daemons: on a stop the main thread stops waiting at once
    and a request stuck on a store that does not answer is left behind rather
    than holding the process until systemd kills it.
    """

    def __init__(self, count: int, stopping: Callable[[], bool]):
        self.stopping = stopping
        self.count = count
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(count):
            threading.Thread(target=self._work, name=f"fetch-{number}", daemon=True).start()

    def _work(self) -> None:
        while (task := self.tasks.get()) is not None:
            future, call, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as err:  # handed to the waiting thread, which raises it
                future.set_exception(err)

    def map(self, call: Callable, items) -> list:
        """``[call(*item) for item in items]`` in parallel. Raises Stopped, or what a call raised."""
        futures = []
        for item in items:
            futures.append(concurrent.futures.Future())
            self.tasks.put((futures[-1], call, item))
        while True:
            _, pending = concurrent.futures.wait(futures, timeout=0.2)
            if not pending:
                return [future.result() for future in futures]
            if self.stopping():
                for future in pending:
                    future.cancel()
                raise Stopped

    def call(self, call: Callable, *args):
        return self.map(call, [args])[0]

    def close(self) -> None:
        """Let every thread end once it is done with its request."""
        for _ in range(self.count):
            self.tasks.put(None)


class FullIngest:
    """One run of download-all-results over a set of releases."""

    def __init__(
        self,
        conn,
        store_factory: Callable[[], ResultStore],
        since: datetime.date | None = None,
        full: bool = False,
        workers: int = DEFAULT_WORKERS,
        progress: Progress | None = None,
        page_size: int | None = None,
    ):
        self.conn = conn
        self.page_size = page_size or PAGE_SIZE
        self.store_factory = store_factory
        self.store = store_factory()
        self.since_run_id = results.run_id_for_date(since) if since else None
        self.full = full
        self.workers = max(1, workers)
        self.progress = progress or Progress()
        self.summary = Summary()
        self._local = threading.local()
        self._thread_stores: list[ResultStore] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._workers = _Workers(self.workers, lambda: self._stopping)

    def stop(self) -> None:
        self._stopping = True

    def _thread_store(self) -> ResultStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self.store_factory()
            self._local.store = store
            with self._lock:
                self._thread_stores.append(store)
        return store

    def close(self) -> None:
        self._workers.close()
        for store in [self.store, *self._thread_stores]:
            store.close()

    def discover_releases(self) -> list[str]:
        """Releases of the ``autopkgtest-<release>`` containers in the store, oldest name first."""
        try:
            names = self._workers.call(lambda: self.store.list_containers(prefix=results.CONTAINER_PREFIX))
        except Stopped:
            return []
        return [release for release in map(results.release_of_container, names) if release is not None]

    def run(self, releases: list[str]) -> Summary:
        """Ingest each release, newest first. Raises StoreError, sqlite3.Error."""
        try:
            for release in reversed(releases):
                if self._stopping:
                    break
                self.ingest_container(release)
        except Stopped:
            log.info("stopped with store requests outstanding; the page in flight is fetched again next run")
        return self.summary

    def _list(self, container: str, marker: str | None) -> list[ObjectInfo]:
        self.summary.listings += 1
        return self._workers.call(lambda: self.store.list_objects(container, marker=marker, limit=self.page_size))

    def ingest_container(self, release: str) -> None:
        container = results.distro_container(release)
        marker = None if self.full else (db.get_marker(self.conn, container) or None)
        log.info("%s: listing from %s", container, marker or "the beginning")
        while not self._stopping:
            try:
                page = self._list(container, marker)
            except ContainerNotFound:
                log.warning("%s: no such container, skipping release %s", container, release)
                return
            if not page:
                break
            self.summary.listed += len(page)
            wanted = self._missing_runs(container, page)
            records = list(filter(None, self._workers.map(self._fetch, [(container, *run) for run in wanted])))
            outcomes = db.record_results(self.conn, records, marker=(container, page[-1].name))
            for outcome in outcomes:
                if outcome is db.Outcome.DUPLICATE:
                    self.summary.present += 1
                else:
                    self.summary.stored += 1
            self.progress.update(container, self.summary)
            if len(page) < self.page_size:
                break
            marker = page[-1].name
        if not self._stopping:
            db.record_results(self.conn, [], marker=(container, ""))  # pass complete: next run starts over
        self.progress.update(container, self.summary, final=True)

    def _missing_runs(self, container: str, page: list[ObjectInfo]) -> list[tuple[str, str, str, str, str]]:
        """``(name, release, arch, package, run_id)`` of the page's results the DB lacks (one DB query)."""
        runs = []
        for obj in page:
            if not obj.name.endswith("/result.tar"):
                continue
            location = results.parse_run_dir(obj.name)
            if location is None:
                log.warning(
                    "%s/%s: not in the <release>/<arch>/<prefix>/<package>/<run_id> layout, skipped",
                    container,
                    obj.name,
                )
                continue
            if self.since_run_id and location[3] < self.since_run_id:
                continue
            runs.append((obj.name, *location))
        if not runs:
            return []
        self.summary.lookups += 1
        stored = db.stored_runs(self.conn, [run[1:] for run in runs])
        self.summary.present += sum(1 for run in runs if run[1:] in stored)
        return [run for run in runs if run[1:] not in stored]

    def _fetch(
        self, container: str, name: str, release: str, arch: str, package: str, run_id: str
    ) -> db.ResultRecord | None:
        """The record of one result.tar, or None when there is nothing to store."""
        try:
            tar = resulttar.parse(self._thread_store().get_object(container, name))
            return ingest.record_from_tar(container, release, arch, package, run_id, tar)
        except (resulttar.DamagedResult, ObjectNotFound) as err:
            log.error("%s/%s: damaged result skipped: %s", container, name, err)
            with self._lock:
                self.summary.damaged.append(f"{container}/{name}")
        except ingest.NotIngested as why:
            log.debug("%s/%s: not stored: %s", container, name, why)
            with self._lock:
                self.summary.not_distro += 1
        return None


def _since(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD") from None


def _page_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 10000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a page size between 1 and 10000")
    return int(value)


def restore_newest_backup(config: Config) -> None:
    """Restore the newest db-backup into an empty or missing rw DB; leave a DB with results alone.

    Raises ProgramError (no backup, damaged backup), StoreError.
    """
    db_path = Path(config.need("web", "database"))
    held = db_backup.result_rows(db_path)
    if held:
        log.warning("%s already holds %d results: not restoring a backup over it, completing it instead", db_path, held)
        return
    dest = db_backup.destination(config)
    try:
        started = time.monotonic()
        name = db_backup.restore(db_path, dest, None)
    finally:
        dest.store.close()
    log.info("restored backup %s in %.1f s; now downloading what it lacks", name, time.monotonic() - started)


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.from_backup:
        restore_newest_backup(config)
    conn = db.connect_rw(config.need("web", "database"))
    # After a restore the saved positions are the old unit's: results added since can be anywhere.
    full = args.full or args.from_backup
    job = FullIngest(conn, lambda: open_store(config), args.since, full, args.workers, page_size=args.page_size)
    try:
        # Scoped: when the demo runs this in-process, its own handlers must be back afterwards.
        with stop_signals(job.stop):
            releases = args.release or config.supported_releases(db.releases_by_age(conn))
            if not releases:
                releases = job.discover_releases()
                log.info("no releases configured; found containers for %s", " ".join(releases) or "none")
            summary = job.run(releases)
    finally:
        job.close()
        conn.close()
    log.info("done: %s", summary.line())
    if summary.damaged:
        log.warning("damaged objects (skipped, marker moved past them):\n  %s", "\n  ".join(summary.damaged))
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--release", action="append", help="only this release (repeatable)")
    parser.add_argument("--since", type=_since, metavar="YYYY-MM-DD", help="only runs on or after this date")
    parser.add_argument("--full", action="store_true", help="ignore saved positions and list from the beginning")
    parser.add_argument(
        "--from-backup",
        action="store_true",
        help="first restore the newest db-backup into the empty DB, then download only what it lacks"
        " (the fast way to rebuild a unit)",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel downloads (default %(default)s)")
    # For fault tests (kill mid-run with many small pages); operators keep the default.
    parser.add_argument(
        "--page-size", type=_page_size, default=PAGE_SIZE, help="objects per listing request (default %(default)s)"
    )


def main(argv=None) -> int:
    return run_program("Fill the results DB from the result store (incremental and resumable).", _run, _arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
