# SPDX-License-Identifier: GPL-3.0-or-later
"""Newest-first pages over all tests (``/recent``) or one requester (``/user/<u>/``), with bounded cost.

Keyset paging on run_id (``before``); ``offset`` of old links is turned
into a keyset bound by an index-only walk where it can be, and filtered
pages look at a bounded window of rows. Also available as
``webcontrol.history.<name>``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from webcontrol import results

log = logging.getLogger(__name__)

#: Filtered pages read rows scattered over a multi-GB file: mapped, each costs a memory access
#: instead of a read() into a per-connection cache (3-4x faster at 10M results). Only for those
#: bounded scans: mapped pages count in the process's RSS.
MMAP_BYTES = 1 << 34


@contextmanager
def _mapped(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    try:
        yield
    finally:
        conn.execute("PRAGMA mmap_size = 0")


# Sorting a user's rows costs ~count row reads; walking result_run_ix and
# filtering costs ~(limit + offset) * total / count. Sort up to this many
# rows regardless (tests lower it to exercise the walk).
_USER_SORT_MAX = 2_000


@dataclass(frozen=True)
class RecentFilter:
    release: str | None = None
    arch: str | None = None
    requester: str | None = None
    result: str | None = None


#: A filtered /recent page looks at most at this many of the newest results (past ``before``);
#: when they hold fewer matches than asked, the page says where its scan stopped.
RECENT_SCAN_MAX = 5_000
#: ``offset`` of old links is honoured up to this; deeper pages use ``before`` (keyset paging).
OFFSET_MAX = 2_000


@dataclass(frozen=True)
class Page:
    """Rows of a newest-first page and where the next one starts (``run_id < next_before``)."""

    rows: list[Result] | LazyRows
    next_before: str | None


#: An unfiltered page longer than this reads its rows while it is sent, LAZY_CHUNK at a time.
LAZY_ROWS = 500
LAZY_CHUNK = 500


class LazyRows:
    """The rows of a big newest-first page, read a chunk at a time while the page is sent.

    A page of 10,000 rows scattered over a multi-GB DB takes tens of ms to read
    (more at 10M results): read up front, that is time before the first byte
    and 10,000 rows held at once. The page's length and oldest run id come
    from an index-only walk; each chunk is then its own short statement (the
    browse statement time limit applies to each, however slowly the client
    reads) continuing below the previous chunk's oldest run id. Iterating
    reads the rows again, unless ``keep`` (a page that reads them twice, as a
    history's chart and table do): then the first whole reading is kept, as
    indexing keeps them.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        sql: str,
        args: list,
        floor: str,
        before: str | None,
        length: int,
        keep: bool = False,
    ):
        self._conn, self._sql, self._args = conn, sql, args
        self._floor, self._before, self._length = floor, before, length
        self._keep = keep
        self._kept: list[Result] | None = None

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __iter__(self) -> Iterator[Result]:
        if self._kept is not None:
            yield from self._kept
            return
        if not self._keep:
            yield from self._read()
            return
        kept = []
        for row in self._read():
            kept.append(row)
            yield row
        self._kept = kept

    def first(self) -> Result | None:
        """The newest row, read alone (the rest of the page stays unread)."""
        if self._kept is not None:
            return self._kept[0] if self._kept else None
        bound, bound_args = (" AND result.run_id < ?", [self._before]) if self._before else ("", [])
        row = self._conn.execute(self._sql.format(bound=bound), [*self._args, self._floor, *bound_args, 1]).fetchone()
        return _result(row) if row else None

    def _read(self) -> Iterator[Result]:
        # Run ids may repeat across tests: a chunk starts at (<=) the previous chunk's last run id and
        # skips the rows of that run id already sent (the index walk gives ties the same order each time).
        upper, inclusive, skip, left = self._before, False, 0, self._length
        while left > 0:
            bound, bound_args = "", []
            if upper:
                bound, bound_args = (" AND result.run_id <= ?" if inclusive else " AND result.run_id < ?"), [upper]
            want = min(LAZY_CHUNK, left)
            sql = self._sql.format(bound=bound)
            rows = read_results(self._conn, sql, [*self._args, self._floor, *bound_args, want + skip])
            chunk = rows[skip:]
            yield from chunk
            if len(chunk) < want:
                return
            last = chunk[-1].run_id
            ties = sum(1 for row in rows if row.run_id == last)
            upper, inclusive, skip, left = last, True, ties, left - len(chunk)

    def __getitem__(self, index):
        if self._kept is None:
            self._kept = list(self)
        return self._kept[index]


