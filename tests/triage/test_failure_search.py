# SPDX-License-Identifier: GPL-3.0-or-later
"""index-failures (backfill and consumer) and /search, with the recorded real logs."""

from __future__ import annotations

import datetime
import gzip
import shutil
import sqlite3
import threading
from pathlib import Path

import pika
import pytest

from tests.ingest.conftest import wait_for
from webcontrol import config as configmod
from webcontrol import db, failureindex, failurelog, results
from webcontrol.db import ResultRecord
from webcontrol.messages import CompletionMessage
from webcontrol.services import index_failures
from webcontrol.store.local import LocalStore
from webcontrol.web.browse import create_app

DATA = Path(__file__).resolve().parents[1] / "data" / "client-data" / "ppa-dev-tools"
TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def run_id(days_ago: int, n: int) -> str:
    return f"{TODAY - datetime.timedelta(days=days_ago):%Y%m%d}_1200{n:02d}_{0xE0000 + n:05x}@"


def real_lines(name: str) -> list[str]:
    return failurelog.excerpt_lines(failurelog.gzip_lines([(DATA / name).read_bytes()]))


# Excerpt rules on real logs --------------------------------------------------------------------


def test_failing_test_verdict_stderr_and_output_tail():
    lines = real_lines("results-six-s390x.log.gz")
    assert lines[0] == "test ramdiskluns.sh: FAIL non-zero exit status 1"
    assert lines[1] == "[Errno 20] Not a directory: '/sys/kernel/config/target/iscsi/cpus_allowed_list'"
    assert "Created LUN 2." in lines  # the test's last output lines
    assert "test saveconfig.sh: FAIL non-zero exit status 1" in lines
    assert not any("Setting up" in line for line in lines)  # preparation is not the failure


def test_test_suite_summary_near_the_end_of_the_failing_test():
    lines = real_lines("results-chrony-armhf.log.gz")
    assert lines[0] == "test upstream-simulation-test-suite: FAIL non-zero exit status 1"
    assert "  FAILED 4    (008-ntpera 115-cmdmontime 139-nts 145-rtc) (24508 24508 24508 24508)" in lines
    assert not any("run_system_tests" in line for line in lines)  # it passed
    assert not any(line.startswith("1581s") for line in lines)  # elapsed prefixes are removed


def test_testbed_failure_keeps_autopkgtests_own_error_lines():
    lines = real_lines("results-rabbitmq-server-armhf.log.gz")
    assert lines[0].startswith("<VirtSubproc>: failure: ['lxc', 'launch'")
    assert lines[1] == "autopkgtest: ERROR: testbed failure: unexpected eof from the testbed"


def test_unknown_shape_falls_back_to_the_last_lines_and_everything_is_capped():
    text = "\n".join(f"line {n} " + "x" * 1000 for n in range(100))
    lines = failurelog.excerpt_lines(text.split("\n"))
    assert lines[0].startswith("line 80 ") and len(lines) == failurelog.LAST_LINES
    capped = failurelog.cap(lines, 2000)
    assert len(capped.encode()) <= 2000 and capped.count("\n") == 3  # 4 lines of 400 characters + newline


# Backfill, retention and the page ---------------------------------------------------------------

RUNS = [
    # (release, arch, package, days ago, log, exit code)
    ("jammy", "s390x", "six", 1, "results-six-s390x.log.gz", 4),
    ("noble", "armhf", "chrony", 2, "results-chrony-armhf.log.gz", 4),
    ("jammy", "armhf", "rabbitmq-server", 3, "results-rabbitmq-server-armhf.log.gz", 16),
    ("noble", "s390x", "six", 5, "results-six-s390x.log.gz", 4),
    ("noble", "amd64", "six", 0, "results-six-s390x.log.gz", 0),  # passing: never indexed
    ("noble", "arm64", "six", 120, "results-six-s390x.log.gz", 4),  # beyond the 90-day retention
]
HOSTILE = b"autopkgtest [10:00:00]: @@@@@@@@@@@@@@@@@@@@ summary\nsmoke FAIL <script>alert(1)</script> & more\n"


