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
sweeps every container's run folders (:meth:`FullIngest.fill_gaps`: one
listed row per run instead of three objects, several architectures listed
at once, tests with a long history listed only from shortly before their
newest stored run), so only the results the backup lacks are downloaded. A DB that already holds results is not overwritten: the
sweep then simply completes it (so an interrupted rebuild can be re-run
with the same command).
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
from webcontrol.store import LISTING_MAX, ContainerNotFound, ObjectInfo, ObjectNotFound, ResultStore, open_store

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
DEFAULT_WORKERS = 8
#: Run folders per listing request of the sweep after a restore (Swift's maximum).
RUN_PAGE_SIZE = LISTING_MAX
#: Architectures listed at once by that sweep.
LISTERS = 3
#: A test with more results than this in the restored DB is listed on its own, from its newest run
#: on: one listing request costs Swift about as much as a hundred listed run folders.
BUSY_RUNS = 100
#: How far before its newest stored run such a test is listed again, for runs stored late.
LATE_MARGIN = datetime.timedelta(days=2)


@dataclass
class Summary:
    stored: int = 0
    present: int = 0
    not_distro: int = 0
    damaged: list[str] = field(default_factory=list)
    incomplete: int = 0  # run folders without a result.tar (sweep after a restore)
    listed: int = 0
    listings: int = 0  # listing requests
    lookups: int = 0  # DB queries asking which listed runs are stored

    def line(self) -> str:
        return (
            f"{self.stored} results stored, {self.present} already present, {self.not_distro} not for the DB, "
            f"{len(self.damaged)} damaged, {self.incomplete} run folders without result.tar, {self.listed} objects listed "
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
        busy_runs: int = BUSY_RUNS,
    ):
        self.conn = conn
        self.busy_runs = busy_runs
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

    def run(self, releases: list[str], gaps: bool = False) -> Summary:
        """Ingest each release, newest first; ``gaps``: by :meth:`fill_gaps`. Raises StoreError, sqlite3.Error."""
        try:
            for release in reversed(releases):
                if self._stopping:
                    break
                if gaps:
                    self.fill_gaps(release)
                else:
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

    def fill_gaps(self, release: str) -> None:
        """After a restore: fetch the runs of one release that the DB lacks. Raises StoreError, sqlite3.Error.

        Lists run folders, not objects: ``<release>/<arch>/`` with delimiter
        ``@`` rolls each ``<run_id>@/`` folder up into one row, a third of
        the rows of the object listing and about half of Swift's work per
        run. A test the DB holds more than ``busy_runs`` results of is
        skipped in that listing and listed on its own from LATE_MARGIN
        before its newest stored run (one request instead of its whole
        history). The architectures are listed by LISTERS threads at once
        while this thread looks up and fetches what their pages lack, so
        listing, downloads and the DB overlap. Nothing here moves the
        container's marker until the end (the sweep starts at the beginning
        whenever it is run again), when it is reset like at the end of a
        full pass.
        """
        container = results.distro_container(release)
        try:
            lanes = [
                row.subdir
                for row in self._workers.call(
                    lambda: self.store.list_objects(container, prefix=f"{release}/", delimiter="/", limit=LISTING_MAX)
                )
                if row.subdir
            ]
        except ContainerNotFound:
            log.warning("%s: no such container, skipping release %s", container, release)
            return
        self.summary.listings += 1
        busy: dict[str, list[tuple[str, str]]] = {lane: [] for lane in lanes}
        for arch, package, newest in db.busy_tests(self.conn, release, self.busy_runs):
            test_dir = results.run_dir(release, arch, package, "")
            if f"{release}/{arch}/" in busy:
                busy[f"{release}/{arch}/"].append((test_dir, _listing_start(newest)))
        log.info(
            "%s: listing the run folders of %s (%d busy tests from their newest runs)",
            container,
            " ".join(lanes) or "nothing",
            sum(map(len, busy.values())),
        )
        pages: queue.Queue = queue.Queue(maxsize=2 * LISTERS)
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for lane in lanes:
            todo.put((lane, sorted(busy[lane])))
        for number in range(min(LISTERS, len(lanes))):
            threading.Thread(
                target=self._list_lanes, args=(container, todo, pages), name=f"list-{number}", daemon=True
            ).start()
        finished = 0
        while finished < len(lanes):
            try:
                page = pages.get(timeout=0.2)
            except queue.Empty:
                if self._stopping:
                    raise Stopped from None
                continue
            if isinstance(page, BaseException):
                raise page
            if page is None:
                finished += 1
                continue
            self.summary.listed += len(page)
            wanted = self._missing_runs(container, page)
            records = list(filter(None, self._workers.map(self._fetch_run, [(container, *run) for run in wanted])))
            for outcome in db.record_results(self.conn, records):
                if outcome is db.Outcome.DUPLICATE:
                    self.summary.present += 1
                else:
                    self.summary.stored += 1
            self.progress.update(container, self.summary)
        if not self._stopping:
            db.record_results(self.conn, [], marker=(container, ""))
        self.progress.update(container, self.summary, final=True)

    def _list_lanes(self, container: str, todo: queue.SimpleQueue, pages: queue.Queue) -> None:
        """Lister thread: run folders of each lane as pages of ``.../result.tar`` names, None after each lane."""
        try:
            store = self._thread_store()
            while not self._stopping:
                try:
                    lane, busy = todo.get_nowait()
                except queue.Empty:
                    return
                marker = None
                for test_dir, start in [*busy, (None, None)]:
                    # The lane up to the next busy test (or its end), then that test from ``start`` on.
                    self._list_run_folders(store, container, lane, marker, test_dir, pages)
                    if test_dir is None:
                        break
                    self._list_run_folders(store, container, test_dir, test_dir + start, None, pages)
                    marker = test_dir[:-1] + chr(ord("/") + 1)  # past every name under test_dir
                pages.put(None)
        except BaseException as err:  # handed to the main thread, which raises it
            pages.put(err)

    def _list_run_folders(self, store, container, prefix, marker, end_marker, pages: queue.Queue) -> None:
        while not self._stopping:
            rows = store.list_objects(
                container, prefix=prefix, delimiter="@", marker=marker, limit=RUN_PAGE_SIZE, end_marker=end_marker
            )
            with self._lock:
                self.summary.listings += 1
            # A row without the roll-up is an object beside the run folders: not a result.
            pages.put([ObjectInfo(name=f"{row.subdir}/result.tar") for row in rows if row.subdir])
            if len(rows) < RUN_PAGE_SIZE:
                return
            marker = rows[-1].subdir or rows[-1].name

    def _fetch_run(self, container: str, name: str, *location: str) -> db.ResultRecord | None:
        """Like _fetch, for a listed run folder: one without result.tar is still being written, not damaged."""
        try:
            body = self._thread_store().get_object(container, name)
        except ObjectNotFound:
            log.warning("%s/%s: no result.tar (yet); the hourly pass will fetch it once it is there", container, name)
            with self._lock:
                self.summary.incomplete += 1
            return None
        return self._record(container, name, *location, body)

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
            body = self._thread_store().get_object(container, name)
        except ObjectNotFound as err:
            log.error("%s/%s: damaged result skipped: %s", container, name, err)
            with self._lock:
                self.summary.damaged.append(f"{container}/{name}")
            return None
        return self._record(container, name, release, arch, package, run_id, body)

    def _record(
        self, container: str, name: str, release: str, arch: str, package: str, run_id: str, body: bytes
    ) -> db.ResultRecord | None:
        try:
            tar = resulttar.parse(body)
            return ingest.record_from_tar(container, release, arch, package, run_id, tar)
        except resulttar.DamagedResult as err:
            log.error("%s/%s: damaged result skipped: %s", container, name, err)
            with self._lock:
                self.summary.damaged.append(f"{container}/{name}")
        except ingest.NotIngested as why:
            log.debug("%s/%s: not stored: %s", container, name, why)
            with self._lock:
                self.summary.not_distro += 1
        return None


def _listing_start(newest_run_id: str) -> str:
    """Where a busy test's listing starts: LATE_MARGIN before its newest stored run (a run id prefix)."""
    try:
        start = results.run_id_time(newest_run_id) - LATE_MARGIN
    except ValueError:
        return ""
    return f"{start:%Y%m%d_%H%M%S}"


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
            summary = job.run(releases, gaps=args.from_backup)
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
