# SPDX-License-Identifier: GPL-3.0-or-later
"""Index files next to queued.json and running.json, so pages look entries up instead of parsing.

queued.json holds tens of thousands of requests and running.json thousands
of jobs. A package, history or user page needs a handful of them; parsing
every request's JSON on each page (or once per file version in every web
process) costs more than the rest of the page. So the programs that write
the files, cache-amqp and amqp-status-collector, also write a small SQLite
file next to each (``<file>.index``) with the entries already parsed and
indexed by package, requester and uuid; a page asks it one indexed query.

An index names the version of the file it describes (mtime and size). The
writer builds it from the file's temporary copy and renames it into place
just before the file itself (:func:`webcontrol.atomicfile.write_atomic`'s
``before_replace``), so a reader sees the two out of step only for the
instant between the two renames. Readers that find no index, or one for
another version (an older writer), get None and fall back to parsing.

cache-amqp also writes the two JSON files browse.cgi serves from queued.json,
``queues.json`` and ``queue_size.json``, next to it (:func:`write_queue_listings`),
and the queued index names their versions too, so a web process serves them
as files and never parses queued.json for them; queue pages read each
queue's items (private and malformed ones included) from the index.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from webcontrol import atomicfile, livestate

log = logging.getLogger(__name__)

#: Bumped when the tables change; readers ignore an index of another format.
FORMAT = 1
SUFFIX = ".index"


def index_path(path: str | os.PathLike) -> str:
    return os.fspath(path) + SUFFIX


#: The files browse.cgi serves as /queues.json and /queue_size.json, written next to queued.json.
QUEUES_JSON = "queues.json"
QUEUE_SIZE_JSON = "queue_size.json"
LISTINGS = (QUEUES_JSON, QUEUE_SIZE_JSON)


def listing_path(queued_path: str | os.PathLike, name: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(queued_path)), name)


def listing_text(document: Mapping, name: str) -> str:
    """The text of /queues.json or /queue_size.json for a queued.json document (docs/formats.rst).

    Not sorted, not ASCII-escaped: the order of queued.json, as clients expect it.
    """
    value = livestate.queues_json(document) if name == QUEUES_JSON else livestate.queue_sizes(document)
    return json.dumps(value, ensure_ascii=False)


def _stamp(path: str | os.PathLike) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


# Writing ------------------------------------------------------------------------------------

_QUEUED_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE queue (context TEXT, release TEXT, arch TEXT, size INTEGER)",
    "CREATE TABLE item (context TEXT, release TEXT, arch TEXT, position INTEGER, package TEXT,"
    " requester TEXT, uuid TEXT, text TEXT)",
)
#: Every item of every queue, private and malformed ones too (queue pages number and show them).
#: A table added within format 1: readers of format 1 without it fall back to parsing.
_QUEUED_REQUESTS = (
    "CREATE TABLE request (context TEXT, release TEXT, arch TEXT, position INTEGER, text TEXT,"
    " PRIMARY KEY (context, release, arch, position)) WITHOUT ROWID"
)
#: The triggers of each shown item and running job (trigger pages), tables added within format 1 too.
_QUEUED_TRIGGERS = "CREATE TABLE item_trigger (trigger TEXT, item INTEGER, PRIMARY KEY (trigger, item)) WITHOUT ROWID"
_RUNNING_TRIGGERS = "CREATE TABLE job_trigger (trigger TEXT, job INTEGER, PRIMARY KEY (trigger, job)) WITHOUT ROWID"
_QUEUED_INDEXES = (
    "CREATE INDEX item_package ON item(package)",
    "CREATE INDEX item_requester ON item(requester)",
    "CREATE INDEX item_uuid ON item(uuid)",
)
_RUNNING_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE job (package TEXT, run_key TEXT, release TEXT, arch TEXT, requester TEXT, uuid TEXT,"
    " private INTEGER, params TEXT, duration INTEGER, logtail TEXT)",
)
_RUNNING_INDEXES = (
    "CREATE INDEX job_package ON job(package)",
    "CREATE INDEX job_requester ON job(requester)",
    "CREATE INDEX job_uuid ON job(uuid)",
    # The home page counts jobs per arch after every write (twice a second): from this index alone,
    # not from a scan of every job's log tail.
    "CREATE INDEX job_arch ON job(arch)",
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _triggers(params: Mapping) -> set[str]:
    """The triggers a request or job names (its ``triggers`` list; anything else names none)."""
    value = params.get("triggers")
    return {t for t in value if isinstance(t, str)} if isinstance(value, list) else set()


def _write(target: str, source: str | os.PathLike, schema, indexes, fill) -> None:
    """Build an index in a temporary file next to ``target`` and rename it over ``target``.

    Never raises for a failure of its own: the live file matters more than its
    index, and readers without a current index parse the file instead.
    """
    try:
        _build(target, _stamp(source), schema, indexes, fill)
    except (OSError, sqlite3.Error, UnicodeEncodeError) as err:  # a lone surrogate SQLite cannot store
        log.error("cannot write %s (pages will parse the file instead): %s", target, err)
        try:
            os.unlink(target)  # a stale index is ignored anyway; do not leave it looking current
        except OSError:
            pass


def _build(target: str, source_stamp: tuple[int, int], schema, indexes, fill) -> None:
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            # Derived data, rebuilt on every write: no journal, no fsync.
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            for statement in schema:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("format", FORMAT), ("mtime_ns", source_stamp[0]), ("size", source_stamp[1])],
            )
            fill(conn)
            for statement in indexes:
                conn.execute(statement)
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_queue_listings(target: str | os.PathLike, document: Mapping) -> dict[str, tuple[int, int]]:
    """Write queues.json and queue_size.json for the queued.json document about to replace ``target``.

    Returns the version (mtime, size) of each file written, for the index to
    name; a file that cannot be written is logged and left out (browse.cgi
    then derives it from queued.json, as it does when it is missing).
    """
    written = {}
    for name in LISTINGS:
        path = listing_path(target, name)
        if os.path.abspath(path) == os.path.abspath(target):
            log.error("not writing %s: it is the queue file itself", path)
            continue
        try:
            atomicfile.write_atomic(path, listing_text(document, name))
            written[name] = _stamp(path)
        except (OSError, UnicodeEncodeError) as err:
            log.error("cannot write %s (browse.cgi will derive it from queued.json): %s", path, err)
    return written


def write_queued_index(
    source_tmp: str | os.PathLike,
    target: str | os.PathLike,
    document: Mapping,
    listings: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """Index of a queued.json document, for the file ``source_tmp`` about to be renamed to ``target``.

    The ``item`` table holds only requests a page may show (private and
    malformed items left out), ``request`` every item of every queue.
    ``listings`` are the versions of the files :func:`write_queue_listings`
    wrote for the same document.
    """

    def fill(conn: sqlite3.Connection) -> None:
        conn.execute(_QUEUED_REQUESTS)
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [(f"listing:{name}", f"{mtime_ns}:{size}") for name, (mtime_ns, size) in (listings or {}).items()],
        )
        conn.executemany(
            "INSERT INTO queue(context, release, arch, size) VALUES (?, ?, ?, ?)", livestate.queue_entries(document)
        )
        conn.executemany(
            "INSERT INTO request(context, release, arch, position, text) VALUES (?, ?, ?, ?, ?)",
            (
                (ctx, release, arch, position, text if isinstance(text, str) else livestate.MALFORMED_REQUEST)
                for ctx, release, arch, entry in livestate.queue_requests(document)
                for position, text in enumerate(entry, 1)
            ),
        )
        conn.execute(_QUEUED_TRIGGERS)
        rows, triggers = [], []
        for item in livestate.queued_requests(document):
            if item.private or item.malformed:
                continue
            params = item.params
            rowid = len(rows) + 1
            triggers.extend((trigger, rowid) for trigger in _triggers(params))
            rows.append(
                (
                    rowid,
                    item.context,
                    item.release,
                    item.arch,
                    item.position,
                    item.package,
                    _text(params.get("requester")),
                    _text(params.get("uuid")),
                    item.text,
                )
            )
        conn.executemany(
            "INSERT INTO item(rowid, context, release, arch, position, package, requester, uuid, text)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO item_trigger(trigger, item) VALUES (?, ?)", triggers)

    _write(index_path(target), source_tmp, _QUEUED_SCHEMA, _QUEUED_INDEXES, fill)


def write_running_index(source_tmp: str | os.PathLike, target: str | os.PathLike, tree: Mapping) -> None:
    """Index of a running.json tree, for the file ``source_tmp`` about to be renamed to ``target``."""

    def fill(conn: sqlite3.Connection) -> None:
        conn.execute(_RUNNING_TRIGGERS)
        rows, triggers = [], []
        for job in livestate.running_jobs(tree):
            rowid = len(rows) + 1
            if not job.private:
                triggers.extend((trigger, rowid) for trigger in _triggers(job.params))
            rows.append(
                (
                    rowid,
                    job.package,
                    job.run_key,
                    job.release,
                    job.arch,
                    _text(job.params.get("requester")),
                    job.uuid,
                    int(job.private),
                    json.dumps(job.params, ensure_ascii=False),
                    job.duration,
                    job.logtail,
                )
            )
        conn.executemany(
            "INSERT INTO job(rowid, package, run_key, release, arch, requester, uuid, private, params, duration, logtail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany("INSERT INTO job_trigger(trigger, job) VALUES (?, ?)", triggers)

    _write(index_path(target), source_tmp, _RUNNING_SCHEMA, _RUNNING_INDEXES, fill)


# Reading ------------------------------------------------------------------------------------


def _open_with_meta(path: str | os.PathLike | None) -> tuple[sqlite3.Connection, dict] | None:
    """The index of ``path`` and its meta table when it describes the file as it is now, else None."""
    if not path:
        return None
    try:
        stamp = _stamp(path)
        conn = sqlite3.connect(f"file:{index_path(path)}?mode=ro", uri=True, check_same_thread=False)
    except (OSError, sqlite3.Error):
        return None
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.Error:
        conn.close()
        return None
    if (meta.get("format"), meta.get("mtime_ns"), meta.get("size")) != (FORMAT, *stamp):
        conn.close()
        return None
    return conn, meta


def _open(path: str | os.PathLike | None) -> sqlite3.Connection | None:
    opened = _open_with_meta(path)
    return opened[0] if opened else None


class QueuedIndex:
    """What queue pages and the queue JSON files read from a current queued.json index.

    Each read returns None when this index cannot answer it (written by an
    older cache-amqp, or unreadable): the caller then parses queued.json.
    """

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection, meta: Mapping) -> None:
        self.path = os.fspath(path)
        self._conn = conn
        self._meta = meta

    def entries(self) -> list[tuple[str, str, str, int]] | None:
        """``(context, release, arch, size)`` of every queue in file order (livestate.queue_entries)."""
        try:
            return [
                tuple(row)
                for row in self._conn.execute("SELECT context, release, arch, size FROM queue ORDER BY rowid")
            ]
        except sqlite3.Error as err:
            log.warning("queued index of %s unreadable: %s", self.path, err)
            return None

    def requests(
        self, context: str, release: str, arch: str, offset: int = 0, limit: int | None = None
    ) -> list[livestate.QueuedRequest] | None:
        """One page of one queue, private and malformed items included (livestate.queue_items)."""
        window, window_args = _window(offset, limit)
        try:
            if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'request'").fetchone():
                return None  # written before the table was added
            rows = self._conn.execute(
                "SELECT position, text FROM request WHERE context = ? AND release = ? AND arch = ?"
                f" ORDER BY position{window}",
                (context, release, arch, *window_args),
            ).fetchall()
        except sqlite3.Error as err:
            log.warning("queued index of %s unreadable: %s", self.path, err)
            return None
        return [livestate.queued_item(context, release, arch, position, text) for position, text in rows]

    def listing(self, name: str) -> BinaryIO | None:
        """queues.json or queue_size.json opened, when it is the one written with this version of queued.json."""
        recorded = self._meta.get(f"listing:{name}")
        if not isinstance(recorded, str):
            return None
        try:
            handle = open(listing_path(self.path, name), "rb")
        except OSError:
            return None
        stat = os.fstat(handle.fileno())
        if recorded != f"{stat.st_mtime_ns}:{stat.st_size}":
            handle.close()  # written for another version of queued.json
            return None
        return handle


@contextmanager
def open_queued(path: str | os.PathLike | None) -> Iterator[QueuedIndex | None]:
    """The current index of queued.json at ``path``, or None (no index, or one of another version)."""
    opened = _open_with_meta(path)
    if opened is None:
        yield None
        return
    conn, meta = opened
    try:
        yield QueuedIndex(path, conn, meta)
    finally:
        conn.close()


def _where(filters: Iterable[tuple[str, Any]]) -> tuple[str, list]:
    clauses, args = [], []
    for column, value in filters:
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _window(offset: int, limit: int | None) -> tuple[str, list]:
    return (" LIMIT ? OFFSET ?", [limit, offset]) if limit is not None else (" LIMIT -1 OFFSET ?", [offset])


def queued_items(path, package=None, release=None, arch=None, requester=None) -> list[livestate.QueuedRequest] | None:
    """Shown requests matching the filters, in file order; None without a current index."""
    found = queued_window(path, package, release, arch, requester)
    return None if found is None else found[0]


def queued_window(
    path, package=None, release=None, arch=None, requester=None, offset: int = 0, limit: int | None = None
) -> tuple[list[livestate.QueuedRequest], int] | None:
    """``(requests, total)``: ``limit`` shown requests from ``offset`` in file order, and how many match.

    None without a current index. Both are indexed reads, so a bounded page costs
    the same however long the queue is.
    """
    conn = _open(path)
    if conn is None:
        return None
    try:
        where, args = _where((("package", package), ("release", release), ("arch", arch), ("requester", requester)))
        window, window_args = _window(offset, limit)
        rows = conn.execute(
            f"SELECT context, release, arch, position, text FROM item{where} ORDER BY rowid{window}",
            [*args, *window_args],
        )
        items = [livestate.queued_item(*row) for row in rows]
        total = conn.execute(f"SELECT COUNT(*) FROM item{where}", args).fetchone()[0] if limit is not None else None
    except sqlite3.Error as err:
        log.warning("queued index of %s unreadable: %s", path, err)
        return None
    finally:
        conn.close()
    # The writer indexes only shown requests; the check keeps a hand-made index honest too.
    items = [item for item in items if not item.private and not item.malformed]
    return items, total if total is not None else offset + len(items)


def running_jobs(path, package=None, release=None, arch=None, requester=None) -> list[livestate.RunningJob] | None:
    """Running jobs matching the filters, in file order; None without a current index."""
    found = running_window(path, package, release, arch, requester)
    return None if found is None else found[0]


def running_window(
    path, package=None, release=None, arch=None, requester=None, offset: int = 0, limit: int | None = None
) -> tuple[list[livestate.RunningJob], int] | None:
    """``(jobs, total)``: ``limit`` running jobs from ``offset`` in file order, and how many match.

    None without a current index.
    """
    conn = _open(path)
    if conn is None:
        return None
    try:
        where, args = _where((("package", package), ("release", release), ("arch", arch), ("requester", requester)))
        window, window_args = _window(offset, limit)
        rows = conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM job{where} ORDER BY rowid{window}",
            [*args, *window_args],
        ).fetchall()
        total = conn.execute(f"SELECT COUNT(*) FROM job{where}", args).fetchone()[0] if limit is not None else None
    except sqlite3.Error as err:
        log.warning("running index of %s unreadable: %s", path, err)
        return None
    finally:
        conn.close()
    jobs = _jobs(rows, path)
    if jobs is None:
        return None
    return jobs, total if total is not None else offset + len(jobs)


def running_rows(path) -> list[tuple] | None:
    """Every job of a current running index as its columns (:data:`_JOB_COLUMNS`), in file order.

    None without a current index. The params stay JSON text (:func:`job_from_row`
    parses them): a web process re-reads every job when the collector writes
    (twice a second) but derives again only those that reported meanwhile, so
    it parses the params of those alone, and never the whole file in one call
    that holds the interpreter (see :func:`webcontrol.web.browse.live_data.running_views`).
    """
    conn = _open(path)
    if conn is None:
        return None
    try:
        return conn.execute(f"SELECT {_JOB_COLUMNS} FROM job ORDER BY rowid").fetchall()
    except sqlite3.Error as err:
        log.warning("running index of %s unreadable: %s", path, err)
        return None
    finally:
        conn.close()


def job_from_row(row: tuple, path) -> livestate.RunningJob | None:
    """The job of a :func:`running_rows` row; None (read the file instead) when its params are not a JSON object."""
    found = _jobs([row], path)
    return found[0] if found else None


#: The job columns :func:`_jobs` takes, in its order.
_JOB_COLUMNS = "package, run_key, release, arch, params, duration, logtail, uuid, private"


def _jobs(rows: list[tuple], path) -> list[livestate.RunningJob] | None:
    """Running jobs from index rows; None (read the file instead) when a row's params are not a JSON object."""
    jobs = []
    for package, key, release, arch, params, duration, logtail, uuid, private in rows:
        try:
            parsed = json.loads(params)
        except (TypeError, ValueError):
            parsed = None
        if not isinstance(parsed, dict):
            log.warning("running index of %s has a job whose params are not a JSON object", path)
            return None
        jobs.append(livestate.RunningJob(package, key, release, arch, parsed, duration, logtail, uuid, bool(private)))
    return jobs


