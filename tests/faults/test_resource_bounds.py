# SPDX-License-Identifier: GPL-3.0-or-later
"""Resource bounds: huge query strings, 100,000 triggers, a 50 MB webhook body, a 10 GB gzip bomb.

The three web apps run in their own process behind a real threaded WSGI
server, so the test can read the server's peak RSS (VmHWM, reset before
each case through ``/proc/<pid>/clear_refs``). Each hostile request must be
refused or answered within a bounded amount of memory and time; the bomb
(a log.gz of 10 GB of zeros, ~10 MB on disk, generated on the fly) is put
where every reader of logs finds it: the local store's ``/results/``, the
log viewer, private-results, and update-github-jobs' log fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time

import pytest
import requests

from tests.fakes.fixtures import fake_github, fake_github_server, fake_launchpad, login, openid_provider  # noqa: F401
from tests.faults import hostile_site
from tests.faults.conftest import AppServer, record_figures, size
from tests.faults.workload import write_gzip_bomb
from webcontrol import github
from webcontrol.store.local import LocalStore
from webcontrol.web.request import create_app as create_request

GB = 1024**3
BOMB_RUN = "noble/amd64/h/hello/20240301_000000_b0b0b@"
#: Stated bound: no single hostile request may raise the server's peak RSS by more than this.
RSS_BOUND_MB = 300
#: The log viewer renders up to 32 MB of inflated text; its bound is separate (see RELIABILITY.md).
LOG_VIEWER_BOUND_MB = 150
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def env(tmp_path_factory, fake_launchpad):  # noqa: F811
    root = tmp_path_factory.mktemp("bounds")
    site = hostile_site.build(root, fake_launchpad.url, "http://127.0.0.1:9/")
    fake_launchpad.state.teams["joe"] = ["autopkgtest-requestors"]
    fake_launchpad.state.publish("hello", "2.10-5", "noble")
    bomb_size = size("bomb_gb", 10, 10) * GB
    store = LocalStore(site.values["web"]["results_dir"])
    store.put_object("autopkgtest-noble", f"{BOMB_RUN}/result.tar", b"x")
    bomb = root / "results" / "autopkgtest-noble" / BOMB_RUN / "log.gz"
    compressed = write_gzip_bomb(bomb, bomb_size)
    private = root / "results" / hostile_site.PRIVATE_CONTAINER / hostile_site.PRIVATE_RUN / "log.gz"
    private.unlink()
    private.hardlink_to(bomb)
    server = AppServer(site.config_path)
    client = create_request(site.config).test_client()  # same secret key file: its cookie works on the server
    login(client, "joe", teams=["autopkgtest-requestors"])
    cookie = client.get_cookie("session").value
    RESULTS.clear()
    yield {
        "site": site,
        "server": server,
        "cookie": cookie,
        "bomb": bomb,
        "bomb_size": bomb_size,
        "compressed": compressed,
    }
    server.stop()
    # The figures of whichever cases ran (any subset, in any order), reported once for the module.
    if RESULTS:
        record_figures(
            "resource bounds",
            {
                "rss_bound_mb": RSS_BOUND_MB,
                "log_viewer_rss_bound_mb": LOG_VIEWER_BOUND_MB,
                "bomb_decompressed_bytes": bomb_size,
                "bomb_compressed_bytes": compressed,
                "cases": dict(RESULTS),
                "max_peak_rss_delta_mb": max(
                    r.get("peak_rss_delta_mb", r.get("peak_rss_mb") or 0) for r in RESULTS.values()
                ),
            },
        )


def measure(env, name: str, method: str, path: str, timeout: float = 120, **kwargs) -> requests.Response | None:
    """Send one request; record status, bytes, seconds and the server's peak-RSS increase."""
    server = env["server"]
    server.reset_peak()
    before = server.memory_kb()
    started = time.monotonic()
    body_bytes = 0
    try:
        with requests.request(method, server.url + path, timeout=timeout, stream=True, **kwargs) as response:
            # Count the bytes on the wire: never let the client inflate a gzip body.
            for chunk in response.raw.stream(1024 * 1024, decode_content=False):
                body_bytes += len(chunk)
            status = response.status_code
    except requests.ConnectionError as err:
        # The server may close the connection on a refused upload before reading it all.
        response, status = None, f"connection closed ({type(err).__name__})"
    elapsed = time.monotonic() - started
    after = server.memory_kb()
    RESULTS[name] = {
        "status": status,
        "bytes": body_bytes,
        "seconds": round(elapsed, 2),
        "peak_rss_delta_mb": round((after["VmHWM"] - before["VmRSS"]) / 1024, 1),
    }
    assert server.process.poll() is None, f"server died on {name}"
    return response


def check(name: str, statuses: tuple, max_seconds: float = 60, bound_mb: float = RSS_BOUND_MB) -> None:
    result = RESULTS[name]
    assert result["status"] in statuses, (name, result)
    assert result["peak_rss_delta_mb"] < bound_mb, (name, result)
    assert result["seconds"] < max_seconds, (name, result)


@pytest.mark.parametrize("path", ["/recent", "/packages/hello", "/api/v1/recent", "/request.cgi", "/user/joe/"])
def test_huge_query_strings(env, path):
    for length in (60_000, 1_000_000):
        name = f"query {length // 1000} kB {path}"
        measure(env, name, "GET", path, params={"limit": "1" * 50, "x": "y" * length})
        check(name, (200, 301, 308, 400, 403, 404, 414, 431, "connection closed (ConnectionError)"))


