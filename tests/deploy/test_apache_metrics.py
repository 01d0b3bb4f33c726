# SPDX-License-Identifier: GPL-3.0-or-later
"""/metrics under the real Apache with several mod_wsgi daemon processes.

Each scrape reaches one daemon process at random; the counters must still be
the totals of all of them, so successive scrapes never jump back and forth
(which Prometheus' rate() would read as counter resets).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy import apache
from tests.deploy.test_apache import Site, local_store_site

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

PROCESSES = 4
REQUESTS = 40
MAX_REQUESTS = 20 * REQUESTS
SCRAPES = 12
METRICS_ENDPOINT = "insight.metrics"


@pytest.fixture(scope="module")
def multi_site():
    # One thread per process: concurrent requests must spread over the processes.
    with local_store_site("autopkgtest-web-apache-metrics-", PROCESSES=str(PROCESSES), THREADS="1") as site:
        yield site


def scrape(site: Site) -> dict[tuple[str, tuple], float]:
    status, _, body = site.get("/metrics")
    assert status == 200, site.explain()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def outcome(samples: dict, status: str) -> float:
    return samples.get(("autopkgtest_request_outcomes_total", (("status", status),)), 0.0)


def metrics_scrapes(samples: dict) -> float:
    key = ("autopkgtest_page_latency_seconds_count", (("endpoint", METRICS_ENDPOINT),))
    return samples.get(key, 0.0)


def writer_pids(runtime: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in (runtime / "prometheus").glob("*.db")}


def test_counters_are_totals_of_all_processes_and_restart_clean(multi_site):
    site = multi_site
    unauthenticated = f"/request.cgi?release={site.release}&arch=amd64&package=hello&trigger=hello/1"
    # The answers must come from several processes, each writing its own file. Daemons that load the
    # apps when they start answer in a few ms each: one that is ready first may take a whole batch.
    sent = 0
    with ThreadPoolExecutor(max_workers=2 * PROCESSES) as pool:
        while sent < MAX_REQUESTS and (sent < REQUESTS or len(writer_pids(site.runtime)) < 2):
            statuses = list(pool.map(lambda _: site.get(unauthenticated)[0], range(REQUESTS)))
            assert statuses == [403] * REQUESTS, site.explain()
            sent += REQUESTS
    assert len(writer_pids(site.runtime)) >= 2, sorted((site.runtime / "prometheus").iterdir())

    first = scrape(site)
    seen = [metrics_scrapes(first)]
    for _ in range(SCRAPES):
        samples = scrape(site)
        # Whichever process answers, it reports every process's answers: no jumps.
        assert outcome(samples, "403") == sent
        seen.append(metrics_scrapes(samples))
    # Each scrape is counted once, after it answered: the count grows by exactly one per scrape.
    assert seen == [seen[0] + n for n in range(SCRAPES + 1)]

    # A new Apache run starts from zero, like any restarted exporter.
    site.server.stop()
    site.server.start()
    samples = scrape(site)
    assert outcome(samples, "403") == 0
    assert metrics_scrapes(samples) == 0