def with_trigger(
    queued_path, running_path, trigger: str
) -> tuple[list[livestate.RunningJob], list[livestate.QueuedRequest]] | None:
    """Running jobs (public ones) and shown queued requests whose triggers include ``trigger``, in file order.

    None when either index is missing, of another version, or older than its
    trigger table: the caller then reads the files.
    """
    running = _open(running_path)
    queued = _open(queued_path)
    try:
        if running is None or queued is None:
            return None
        if not _has_table(running, "job_trigger") or not _has_table(queued, "item_trigger"):
            return None
        jobs = running.execute(
            f"SELECT {_JOB_COLUMNS} FROM job WHERE rowid IN (SELECT job FROM job_trigger WHERE trigger = ?)"
            " ORDER BY rowid",
            (trigger,),
        ).fetchall()
        items = queued.execute(
            "SELECT context, release, arch, position, text FROM item"
            " WHERE rowid IN (SELECT item FROM item_trigger WHERE trigger = ?) ORDER BY rowid",
            (trigger,),
        ).fetchall()
    except sqlite3.Error as err:
        log.warning("live indexes of %s and %s unreadable: %s", running_path, queued_path, err)
        return None
    finally:
        for conn in (running, queued):
            if conn is not None:
                conn.close()
    running_jobs = _jobs(jobs, running_path)
    if running_jobs is None:
        return None
    return running_jobs, [livestate.queued_item(*row) for row in items]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def live_uuid(queued_path, running_path, uuid: str) -> str | None | bool:
    """ "In progress", "Queued" or None for a uuid; False when either index is missing."""
    running = _open(running_path)
    queued = _open(queued_path)
    try:
        if running is None or queued is None:
            return False
        if running.execute("SELECT 1 FROM job WHERE uuid = ? LIMIT 1", (uuid,)).fetchone():
            return "In progress"
        if queued.execute("SELECT 1 FROM item WHERE uuid = ? LIMIT 1", (uuid,)).fetchone():
            return "Queued"
        return None
    except sqlite3.Error as err:
        log.warning("live indexes unreadable: %s", err)
        return False
    finally:
        for conn in (running, queued):
            if conn is not None:
                conn.close()


