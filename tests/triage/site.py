# SPDX-License-Identifier: GPL-3.0-or-later
"""A browse site where one upload (glib2.0/2.82.0-1) broke a few packages.

Built on the browse test site (tests/browse/site.py) plus results that tell
a story: libfoo and gtk3 passed before and fail with the new glib
(regressions, gtk3 on two releases), pango always failed, cairo failed once
and passed on retry (flaky), harfbuzz passes. Running and queued entries
carry the same trigger. The trigger index is built by the real refresh; the
failing runs get worker-like logs, indexed by ``index-failures --backfill``.
"""

from __future__ import annotations

import configparser
import json
import sqlite3
from pathlib import Path

from tests.browse import site as browsesite
from webcontrol import config as configmod
from webcontrol import db, demodata, results, triggerindex
from webcontrol.atomicfile import write_json_atomic
from webcontrol.db import ResultRecord
from webcontrol.services import index_failures
from webcontrol.store.local import LocalStore

TRIGGER = "glib2.0/2.82.0-1"
OLD_TRIGGER = "glib2.0/2.80.0-6"
RUNNING_UUID = "11111111-2222-4333-8444-555555555555"


def run_id(day: int, n: int) -> str:
    return f"202403{day:02d}_1000{n:02d}_{0xD0000 + day * 100 + n:05x}@"


def story() -> list[ResultRecord]:
    out = []

    def add(release, arch, package, day, n, version, triggers, exitcode):
        out.append(ResultRecord(release, arch, package, run_id(day, n), version, triggers, 300, exitcode, "joe"))

    for package in ("libfoo", "gtk3", "pango", "cairo", "harfbuzz"):
        for day in (1, 2):
            code = 4 if package == "pango" else 0
            add("noble", "amd64", package, day, 1, "1.0-1", f"{package}/1.0-1 {OLD_TRIGGER}", code)
    add("jammy", "amd64", "gtk3", 1, 2, "1.0-1", "gtk3/1.0-1", 0)
    # The upload.
    add("noble", "amd64", "libfoo", 5, 1, "1.0-1", TRIGGER, 4)
    add("noble", "amd64", "gtk3", 5, 2, "1.0-1", f"{TRIGGER} gtk3/1.0-1", 4)
    add("jammy", "amd64", "gtk3", 5, 3, "1.0-1", TRIGGER, 6)
    add("noble", "amd64", "pango", 5, 4, "1.0-1", TRIGGER, 4)
    add("noble", "amd64", "cairo", 5, 5, "1.0-1", TRIGGER, 4)
    add("noble", "amd64", "cairo", 6, 1, "1.0-1", TRIGGER, 0)
    add("noble", "amd64", "harfbuzz", 5, 6, "1.0-1", TRIGGER, 0)
    add("noble", "arm64", "libfoo", 5, 7, "1.0-1", TRIGGER, 0)
    return out


def _live(root: Path) -> None:
    cache = root / "cache"
    running = json.loads((cache / "running.json").read_text())
    params = {"requester": "joe", "triggers": [TRIGGER], "uuid": RUNNING_UUID}
    running["libfoo"] = {results.run_key(params): {"noble": {"s390x": [params, 120, "  5s running\n"]}}}
    write_json_atomic(cache / "running.json", running)
    queued = json.loads((cache / "queued.json").read_text())

    def body(package, triggers):
        return f"{package}\n{json.dumps({'triggers': triggers}, sort_keys=True)}"

    requests = queued["queues"]["ubuntu"]["noble"]["arm64"]["requests"]
    requests += [body("gtk3", [TRIGGER]), body("pango", [TRIGGER, "pango/1.0-2"]), body("six", ["six/1.16.0-5"])]
    queued["queues"]["ubuntu"]["noble"]["arm64"]["size"] = len(requests)
    write_json_atomic(cache / "queued.json", queued)


#: What the broken packages print; markup in a log must reach pages as text.
ERROR_LINES = (
    "/usr/bin/gtk-demo: symbol lookup error: undefined symbol: g_once_init_leave_pointer",
    "<b>not bold</b> & <script>alert('x')</script>",
)


def _logs(site: browsesite.Site, records: list[ResultRecord]) -> None:
    """Worker-like logs for the failing runs of the story, in the site's local store."""
    store = LocalStore(site.store)
    for record in records:
        if record.exitcode in results.PASSING_CODES:
            continue
        run = demodata.DemoRun(
            results.distro_container(record.release),
            record.release,
            record.arch,
            record.package,
            record.run_id,
            record.exitcode,
            record.version,
            record.triggers,
            record.duration,
            record.requester,
            False,
            None,
            "00000000-0000-4000-8000-000000000000",
            ERROR_LINES,
        )
        store.put_object(
            run.container, f"{run.swift_dir}/log.gz", demodata.make_log(run, ["upstream", "smoke"]), "text/plain"
        )


def build(root: Path) -> browsesite.Site:
    site = browsesite.build(root)
    conn = sqlite3.connect(site.public_db, isolation_level=None)
    db.record_results(conn, story())
    conn.close()
    _live(root)
    triggerindex.refresh(site.public_db, triggerindex.index_path(site.public_db))
    _logs(site, story())
    config_path = root / "autopkgtest-cloud.conf"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(config_path)
    parser.set("web", "failure_retention_days", "36500")  # the story is from 2024
    with open(config_path, "w") as handle:
        parser.write(handle)
    assert index_failures.main(["--config", str(config_path), "--backfill"]) == 0
    site.config = configmod.load(str(config_path))
    return site
