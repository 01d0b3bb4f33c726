# SPDX-License-Identifier: GPL-3.0-or-later
"""``GET /metrics``: Prometheus text exposition format (version 0.0.4).

Families:

- ``autopkgtest_results_ingested_total`` (counter): results in the public
  DB. Results are never deleted, so the highest result rowid is their
  count, read in O(1) instead of a COUNT(*) over millions of rows.
- ``autopkgtest_newest_result_timestamp_seconds`` and
  ``autopkgtest_ingest_lag_seconds`` (gauges): time of the newest run_id,
  and now minus that time.
- ``autopkgtest_public_db_up`` (gauge): 1 when the public DB could be read.
- ``autopkgtest_queue_size{context,release,arch}`` (gauge): from queued.json.
- ``autopkgtest_running_jobs{release,arch}`` (gauge): from running.json.
- ``autopkgtest_data_file_age_seconds{file}`` (gauge): age of the public DB,
  running.json, queued.json, stats.json and the indexed-packages JSON; a
  missing file has no sample and ``autopkgtest_data_file_present{file} 0``.
- ``autopkgtest_flaky_tests{release,arch}`` (gauge): tests listed on /flaky.
- ``autopkgtest_page_latency_seconds{endpoint}`` (histogram): time spent in
  this browse.cgi process per Flask endpoint, since the process started
  (each WSGI process keeps its own; Prometheus sums the scrapes).

- ``autopkgtest_request_outcomes_total{status}`` (counter): request.cgi's
  answers to test requests and webhooks by HTTP status, from the counts it
  keeps in ``<runtime_dir>/request-outcomes.json``.
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable

import flask

from webcontrol import db, flakiness, insight, livestate, results
from webcontrol.web import outcomes
from webcontrol.web.appbase import ServiceUnavailable, app_config
from webcontrol.web.browse import context
from webcontrol.web.browse.insight import bp

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_EXTENSION = "insight_latency"


class LatencyHistogram:
    """Per-endpoint request durations of this process (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, list] = {}  # endpoint -> [bucket counts..., count, sum]

    def observe(self, endpoint: str, seconds: float) -> None:
        slot = bisect.bisect_left(BUCKETS, seconds)
        with self.lock:
            entry = self.data.setdefault(endpoint, [0] * (len(BUCKETS) + 1) + [0.0])
            entry[slot] += 1  # slot len(BUCKETS) is the +Inf-only bucket
            entry[-1] += seconds

    def snapshot(self) -> dict[str, list]:
        with self.lock:
            return {key: list(value) for key, value in self.data.items()}


def _before_request() -> None:
    flask.g.insight_started = time.perf_counter()


def _after_request(response: flask.Response) -> flask.Response:
    started = flask.g.pop("insight_started", None)
    if started is not None:
        endpoint = flask.request.url_rule.endpoint if flask.request.url_rule else "unmatched"
        flask.current_app.extensions[_EXTENSION].observe(endpoint, time.perf_counter() - started)
    return response


@bp.record_once
def _install(state: flask.blueprints.BlueprintSetupState) -> None:
    """App-wide hooks: every page of the app is timed, not only this blueprint's."""
    state.app.extensions[_EXTENSION] = LatencyHistogram()
    state.app.before_request(_before_request)
    state.app.after_request(_after_request)


