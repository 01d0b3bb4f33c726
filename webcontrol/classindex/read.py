# SPDX-License-Identifier: GPL-3.0-or-later
"""Read side of the classification index: a filtered ``/recent`` page in one index walk, big pages' classifications.

The index is attached read-only to the request's public-DB connection
under ``schema``. It is refreshed right after each publish, so for a moment
the public DB may hold results the index has not seen yet (rowid above its
watermark): those, and the results of their tests they may reclassify, are
classified live and merged in (:func:`freshness` bounds how many). An index
that does not match the public DB (the rw DB was rebuilt) or trails it by
more is not used; the caller falls back to classifying pages.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from webcontrol import newest, results
from webcontrol.classindex.build import ANY, CODES, affected_runs, entries
from webcontrol.classindex.build import NAMES as _NAMES
from webcontrol.history import _RESULT_COLUMNS, Result, _result
from webcontrol.sidecar import valid_watermark

log = logging.getLogger(__name__)

#: Results published after the index's last refresh that a page classifies live; more and the index is stale.
LIVE_MAX = 200
#: Results those may reclassify (the WINDOW after each late one) that a page classifies live, at most.
RECLASSIFY_MAX = 1_000


def attach(conn: sqlite3.Connection, path: Path, schema: str) -> bool:
    """Attach the index at ``path`` read-only to ``conn`` as ``schema``; False when it is missing or unreadable.

    Raises nothing: an unusable index only means the slower path.
    """
    if schema in {row[1] for row in conn.execute("PRAGMA database_list")}:
        return True
    if not path.exists():
        return False
    try:
        conn.execute(f"ATTACH DATABASE ? AS {schema}", (path.resolve().as_uri() + "?mode=ro",))
        conn.execute(f"SELECT 1 FROM {schema}.run_class WHERE class = 0 LIMIT 1").fetchall()
        conn.execute(f"SELECT 1 FROM {schema}.state LIMIT 1").fetchall()
    except sqlite3.Error as err:
        log.error("classification index %s unreadable: %s", path, err)
        if schema in {row[1] for row in conn.execute("PRAGMA database_list")}:
            conn.execute(f"DETACH DATABASE {schema}")
        return False
    return True


@dataclass(frozen=True)
class Freshness:
    """How the index relates to the public DB it is attached to."""

    watermark: int  # highest result rowid the index has seen
    pending: list[tuple]  # run_class rows, classified live, of the results past the watermark and those they affect


def freshness(conn: sqlite3.Connection, schema: str) -> Freshness | None:
    """The index's state when it describes this public DB closely enough to use; None otherwise.

    None when its watermark row is not this DB's (a rebuilt rw DB), when
    it is ahead of the DB, or when more than :data:`LIVE_MAX` results (or
    :data:`RECLASSIFY_MAX` results to reclassify) are past it. Reads at most
    LIVE_MAX * (1 + WINDOW) results.
    """
    state = dict(tuple(row) for row in conn.execute(f"SELECT name, value FROM {schema}.state"))
    watermark = valid_watermark(conn, state)
    if watermark is None:
        return None
    late = conn.execute(
        "SELECT test_id, run_id FROM result WHERE rowid > ? ORDER BY rowid LIMIT ?", (watermark, LIVE_MAX + 1)
    ).fetchall()
    if len(late) > LIVE_MAX:
        return None
    runs = affected_runs(conn, [tuple(row) for row in late]) if late else []
    if len(runs) > RECLASSIFY_MAX:
        return None
    return Freshness(watermark, entries(conn, runs))


@dataclass(frozen=True)
class Query:
    classification: str | None  # None: any (the page filters only release, arch, user or result)
    filters: newest.RecentFilter
    before: str | None = None


def _matches(entry: tuple, query: Query, codes: list[int] | None) -> bool:
    code, run_id, _rid, release, arch, requester, exitcode = entry
    f = query.filters
    return (
        (query.classification is None or code == CODES[query.classification])
        and (query.before is None or run_id < query.before)
        and (f.release is None or release == f.release)
        and (f.arch is None or arch == f.arch)
        and (f.requester is None or requester == f.requester)
        and (codes is None or exitcode in codes)
    )


def recent_page(
    conn: sqlite3.Connection,
    schema: str,
    fresh: Freshness,
    query: Query,
    limit: int,
    offset: int = 0,
    scan_max: int | None = None,
) -> newest.Page | None:
    """The newest results with a classification (before ``query.before``), filtered like /recent.

    Walks the index newest first: ``run_class``'s primary key (class,
    run_id), or with a user the partial covering index (class, requester, run_id, ...).
    Release, arch and result are filtered in the walk; with any of them it
    looks at the newest ``scan_max + offset`` entries at most (default
    newest.RECENT_SCAN_MAX, as :func:`newest.recent_page` does), and a page
    with fewer matches than ``limit`` ends there, ``next_before`` continuing
    the walk. Returns None when an index entry does not match the public DB
    (the caller then falls back).
    """
    scan_max = newest.RECENT_SCAN_MAX if scan_max is None else scan_max
    f = query.filters
    code = ANY if query.classification is None else CODES[query.classification]
    where, args = ["class = ?"], [code]
    if f.requester:
        where.append("requester = ?")
        args.append(f.requester)
    walk_where, walk_args = list(where), list(args)
    if query.before:
        walk_where.append("run_id < ?")
        walk_args.append(query.before)
    filtered, filter_args = [], []
    codes = results.codes_for_result(f.result) if f.result else None
    if f.release:
        filtered.append("release = ?")
        filter_args.append(f.release)
    if f.arch:
        filtered.append("arch = ?")
        filter_args.append(f.arch)
    if codes is not None:
        filtered.append(f"exitcode IN ({', '.join('?' * len(codes))})")
        filter_args += codes
    hint = " INDEXED BY run_class_user_ix" if f.requester else ""
    floor = None
    if filtered:
        row = conn.execute(
            f"SELECT run_id FROM {schema}.run_class{hint} WHERE {' AND '.join(walk_where)}"
            " ORDER BY run_id DESC LIMIT 1 OFFSET ?",
            [*walk_args, scan_max + offset - 1],
        ).fetchone()
        floor = row[0] if row else None
    clauses = [*walk_where, *filtered]
    clause_args = [*walk_args, *filter_args]
    if floor is not None:
        clauses.append("run_id >= ?")
        clause_args.append(floor)
    # Entries of results classified live replace the index's (which may be stale): fetch enough to drop them.
    replaced = {entry[2] for entry in fresh.pending}
    live = [
        (entry[1], entry[2])
        for entry in fresh.pending
        if _matches(entry, query, codes) and (floor is None or entry[1] >= floor)
    ]
    indexed = conn.execute(
        f"SELECT run_id, rid FROM {schema}.run_class{hint} WHERE {' AND '.join(clauses)}"
        " ORDER BY run_id DESC, rid DESC LIMIT ?",
        [*clause_args, offset + limit + len(replaced)],
    ).fetchall()
    merged = sorted({*(tuple(row) for row in indexed if row[1] not in replaced), *live}, reverse=True)
    chosen = merged[offset : offset + limit]
    rows = _results(conn, chosen)
    if rows is None:
        return None
    if len(rows) == limit:
        return newest.Page(rows, rows[-1].run_id)
    return newest.Page(rows, floor)


def _results(conn: sqlite3.Connection, chosen: list[tuple[str, int]]) -> list[Result] | None:
    """The results at the given (run_id, rowid), in order; None when one is not what the index says."""
    if not chosen:
        return []
    found = {}
    rowids = [rid for _run_id, rid in chosen]
    for start in range(0, len(rowids), 5000):
        part = rowids[start : start + 5000]
        for row in conn.execute(
            f"SELECT result.rowid, {_RESULT_COLUMNS} FROM result JOIN test ON test.id = result.test_id"
            f" WHERE result.rowid IN ({', '.join('?' * len(part))})",
            part,
        ):
            found[row[0]] = _result(tuple(row)[1:])
    out = []
    for run_id, rid in chosen:
        result = found.get(rid)
        if result is None or result.run_id != run_id:
            return None
        out.append(result)
    return out


#: A range walk for a block of rows reads at most this many index entries per row before giving up (the rows
#: are too sparse among all results, e.g. one test's history: classifying them live is cheaper).
RANGE_FACTOR = 4


def classifications(
    conn: sqlite3.Connection, schema: str, fresh: Freshness, rows: Sequence[Result]
) -> list[str | None]:
    """The stored classification of each row, in order; None for a row the index cannot tell apart.

    One walk of the index over the rows' run id range, in each class's
    run_id order (with rows of a single requester, in the covering user
    index), keeping the entries whose release, arch and exit code some row
    has: a block of a newest-first page (/recent, filtered or not, a user's
    results) reads about as many entries as it has rows. Entries are
    matched on (run_id, release, arch); a row matching none (not indexed)
    or several (two packages' runs with one run id) gets None, as do all
    rows when the walk finds more than :data:`RANGE_FACTOR` entries per row
    (rows too sparse among all results). The entries of results classified
    live (``fresh.pending``) replace the index's. Raises sqlite3.Error.
    """
    if not rows:
        return []
    where = [f"class IN ({', '.join(str(code) for code in CODES.values())})"]
    args: list = []
    hint = ""
    # Sets and bounds through C-level map()s, not a generator per column: a big page has 10,000 rows.
    requesters = set(map(_REQUESTER, rows))
    if len(requesters) == 1 and None not in requesters and "" not in requesters:
        where.append("requester = ?")
        args += requesters
        hint = " INDEXED BY run_class_user_ix"
    where.append("run_id BETWEEN ? AND ?")
    args += [min(map(_RUN_ID, rows)), max(map(_RUN_ID, rows))]
    for column, values in (
        ("release", set(map(_RELEASE, rows))),
        ("arch", set(map(_ARCH, rows))),
        ("exitcode", set(map(_EXITCODE, rows))),
    ):
        if None not in values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args += sorted(values)
    cap = RANGE_FACTOR * len(rows) + LIVE_MAX
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a page reads 10,000 of them
    found = cursor.execute(
        f"SELECT run_id, release, arch, class, rid FROM {schema}.run_class{hint} WHERE {' AND '.join(where)} LIMIT ?",
        [*args, cap + 1],
    ).fetchall()
    if len(found) > cap:
        return [None] * len(rows)
    if fresh.pending:
        replaced = {entry[2] for entry in fresh.pending}
        found = [entry for entry in found if entry[4] not in replaced]
        found += [(run_id, release, arch, code, rid) for code, run_id, rid, release, arch, *_rest in fresh.pending]
    # (run_id, release, arch) -> class, made and read through C-level map()s (10,000 entries a page).
    codes: dict[tuple, int | None] = dict(zip(map(_ENTRY_KEY, found), map(_ENTRY_CLASS, found), strict=True))
    if len(codes) < len(found):  # a key of two results (one run id, two packages): neither can be told
        seen: set[tuple] = set()
        for key in map(_ENTRY_KEY, found):
            if key in seen:
                codes[key] = None
            seen.add(key)
    return list(map(_NAMES.get, map(codes.get, map(_KEY, rows))))


_REQUESTER = operator.attrgetter("requester")
_RUN_ID = operator.attrgetter("run_id")
_RELEASE = operator.attrgetter("release")
_ARCH = operator.attrgetter("arch")
_EXITCODE = operator.attrgetter("exitcode")
_KEY = operator.attrgetter("run_id", "release", "arch")
_ENTRY_KEY = operator.itemgetter(0, 1, 2)
_ENTRY_CLASS = operator.itemgetter(3)
