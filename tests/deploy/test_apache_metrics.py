# SPDX-License-Identifier: GPL-3.0-or-later
"""/metrics under the real Apache with several mod_wsgi daemon processes.

Each scrape reaches one daemon process at random; the counters must still be
the totals of all of them, so successive scrapes never jump back and forth
(which Prometheus' rate() would read as counter resets).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy import apache
from tests.deploy.test_apache import Site, build_public_db, random_release, web_paths
from webcontrol import config as configmod

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

PROCESSES = 4
REQUESTS = 40
SCRAPES = 12
METRICS_ENDPOINT = "insight.metrics"


@pytest.fixture(scope="module")
def multi_site():
    release = random_release()
    base = apache.make_shared_tmpdir("autopkgtest-web-apache-metrics-")
    data, state, runtime, store = (base / name for name in ("data", "state", "runtime", "store"))
    for folder in (data, state, runtime, store):
        folder.mkdir()
    public_db = data / "autopkgtest.db"
    build_public_db(public_db, release)
    (runtime / "running.json").write_text("{}")
    conf = base / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {
                **web_paths(data, public_db, runtime, state, release),
                "results_store": "local",
                "results_dir": str(store),
                "openid_provider": "http://127.0.0.1:9/",
                "launchpad_api": "http://127.0.0.1:9/",
            },
        },
        conf,
    )
    apache.give_to_apache_user([*apache.tree(base, data, state, runtime, store), conf])
    # One thread per process: concurrent requests must spread over the processes.
    defines = {"CONF": str(conf), "PUBLIC_DB": str(public_db), "RUNNING_JSON": str(runtime / "running.json")}
    try:
        with apache.serving(base, {**defines, "PROCESSES": str(PROCESSES), "THREADS": "1"}) as server:
            site = Site(server, release, public_db, {})
            site.runtime = runtime
            yield site
    finally:
        if os.environ.get("AUTOPKGTEST_WEB_KEEP_APACHE_LOGS") is None:
            shutil.rmtree(base, ignore_errors=True)


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
    with ThreadPoolExecutor(max_workers=2 * PROCESSES) as pool:
        statuses = list(pool.map(lambda _: site.get(unauthenticated)[0], range(REQUESTS)))
    assert statuses == [403] * REQUESTS, site.explain()
    # The answers really came from several processes, each writing its own file.
    assert len(writer_pids(site.runtime)) >= 2, sorted((site.runtime / "prometheus").iterdir())

    first = scrape(site)
    seen = [metrics_scrapes(first)]
    for _ in range(SCRAPES):
        samples = scrape(site)
        # Whichever process answers, it reports every process's answers: no jumps.
        assert outcome(samples, "403") == REQUESTS
        seen.append(metrics_scrapes(samples))
    # Each scrape is counted once, after it answered: the count grows by exactly one per scrape.
    assert seen == [seen[0] + n for n in range(SCRAPES + 1)]

    # A new Apache run starts from zero, like any restarted exporter.
    site.server.stop()
    site.server.start()
    samples = scrape(site)
    assert outcome(samples, "403") == 0
    assert metrics_scrapes(samples) == 0