@pytest.fixture(scope="module")
def indexed_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("failure-site")
    store = LocalStore(root / "results")
    records = []
    for n, (release, arch, package, days, log, code) in enumerate(RUNS):
        rid = run_id(days, n)
        name = f"{results.run_dir(release, arch, package, rid)}/log.gz"
        store.put_object(results.distro_container(release), name, (DATA / log).read_bytes(), "text/plain", "gzip")
        records.append(ResultRecord(release, arch, package, rid, "1.0-1", f"{package}/1.0-1", 30, code, ""))
    rid = run_id(4, 9)
    store.put_object(
        "autopkgtest-noble",
        f"{results.run_dir('noble', 'amd64', 'evil', rid)}/log.gz",
        gzip.compress(HOSTILE),
        "text/plain",
        "gzip",
    )
    records.append(ResultRecord("noble", "amd64", "evil", rid, "1", "evil/1", 30, 4, ""))
    records.append(ResultRecord("noble", "amd64", "nolog", run_id(4, 8), "1", "nolog/1", 30, 4, ""))
    public = root / "public" / "autopkgtest.db"
    public.parent.mkdir()
    conn = sqlite3.connect(public, isolation_level=None)
    db.create_public_schema(conn)
    db.record_results(conn, records)
    conn.close()
    values = {
        "web": {
            "database_public": public,
            "state_dir": root / "state",
            "releases": "jammy noble",
            "site_url": "https://autopkgtest.example.com",
            "results_store": "local",
            "results_dir": root / "results",
        }
    }
    configmod.write(values, root / "autopkgtest-cloud.conf")
    assert index_failures.main(["--config", str(root / "autopkgtest-cloud.conf"), "--backfill"]) == 0
    config = configmod.load(str(root / "autopkgtest-cloud.conf"))
    return config


@pytest.fixture(scope="module")
def client(indexed_site):
    return create_app(indexed_site).test_client()


def indexed_runs(config) -> set[tuple[str, str, str]]:
    conn = sqlite3.connect(failureindex.index_path(config))
    return {tuple(row) for row in conn.execute("SELECT release, arch, package FROM run")}


def test_backfill_indexes_failing_runs_in_the_retention_window(indexed_site):
    assert indexed_runs(indexed_site) == {
        ("jammy", "s390x", "six"),
        ("noble", "armhf", "chrony"),
        ("jammy", "armhf", "rabbitmq-server"),
        ("noble", "s390x", "six"),
        ("noble", "amd64", "evil"),
    }
    # A second backfill finds nothing new and changes nothing.
    path = failureindex.index_path(indexed_site)
    before = path.read_bytes()
    assert index_failures.main(["--config", indexed_site.path, "--backfill", "--since", "2020-01-01"]) == 0
    assert path.read_bytes() == before


def test_search_groups_by_package_and_release_newest_first_with_highlights(client):
    data = client.get("/api/v1/search?q=cpus_allowed_list").get_json()
    assert [(g["package"], g["release"]) for g in data["groups"]] == [("six", "jammy"), ("six", "noble")]
    line = data["groups"][0]["runs"][0]["lines"][0]
    assert [s for s in line if s["match"]] == [{"text": "cpus_allowed_list", "match": True}]
    assert (
        "".join(s["text"] for s in line)
        == "[Errno 20] Not a directory: '/sys/kernel/config/target/iscsi/cpus_allowed_list'"
    )


def test_filters_release_arch_and_dates(client):
    def packages(query):
        return [(g["package"], g["release"]) for g in client.get("/api/v1/search?" + query).get_json()["groups"]]

    assert packages("q=FAIL&release=noble") == [("chrony", "noble"), ("evil", "noble"), ("six", "noble")]
    assert packages("q=FAIL&arch=s390x") == [("six", "jammy"), ("six", "noble")]
    day = TODAY - datetime.timedelta(days=2)
    assert packages(f"q=FAIL&since={day}&until={day}") == [("chrony", "noble")]
    assert packages('q="testbed failure"') == [("rabbitmq-server", "jammy")]
    assert packages('q="failure testbed"') == []  # a phrase keeps its order


def test_paging_continues_with_older_matches(client):
    first = client.get("/api/v1/search?q=FAIL&limit=2").get_json()
    assert first["matches"] == 2 and first["next_before"]
    second = client.get(first["next_url"].replace("https://autopkgtest.example.com", "")).get_json()
    names = [g["package"] for page in (first, second) for g in page["groups"]]
    assert names == ["six", "chrony", "evil", "six"]