def _lazy_page(
    conn: sqlite3.Connection,
    index: str | None,
    where: str,
    args: list,
    before: str | None,
    limit: int,
    rows_sql: str,
    keep: bool = False,
) -> Page:
    """A page of ``limit`` rows (LazyRows) of an index walk newest first, its bounds found index-only.

    ``where`` filters the index (``requester = ?`` or empty); ``rows_sql`` reads the rows with
    ``run_id >= floor``, ``{bound}`` for the upper bound and a LIMIT, from ``args``. ``index``:
    the one to walk (None: the planner's choice, the primary key for one test's rows).
    """
    clauses = [c for c in (where, "run_id < ?" if before else "") if c]
    sql = (
        f"SELECT COUNT(*), MIN(run_id) FROM (SELECT run_id FROM result{f' INDEXED BY {index}' if index else ''}"
        f"{' WHERE ' + ' AND '.join(clauses) if clauses else ''} ORDER BY run_id DESC LIMIT ?)"
    )
    count, floor = conn.execute(sql, [*args, *([before] if before else []), limit]).fetchone()
    if not count:
        return Page([], None)
    return Page(LazyRows(conn, rows_sql, args, floor, before, count, keep), floor if count == limit else None)


def history_page(conn: sqlite3.Connection, test_id: int, limit: int, before: str | None = None) -> Page:
    """The newest ``limit`` results of one test (before ``before``) as LazyRows, kept once read.

    The same rows as ``history()``; a history page sends its head before
    they are read, and reads them once for its chart and its table.
    """
    rows_sql = (
        f"SELECT {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id"
        " WHERE result.test_id = ? AND result.run_id >= ?{bound} ORDER BY result.run_id DESC LIMIT ?"
    )
    return _lazy_page(conn, None, "test_id = ?", [test_id], before, limit, rows_sql, keep=True)


def recent(
    conn: sqlite3.Connection,
    limit: int,
    offset: int = 0,
    filters: RecentFilter | None = None,
    requester_run_index: bool = False,
    before: str | None = None,
) -> list[Result]:
    """The newest results over all tests, optionally filtered (see :func:`recent_page`)."""
    return recent_page(conn, limit, offset, filters, requester_run_index, before).rows


def recent_page(
    conn: sqlite3.Connection,
    limit: int,
    offset: int = 0,
    filters: RecentFilter | None = None,
    requester_run_index: bool = False,
    before: str | None = None,
) -> Page:
    """The newest results (before ``before``), optionally filtered, with a bounded cost.

    Unfiltered, the page is ``limit + offset`` steps of result_run_ix. A
    filter may match few rows, so filtered pages look at the newest
    ``RECENT_SCAN_MAX + offset`` rows at most; when those hold fewer than
    ``limit`` matches the page is short and ``next_before`` continues the
    scan where it stopped.
    """
    filters = filters or RecentFilter()
    where, args = [], []
    if filters.release:
        where.append("test.release = ?")
        args.append(filters.release)
    if filters.arch:
        where.append("test.arch = ?")
        args.append(filters.arch)
    if filters.result:
        codes = results.codes_for_result(filters.result)
        where.append(f"result.exitcode IN ({','.join('?' * len(codes))})")
        args += codes
    if filters.requester:
        # A user filter goes through the per-user plan choice.
        return user_page(conn, filters.requester, limit, offset, where, args, requester_run_index, before)
    bound = " WHERE run_id < ?" if before else ""
    bound_args = [before] if before else []
    if not where:
        if offset:
            # The offset-th row found by an index-only walk; the page starts below it.
            start = _window_floor(conn, "", [], bound_args, offset)
            if start is None:
                return Page([], None)
            bound, bound_args, offset = " WHERE run_id < ?", [start], 0
        if limit > LAZY_ROWS:
            rows_sql = (
                f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_run_ix JOIN test ON test.id = result.test_id"
                " WHERE result.run_id >= ?{bound} ORDER BY result.run_id DESC LIMIT ?"
            )
            return _lazy_page(conn, "result_run_ix", "", [], (bound_args or [None])[0], limit, rows_sql)
        sql = (
            f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_run_ix JOIN test ON test.id = result.test_id"
            f"{bound.replace('run_id', 'result.run_id')} ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
        )
        rows = read_results(conn, sql, [*bound_args, limit, offset])
        return Page(rows, rows[-1].run_id if len(rows) == limit else None)
    floor = _window_floor(conn, "", [], bound_args, RECENT_SCAN_MAX + offset)
    sql = (
        f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_run_ix JOIN test ON test.id = result.test_id"
        f" WHERE result.run_id >= ?{bound.replace(' WHERE run_id', ' AND result.run_id')} AND {' AND '.join(where)}"
        " ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
    )
    with _mapped(conn):
        rows = read_results(conn, sql, [floor or "", *bound_args, *args, limit, offset])
    return Page(rows, rows[-1].run_id if len(rows) == limit else floor)