def test_100000_triggers(env):
    triggers = [("trigger", f"hello/1.{i}") for i in range(100_000)]
    form = [("release", "noble"), ("arch", "amd64"), ("package", "hello"), *triggers]
    measure(env, "100000 triggers anonymous", "POST", "/request.cgi", data=form)
    check("100000 triggers anonymous", (403, 413))
    measure(env, "100000 triggers logged in", "POST", "/request.cgi", data=form, cookies={"session": env["cookie"]})
    check("100000 triggers logged in", (400, 413), max_seconds=30)


def test_50mb_webhook_body(env):
    body = json.dumps({"action": "opened", "pad": "x" * (50 * 1024 * 1024)}).encode()
    signature = "sha256=" + hmac.new(hostile_site.WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json", "X-Hub-Signature-256": signature}
    query = "?release=noble&arch=amd64&package=systemd-upstream&ppa=a/b"
    measure(env, "50 MB webhook body", "POST", "/github/webhook" + query, data=body, headers=headers)
    check("50 MB webhook body", (413, "connection closed (ConnectionError)"))


def test_gzip_bomb_served_raw_from_results(env):
    response = measure(env, "10 GB bomb via /results/", "GET", f"/results/autopkgtest-noble/{BOMB_RUN}/log.gz")
    check("10 GB bomb via /results/", (200,))
    assert RESULTS["10 GB bomb via /results/"]["bytes"] == env["compressed"]  # stored bytes, not inflated
    assert response.headers["Content-Encoding"] == "gzip"


def test_gzip_bomb_in_log_viewer(env):
    for api in ("", "/api/v1"):
        name = f"10 GB bomb via log viewer{' (JSON)' if api else ''}"
        measure(env, name, "GET", f"{api}/packages/h/hello/noble/amd64/{BOMB_RUN.rsplit('/', 1)[-1]}/log")
        # The viewer inflates at most 8 MB (logviewer.MAX_LOG_BYTES); rendering that cut costs more
        # (JSON escapes each NUL as \u0000). Stated bound for this route: LOG_VIEWER_BOUND_MB.
        check(name, (200,), bound_mb=LOG_VIEWER_BOUND_MB)


def test_gzip_bomb_via_private_results(env):
    path = f"/private-results/{hostile_site.PRIVATE_CONTAINER}/{hostile_site.PRIVATE_RUN}/log.gz"
    measure(env, "10 GB bomb via private-results", "GET", path, cookies={"session": env["cookie"]})
    check("10 GB bomb via private-results", (200,))
    assert RESULTS["10 GB bomb via private-results"]["bytes"] == env["compressed"]


def test_gzip_bomb_in_update_github_jobs_log_fallback(env, tmp_path, fake_github):  # noqa: F811
    """A damaged result.tar makes update-github-jobs read log.gz: it must not inflate 10 GB."""
    site = env["site"]
    release = "noble"
    statuses_url = fake_github.statuses_url("systemd", "systemd", "b" * 40)
    job_env = ["UPSTREAM_PULL_REQUEST=7", f"GITHUB_STATUSES_URL={statuses_url}"]
    pending = tmp_path / "pending"
    params = {
        "release": release,
        "arch": "amd64",
        "package": "systemd-upstream",
        "env": job_env,
        "ppas": ["upstream-systemd-ci/systemd-ci"],
        "created": time.time() - 60,
    }
    github.PendingJobs(pending).write(
        github.record_name(release, "amd64", "systemd-upstream", None, 7, statuses_url), params
    )
    results_dir = site.values["web"]["results_dir"]
    container = "autopkgtest-noble-upstream-systemd-ci-systemd-ci"
    run_dir = "noble/amd64/s/systemd-upstream/20300101_000000_aaaaa@"
    LocalStore(results_dir).put_object(container, f"{run_dir}/result.tar", b"damaged, not a tar")
    (env["bomb"].parents[6] / container / run_dir / "log.gz").hardlink_to(env["bomb"])
    conf = tmp_path / "ugj.conf"
    values = json.loads(json.dumps(site.values))
    values["github"]["pending_dir"] = str(pending)
    from webcontrol import config as configmod

    configmod.write(values, conf)
    code = (
        "import sys\n"
        "from webcontrol.services.update_github_jobs import main\n"
        "rc = main(sys.argv[1:])\n"
        # VmHWM belongs to this program's own address space; ru_maxrss would include the forking pytest's.
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    started = time.monotonic()
    # Bounded by an address-space limit, so that the unfixed program fails fast instead of eating the machine.
    done = subprocess.run(
        ["prlimit", f"--as={2 * GB}", sys.executable, "-c", code, "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    maxrss = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS")]
    RESULTS["10 GB bomb via update-github-jobs log fallback"] = {
        "status": f"exit {done.returncode}",
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(maxrss[0] / 1024, 1) if maxrss else None,
    }
    assert done.returncode == 0, done.stderr[-3000:]
    assert maxrss and maxrss[0] / 1024 < RSS_BOUND_MB
    # The log's header holds no command line with the job's env: no status, record kept.
    assert fake_github.statuses == [] and len(list(pending.iterdir())) == 1