def test_html_escapes_log_text_and_marks_matches(client):
    page = client.get("/search?q=alert").get_data(as_text=True)
    assert "smoke: FAIL &lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt; &amp; more" in page
    assert "<script>alert" not in page


def test_bad_queries_are_400_and_no_query_shows_the_form(client):
    assert client.get("/api/v1/search?q=" + "x" * 300).status_code == 400
    assert client.get("/api/v1/search?q=a&since=yesterday").status_code == 400
    assert client.get("/api/v1/search?q=a&release=No!").status_code == 400
    assert client.get("/api/v1/search?q=%00").status_code == 400  # only separators: empty, not an FTS5 error
    # FTS5 syntax in user input is just text.
    assert client.get('/api/v1/search?q=NEAR(a b) "unbalanced').get_json()["groups"] == []
    page = client.get("/search").get_data(as_text=True)
    assert '<form class="search"' in page and "No failing run" not in page


def test_retention_drops_old_runs(tmp_path):
    conn = failureindex.connect(tmp_path / "f.db")
    entries = [
        failureindex.Entry("a", "noble", "amd64", run_id(days, n), "1", "a/1", 4, f"boom {n}")
        for n, days in enumerate((1, 89, 91, 400))
    ]
    assert failureindex.add(conn, entries) == 4
    assert failureindex.prune(conn, 90) == 2
    assert [hit.run_id for hit in failureindex.search(conn, "boom")] == [run_id(1, 0), run_id(89, 1)]


# Consumer on the real broker ----------------------------------------------------------------------


def test_consumer_indexes_failing_runs_from_testcomplete(tmp_path, amqp_uri, amqp_names):
    store = LocalStore(tmp_path / "results")
    messages = []
    for n, (package, code) in enumerate((("six", 4), ("hello", 0), ("glib2.0", 12))):
        rid = run_id(0, n)
        path = f"{results.run_dir('noble', 'amd64', package, rid)}"
        store.put_object("autopkgtest-noble", f"{path}/log.gz", (DATA / "results-six-s390x.log.gz").read_bytes())
        messages.append(
            CompletionMessage(
                "amd64",
                "autopkgtest-noble",
                code,
                package,
                "noble",
                path,
                30,
                "1.0-1",
                "",
                f"{package}/1.0-1",
                "",
                None,
            ).serialise()
        )
    exchange, queue = amqp_names.exchange("complete"), amqp_names.queue("index-failures")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange)
    for body in [b"not json", *messages]:
        channel.basic_publish(exchange, "", body, pika.BasicProperties(delivery_mode=2))
    connection.close()
    indexer = index_failures.Indexer(LocalStore(tmp_path / "results"), tmp_path / "failures.db", 4096, 90)
    consumer = index_failures.FailureConsumer(amqp_uri, indexer, exchange, queue, True)
    thread = threading.Thread(target=consumer.run_forever, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: indexer.counts["indexed"] == 2, timeout=30)
        assert wait_for(lambda: consumer.rejected == 1, timeout=5)
    finally:
        consumer.stop()
        thread.join(10)
    conn = sqlite3.connect(tmp_path / "failures.db")
    assert sorted(row[0] for row in conn.execute("SELECT package FROM run")) == ["glib2.0", "six"]
    shutil.rmtree(tmp_path / "results")


def test_consumer_declares_its_queue_with_the_configured_type(tmp_path, amqp_uri, amqp_names):
    """With [amqp] queue_type = quorum the indexer's durable queue is a quorum queue, as download-results' is."""
    exchange, queue = amqp_names.exchange("complete"), amqp_names.queue("index-failures")
    indexer = index_failures.Indexer(LocalStore(tmp_path / "results"), tmp_path / "failures.db", 4096, 90)
    consumer = index_failures.FailureConsumer(amqp_uri, indexer, exchange, queue, True, queue_type="quorum")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        consumer.declare(connection, connection.channel())
        # Re-declaring with the quorum type is refused (406) unless the queue already is one.
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        connection.close()
        indexer.close()