def _window_floor(conn: sqlite3.Connection, index_where: str, index_args: list, bound_args: list, window: int):
    """The oldest run id among the ``window`` newest (below ``before``) a filtered page may look at.

    An index-only walk. None when fewer rows are left: the page then reaches the oldest result.
    """
    index = "result_requester_run_ix" if index_where else "result_run_ix"
    clauses = [c for c in (index_where, "run_id < ?" if bound_args else "") if c]
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    row = conn.execute(
        f"SELECT run_id FROM result INDEXED BY {index}{where} ORDER BY run_id DESC LIMIT 1 OFFSET ?",
        [*index_args, *bound_args, window - 1],
    ).fetchone()
    return row[0] if row else None


def user_result_count(conn: sqlite3.Connection, requester: str) -> int:
    """How many results a user requested (covering scan of result_requester_idx)."""
    return conn.execute("SELECT COUNT(*) FROM result WHERE requester = ?", (requester,)).fetchone()[0]


def has_requester_run_index(conn: sqlite3.Connection) -> bool:
    """True when the DB has an index on result(requester, run_id) (proposed; not in the contract schema)."""
    for index in conn.execute("PRAGMA index_list(result)").fetchall():
        columns = [row[2] for row in conn.execute(f"PRAGMA index_info({index[1]})").fetchall()]
        if columns[:2] == ["requester", "run_id"]:
            return True
    return False


def user_page(
    conn: sqlite3.Connection,
    requester: str,
    limit: int,
    offset: int = 0,
    extra_where: Iterable[str] = (),
    extra_args: Iterable = (),
    requester_run_index: bool | None = None,
    before: str | None = None,
) -> Page:
    """A user's results, newest first, before ``before``.

    With the index on (requester, run_id) (``None``: look it up) this is one
    index walk; with more filters it looks at the user's newest
    ``RECENT_SCAN_MAX + offset`` results at most, as :func:`recent_page`
    does. Without that index there are two plans: sort the user's rows
    (cheap for a light user), or walk result_run_ix newest first and keep
    the user's rows (cheap for a heavy user); the count, a covering index
    scan, picks the cheaper one.
    """
    extra_where, extra_args = list(extra_where), list(extra_args)
    if requester_run_index is None:
        requester_run_index = has_requester_run_index(conn)
    bound_args = [before] if before else []
    bound = " AND result.run_id < ?" if before else ""
    if requester_run_index:
        if extra_where:
            floor = _window_floor(conn, "requester = ?", [requester], bound_args, RECENT_SCAN_MAX + offset)
            sql = (
                f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_requester_run_ix"
                f" JOIN test ON test.id = result.test_id WHERE result.requester = ? AND result.run_id >= ?{bound}"
                f" AND {' AND '.join(extra_where)} ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
            )
            args = [requester, floor or "", *bound_args, *extra_args, limit, offset]
            with _mapped(conn):
                rows = read_results(conn, sql, args)
            return Page(rows, rows[-1].run_id if len(rows) == limit else floor)
        if offset:
            start = _window_floor(conn, "requester = ?", [requester], bound_args, offset)
            if start is None:
                return Page([], None)
            bound, bound_args, offset = " AND result.run_id < ?", [start], 0
        if limit > LAZY_ROWS:
            rows_sql = (
                f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_requester_run_ix"
                " JOIN test ON test.id = result.test_id WHERE result.requester = ? AND result.run_id >= ?{bound}"
                " ORDER BY result.run_id DESC LIMIT ?"
            )
            before_bound = (bound_args or [None])[0]
            return _lazy_page(
                conn, "result_requester_run_ix", "requester = ?", [requester], before_bound, limit, rows_sql
            )
        sql = (
            f"SELECT {_RESULT_COLUMNS} FROM result INDEXED BY result_requester_run_ix"
            f" JOIN test ON test.id = result.test_id WHERE result.requester = ?{bound}"
            " ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
        )
        rows = read_results(conn, sql, [requester, *bound_args, limit, offset])
        return Page(rows, rows[-1].run_id if len(rows) == limit else None)
    where = ["result.requester = ?", *extra_where]
    count = user_result_count(conn, requester)
    if count == 0:
        return Page([], None)
    # MAX(rowid) is one b-tree seek and close to the row count.
    total = conn.execute("SELECT MAX(rowid) FROM result").fetchone()[0] or 0
    walk = count > _USER_SORT_MAX and count * count > (limit + offset) * total
    hint = " INDEXED BY " + ("result_run_ix" if walk else "result_requester_idx")
    sql = (
        f"SELECT {_RESULT_COLUMNS} FROM result{hint} JOIN test ON test.id = result.test_id"
        f" WHERE {' AND '.join(where)}{bound} ORDER BY result.run_id DESC LIMIT ? OFFSET ?"
    )
    rows = read_results(conn, sql, [requester, *extra_args, *bound_args, limit, offset])
    return Page(rows, rows[-1].run_id if len(rows) == limit else None)


# At the end: webcontrol.history re-exports this module's names, so either may be imported first.
from webcontrol.history import _RESULT_COLUMNS, Result, _result, read_results  # noqa: E402