def file_versions(*paths: str | os.PathLike | None) -> tuple | None:
    """The versions of live files and of their indexes, what answers made from them are kept by; None if one is missing.

    An index is renamed into place: its inode changes with each version.
    """
    found = []
    for path in paths:
        if not path:
            return None
        try:
            data, index = os.stat(path), os.stat(index_path(path))
        except OSError:
            return None
        found.append((data.st_mtime_ns, data.st_size, index.st_ino, index.st_mtime_ns, index.st_size))
    return tuple(found)


#: ``(versions, counts)`` of the last counts() answer: the home page asks on every request,
#: and the files change about once a minute.
_last_counts: tuple[tuple, tuple[int, int, dict[str, dict[str, int]]]] | None = None


def counts(queued_path, running_path) -> tuple[int, int, dict[str, dict[str, int]]] | None:
    """``(running, queued, per arch {"running", "queued"})``; None when either index is missing.

    Counted once per version of the two files (the answer is a fresh copy each time).
    """
    global _last_counts
    versions = file_versions(queued_path, running_path)
    last = _last_counts
    if versions is None or last is None or last[0] != versions:
        found = _count(queued_path, running_path)
        if found is None:
            return None
        last = (versions, found)
        if versions is not None:
            _last_counts = last
    total_running, total_queued, per_arch = last[1]
    return total_running, total_queued, {arch: dict(each) for arch, each in per_arch.items()}


def _count(queued_path, running_path) -> tuple[int, int, dict[str, dict[str, int]]] | None:
    running = _open(running_path)
    queued = _open(queued_path)
    try:
        if running is None or queued is None:
            return None
        per_arch: dict[str, dict[str, int]] = {}
        total_running = total_queued = 0
        for arch, count in running.execute("SELECT arch, COUNT(*) FROM job GROUP BY arch"):
            per_arch.setdefault(arch, {"running": 0, "queued": 0})["running"] += count
            total_running += count
        for arch, size in queued.execute("SELECT arch, SUM(size) FROM queue GROUP BY arch"):
            per_arch.setdefault(arch, {"running": 0, "queued": 0})["queued"] += size
            total_queued += size
        return total_running, total_queued, per_arch
    except sqlite3.Error as err:
        log.warning("live indexes unreadable: %s", err)
        return None
    finally:
        for conn in (running, queued):
            if conn is not None:
                conn.close()
