# SPDX-License-Identifier: GPL-3.0-or-later
"""``GET /metrics``: Prometheus text exposition format (version 0.0.4), by prometheus_client.

Read from the data files at each scrape (the same in every process):

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

Summed over every web process (see :mod:`webcontrol.web.promstats`):

- ``autopkgtest_page_latency_seconds{endpoint}`` (histogram): time spent
  answering, per Flask endpoint.
- ``autopkgtest_request_outcomes_total{status}`` (counter): request.cgi's
  answers to test requests and webhooks by HTTP status.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import flask
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from webcontrol import db, flakiness, insight, livestate, results
from webcontrol.filecache import FileCache
from webcontrol.web import promstats
from webcontrol.web.appbase import ServiceUnavailable, app_config
from webcontrol.web.browse import context, live_data
from webcontrol.web.browse.insight import bp

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_EXTENSION = "insight_metrics"


def _before_request() -> None:
    flask.g.insight_started = time.perf_counter()


def _after_request(response: flask.Response) -> flask.Response:
    started = flask.g.pop("insight_started", None)
    if started is not None:
        endpoint = flask.request.url_rule.endpoint if flask.request.url_rule else "unmatched"
        histogram = flask.current_app.extensions[_EXTENSION].page_latency
        histogram.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    return response


@bp.record_once
def _install(state: flask.blueprints.BlueprintSetupState) -> None:
    """App-wide hooks: every page of the app is timed, not only this blueprint's."""
    state.app.extensions[_EXTENSION] = promstats.for_config(state.app.config["AUTOPKGTEST"])
    state.app.before_request(_before_request)
    state.app.after_request(_after_request)


def _db_values(_path: str) -> tuple[int, str | None, list]:
    """(highest result rowid, newest run_id, flaky counts) of the public DB.

    Raises sqlite3.Error, DatabaseError, ServiceUnavailable.
    """
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
    return (highest, newest, [tuple(row) for row in flaky])


#: Read once per published DB file: it only changes when publish-db swaps the file, and
#: counting flaky tests reads the whole partial index.
_db_cache: FileCache[tuple[int, str | None, list]] = FileCache(_db_values)


def _gauge(name: str, help_text: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=labels)


def _db_families() -> list[Metric]:
    up = _gauge("autopkgtest_public_db_up", "1 when the public DB could be read.")
    try:
        highest, newest, flaky = _db_cache.get(context.public_db_path())
    except (sqlite3.Error, db.DatabaseError, ServiceUnavailable) as err:
        log.warning("metrics: public DB unreadable: %s", err)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    found: list[Metric] = [up]
    found.append(CounterMetricFamily("autopkgtest_results_ingested", "Results stored in the public DB.", value=highest))
    stamp = None
    if newest:
        try:
            stamp = results.run_id_time(newest).timestamp()
        except ValueError:
            stamp = None
    if stamp is not None:
        newest_family = _gauge("autopkgtest_newest_result_timestamp_seconds", "End time of the newest stored run.")
        newest_family.add_metric([], stamp)
        lag = _gauge("autopkgtest_ingest_lag_seconds", "Now minus the end time of the newest stored run.")
        lag.add_metric([], round(max(0.0, time.time() - stamp), 3))
        found += [newest_family, lag]
    flaky_family = _gauge(
        "autopkgtest_flaky_tests", "Tests with at least two result flips on one version.", ["release", "arch"]
    )
    for release, arch, count in flaky:
        flaky_family.add_metric([release, arch], count)
    found.append(flaky_family)
    return found


def _live_families() -> list[Metric]:
    # From queued.json's index when cache-amqp wrote one: a scrape never makes the process parse the file.
    sizes = live_data.queue_summary()[1]["queue_sizes"]
    queue = _gauge(
        "autopkgtest_queue_size", "Requests waiting per queue (queued.json).", ["context", "release", "arch"]
    )
    for ctx in sorted(sizes):
        for rel in sorted(sizes[ctx]):
            for arch, size in sorted(sizes[ctx][rel].items()):
                queue.add_metric([ctx, rel, arch], size)
    counts: dict[tuple[str, str], int] = {}
    for job in livestate.running_jobs(context.running_raw()):
        counts[(job.release, job.arch)] = counts.get((job.release, job.arch), 0) + 1
    running = _gauge("autopkgtest_running_jobs", "Jobs running now (running.json).", ["release", "arch"])
    for (rel, arch), count in sorted(counts.items()):
        running.add_metric([rel, arch], count)
    return [queue, running]


def _file_families() -> list[Metric]:
    config = app_config()
    files = {
        "public_db": config.get("web", "database_public"),
        "running": config.get("web", "running_cache"),
        "queued": config.get("web", "amqp_queue_cache"),
        "stats": context.stats_path(),
        "indexed_packages": config.get("web", "indexed_packages"),
    }
    ages = {name: livestate.file_age(path) for name, path in files.items()}
    present = _gauge("autopkgtest_data_file_present", "1 when the data file exists.", ["file"])
    age_family = _gauge("autopkgtest_data_file_age_seconds", "Seconds since the data file was written.", ["file"])
    for name, age in ages.items():
        present.add_metric([name], int(age is not None))
        if age is not None:
            age_family.add_metric([name], round(age, 3))
    return [present, age_family]


class _DataFiles(Collector):
    """The families read from the DB and the JSON files, at scrape time."""

    def collect(self) -> list[Metric]:
        return _db_families() + _live_families() + _file_families()


@bp.route("/metrics")
def metrics():
    registry = flask.current_app.extensions[_EXTENSION].registry()
    registry.register(_DataFiles())
    response = flask.make_response(generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-cache"
    return response
