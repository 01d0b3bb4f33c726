#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""What hostile inputs cost request.cgi and what they reach: Launchpad calls, files, queued messages.

Usage: python bench/trust_bounds.py [--copies 20000] [--starts 2000]

request.cgi (in this process) with the fake Launchpad, the fake OpenID
provider, a rogue OpenID provider and the fake GitHub (tests/fakes, real
HTTP on loopback) and the real broker on 127.0.0.1:5672, in queues of a
release unique to the run (deleted at the end). Concurrency runs the app
under werkzeug's threaded server with real client threads. Prints, per case:
the answer, the Launchpad calls made, the time taken, files added under
state_dir, messages that reached the queues, requests that reached the
rogue provider.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BROKER = os.environ.get("AUTOPKGTEST_WEB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def files_under(root: Path) -> tuple[int, int]:
    paths = [Path(d) / f for d, _dirs, files in os.walk(root) for f in files]
    return len(paths), sum(p.stat().st_size for p in paths)


def concurrently(count: int, send) -> list[int]:
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def run(index: int) -> None:
        request = send(index)
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as err:
            statuses.append(err.code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return sorted(statuses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20000, help="copies of one trigger in one request")
    parser.add_argument("--starts", type=int, default=2000, help="anonymous login starts")
    args = parser.parse_args()

    from tests.fakes.fixtures import drain, login
    from tests.fakes.github import FakeGitHub
    from tests.fakes.launchpad import FakeLaunchpad
    from tests.fakes.openid_provider import FakeOpenIDProvider
    from tests.fakes.rogue_openid import RogueOpenIDProvider
    from tests.fakes.server import ThreadedServer
    from tests.fakes.site import ALLOWED_TEAM, SITE_URL, make_site, unique_release
    from tests.security.conftest import (
        HOOK_SECRET,
        PPA,
        PROJECT,
        SHA,
        hook_headers,
        hook_query,
        pr_payload,
        session_cookie,
    )
    from tests.services.amqp import AmqpNames
    from webcontrol.web.request import create_app

    fakes = [FakeLaunchpad().start(), FakeOpenIDProvider().start(), RogueOpenIDProvider().start(), FakeGitHub().start()]
    launchpad, provider, rogue, gh = fakes
    release = unique_release()
    names = AmqpNames(BROKER)
    queues = [f"debci-{ctx}{release}-{arch}" for ctx in ("", "ppa-", "upstream-") for arch in ("amd64", "arm64")]
    names.queues.extend(queues)
    tmp = tempfile.TemporaryDirectory(prefix="trust-bounds-")
    try:
        tests = [(p, release, a) for p in ("hello", "gzip") for a in ("amd64", "arm64")]
        site = make_site(Path(tmp.name) / "site", release, tests, launchpad.url, BROKER, provider.url)
        site.set("github", "api_url", gh.url + "/")
        site.write_github({PROJECT: HOOK_SECRET}, [f"{PROJECT}:bot:tok"])
        launchpad.state.ppas.add(tuple(PPA.split("/")))
        launchpad.state.publish("hello", "1.0", release)
        launchpad.state.publish("lib1", "1.0", release)
        app = create_app(site.config)
        queued = lambda: sum(len(drain(BROKER, q)) for q in queues)  # noqa: E731

        def report(case: str, **figures) -> None:
            print(f"{case:58s} " + "  ".join(f"{k}={v}" for k, v in figures.items()), flush=True)

        # 1. One trigger repeated, by a user without upload rights (autopkgtest-cli's space-separated form).
        client = app.test_client()
        login(client, "mallory")
        query = urllib.parse.urlencode(
            {"release": release, "arch": "amd64", "package": "hello", "trigger": " ".join(["lib1/1.0"] * args.copies)}
        )
        before, started = launchpad.call_count(), time.monotonic()
        response = client.post("/request.cgi", data=query, content_type="application/x-www-form-urlencoded")
        report(
            f"{args.copies} copies of one trigger, no upload rights",
            status=response.status_code,
            launchpad_calls=launchpad.call_count() - before,
            seconds=f"{time.monotonic() - started:.2f}",
            queued=queued(),
        )
        # 2. Many distinct triggers.
        triggers = " ".join(f"lib{i}/1.0" for i in range(args.copies))
        query = urllib.parse.urlencode({"release": release, "arch": "amd64", "package": "hello", "trigger": triggers})
        before = launchpad.call_count()
        response = client.post("/request.cgi", data=query, content_type="application/x-www-form-urlencoded")
        report(
            f"{args.copies} distinct triggers",
            status=response.status_code,
            launchpad_calls=launchpad.call_count() - before,
            queued=queued(),
        )
        # 3. Anonymous login starts.
        state = Path(site.values["web"]["state_dir"])
        app.test_client().post("/login", data={"next": "/"})
        count, size = files_under(state)
        started = time.monotonic()
        for index in range(args.starts // 2):
            browser = app.test_client()
            browser.get(f"/login?next=/x{index}")
            browser.post("/login", data={"next": f"/y{index}"})
        after_count, after_size = files_under(state)
        report(
            f"{args.starts} anonymous login starts",
            files_added=after_count - count,
            bytes_added=after_size - size,
            seconds=f"{time.monotonic() - started:.2f}",
        )
        # 4. A rogue provider's unsolicited assertion for a victim in the allowed team.
        browser = app.test_client()
        location = browser.post("/login", data={"next": "/"}).location
        return_to = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["openid.return_to"][0]
        back = rogue.unsolicited(return_to, SITE_URL + "/", "victim", [ALLOWED_TEAM])
        response = browser.get(back[len(SITE_URL) :])
        with browser.session_transaction() as session:
            nick = session.get("nickname")
        report(
            "rogue provider assertion for 'victim'",
            status=response.status_code,
            session_nick=nick,
            requests_to_rogue=len(rogue.received),
        )
        # 5 and 6: real threads against a real server.
        site.set("web", "request_rate_limit", 5)
        launchpad.state.uploaders.add(("joe", "*"))
        for i in range(20):
            launchpad.state.publish(f"lib{i}", "1.0", release)
        limited = create_app(site.config)
        with ThreadedServer(limited) as server:
            body = json.dumps(pr_payload(f"{gh.url}/repos/systemd/systemd/statuses/{SHA}")).encode()
            headers = hook_headers(body, delivery="bench-delivery")
            url = f"{server.url}/request.cgi?{hook_query(site)}"
            statuses = concurrently(8, lambda i: urllib.request.Request(url, data=body, headers=headers))
            report("8 identical deliveries at once", statuses=statuses, queued=queued())
            cookie = session_cookie(limited, "joe")

            def rate_limited(index: int):
                query = urllib.parse.urlencode(
                    {"release": release, "arch": "amd64", "package": "hello", "trigger": f"lib{index}/1.0"}
                )
                return urllib.request.Request(
                    f"{server.url}/request.cgi?{query}", headers={"Cookie": f"session={cookie}"}
                )

            statuses = concurrently(20, rate_limited)
            report("20 requests at once, limit 5", statuses=statuses, queued=queued())
        report("requests that reached hosts other than LP/GitHub", rogue=len(rogue.received))
    finally:
        names.cleanup()
        for fake in fakes:
            fake.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