# Exposition ---------------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict, float]]) -> None:
        # Classic text format: a counter's family carries the _total name of its sample.
        sample_name = f"{name}_total" if kind == "counter" else name
        self.lines.append(f"# HELP {sample_name} {help_text}")
        self.lines.append(f"# TYPE {sample_name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{sample_name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, help_text: str, data: dict[str, list]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for endpoint in sorted(data):
            entry = data[endpoint]
            cumulative = 0
            for bound, count in zip(BUCKETS, entry, strict=False):
                cumulative += count
                self.lines.append(f"{name}_bucket{_labels({'endpoint': endpoint, 'le': repr(bound)})} {cumulative}")
            total = sum(entry[: len(BUCKETS) + 1])
            self.lines.append(f"{name}_bucket{_labels({'endpoint': endpoint, 'le': '+Inf'})} {total}")
            self.lines.append(f"{name}_count{_labels({'endpoint': endpoint})} {total}")
            self.lines.append(f"{name}_sum{_labels({'endpoint': endpoint})} {_number(float(entry[-1]))}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_db_cache_lock = threading.Lock()
_db_cache: dict[str, tuple[tuple, tuple]] = {}


def _db_values() -> tuple[int, str | None, list]:
    """(highest result rowid, newest run_id, flaky counts), read once per published DB file.

    The public DB only changes when publish-db swaps the file, and counting
    flaky tests reads the whole partial index, so the values are cached per
    (mtime, size) of the file. Raises sqlite3.Error, DatabaseError, ServiceUnavailable.
    """
    path = context.public_db_path()
    try:
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    with _db_cache_lock:
        cached = _db_cache.get(path)
        if stamp is not None and cached and cached[0] == stamp:
            return cached[1]
    conn = context.get_db()
    # Two statements: SQLite answers a lone MIN/MAX from an index, but scans for two in one SELECT.
    highest = conn.execute("SELECT MAX(rowid) FROM result").fetchone()[0] or 0
    newest = conn.execute("SELECT MAX(run_id) FROM result").fetchone()[0]
    flaky = []
    if flakiness.has_table(conn):
        flaky = conn.execute(
            f"SELECT release, arch, COUNT(*) FROM {flakiness.TABLE} WHERE flips >= {insight.MIN_FLIPS}"
            " GROUP BY release, arch ORDER BY release, arch"
        ).fetchall()
    values = (highest, newest, [tuple(row) for row in flaky])
    if stamp is not None:
        with _db_cache_lock:
            _db_cache[path] = (stamp, values)
    return values


def _db_families(out: Exposition) -> None:
    try:
        highest, newest, flaky = _db_values()
    except (sqlite3.Error, db.DatabaseError, ServiceUnavailable) as err:
        log.warning("metrics: public DB unreadable: %s", err)
        out.family("autopkgtest_public_db_up", "gauge", "1 when the public DB could be read.", [({}, 0)])
        return
    out.family("autopkgtest_public_db_up", "gauge", "1 when the public DB could be read.", [({}, 1)])
    out.family("autopkgtest_results_ingested", "counter", "Results stored in the public DB.", [({}, highest)])
    if newest:
        try:
            stamp = results.run_id_time(newest).timestamp()
        except ValueError:
            stamp = None
        if stamp is not None:
            out.family(
                "autopkgtest_newest_result_timestamp_seconds", "gauge", "End time of the newest stored run.",
                [({}, stamp)],
            )  # fmt: skip
            out.family(
                "autopkgtest_ingest_lag_seconds", "gauge", "Now minus the end time of the newest stored run.",
                [({}, round(max(0.0, time.time() - stamp), 3))],
            )  # fmt: skip
    out.family(
        "autopkgtest_flaky_tests", "gauge", "Tests with at least two result flips on one version.",
        [({"release": r, "arch": a}, n) for r, a, n in flaky],
    )  # fmt: skip


def _live_families(out: Exposition) -> None:
    sizes = livestate.queue_sizes(context.queued_raw())
    out.family(
        "autopkgtest_queue_size", "gauge", "Requests waiting per queue (queued.json).",
        [
            ({"context": ctx, "release": rel, "arch": arch}, size)
            for ctx in sorted(sizes) for rel in sorted(sizes[ctx]) for arch, size in sorted(sizes[ctx][rel].items())
        ],
    )  # fmt: skip
    running: dict[tuple[str, str], int] = {}
    for job in livestate.running_jobs(context.running_raw()):
        running[(job.release, job.arch)] = running.get((job.release, job.arch), 0) + 1
    out.family(
        "autopkgtest_running_jobs", "gauge", "Jobs running now (running.json).",
        [({"release": rel, "arch": arch}, n) for (rel, arch), n in sorted(running.items())],
    )  # fmt: skip


def _file_families(out: Exposition) -> None:
    config = app_config()
    files = {
        "public_db": config.get("web", "database_public"),
        "running": config.get("web", "running_cache"),
        "queued": config.get("web", "amqp_queue_cache"),
        "stats": context.stats_path(),
        "indexed_packages": config.get("web", "indexed_packages"),
    }
    ages = {name: livestate.file_age(path) for name, path in files.items()}
    out.family(
        "autopkgtest_data_file_present", "gauge", "1 when the data file exists.",
        [({"file": name}, int(age is not None)) for name, age in ages.items()],
    )  # fmt: skip
    out.family(
        "autopkgtest_data_file_age_seconds", "gauge", "Seconds since the data file was written.",
        [({"file": name}, round(age, 3)) for name, age in ages.items() if age is not None],
    )  # fmt: skip


def _request_families(out: Exposition) -> None:
    counts = outcomes.load(outcomes.outcomes_path(app_config()))
    out.family(
        "autopkgtest_request_outcomes",
        "counter",
        "Answers of request.cgi to test requests and webhooks, by HTTP status.",
        [({"status": status}, count) for status, count in sorted(counts.items())],
    )


@bp.route("/metrics")
def metrics():
    out = Exposition()
    _db_families(out)
    _live_families(out)
    _file_families(out)
    _request_families(out)
    out.histogram(
        "autopkgtest_page_latency_seconds",
        "Time this browse.cgi process took to answer requests, per endpoint.",
        flask.current_app.extensions[_EXTENSION].snapshot(),
    )
    response = flask.make_response(out.text())
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-cache"
    return response
