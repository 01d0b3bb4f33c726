# SPDX-License-Identifier: GPL-3.0-or-later
"""A browse site whose results went through the real path: demodata → LocalStore →
download-all-results → publish-db (with the incremental flakiness step).

Besides generated histories (steady, flaky, broken, regressed profiles) it
holds one crafted history with known answers: ``hello`` on noble/amd64
(:data:`HELLO`), and a short one on noble/arm64.
"""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import dataclass
from pathlib import Path

from webcontrol import config as configmod
from webcontrol import demodata, results
from webcontrol.services import download_all_results, publish_db
from webcontrol.store.local import LocalStore

RELEASES = ["jammy", "noble"]
ARCHES = ["amd64", "arm64"]
GENERATED = ["glib2.0", "libpng1.6", "systemd", "python3-defaults"]
USER = "carol"
START = datetime.datetime(2026, 1, 1, 12, 0, 0)

# (exitcode, version, triggers, requester, expected classification)
HELLO = [
    (0, "1.0-1", "hello/1.0-1", "", "pass"),
    (0, "1.0-1", "migration-reference/0", "", "pass"),
    (4, "1.0-2", "hello/1.0-2", USER, "regression"),
    (16, "1.0-2", "hello/1.0-2", USER, "tmpfail"),
    (4, "1.0-2", "hello/1.0-2 glib2.0/2.80.0-1", "", "regression"),
    (0, "1.0-3", "hello/1.0-3", USER, "fixed"),
    (8, "1.0-3", "hello/1.0-3", "", "neutral"),
    (99, "1.0-3", "hello/1.0-3", "", "denylisted"),
    (0, "1.0-3", "hello/1.0-3", "", "pass"),
    (4, "1.0-3", "hello/1.0-3", USER, "regression"),
    (0, "1.0-3", "hello/1.0-3", "", "flaky"),
    (4, "1.0-3", "glib2.0/2.80.0-1 hello/1.0-3", "", "flaky"),
]
#: Indexes of HELLO that change the test's state, with (previous, current).
HELLO_CHANGES = {
    0: (None, "pass"),
    2: ("pass", "fail"),
    5: ("fail", "pass"),
    6: ("pass", "neutral"),
    7: ("neutral", "denylisted"),
    8: ("denylisted", "pass"),
    9: ("pass", "fail"),
    10: ("fail", "pass"),
    11: ("pass", "fail"),
}
ARM64 = [(0, "1.0-1", "hello/1.0-1", "", "pass"), (4, "1.0-3", "hello/1.0-3", "", "regression")]


def crafted_run(arch: str, index: int, spec: tuple, minutes: int = 0) -> demodata.DemoRun:
    exitcode, version, triggers, requester, _expected = spec
    when = START + datetime.timedelta(hours=index, minutes=minutes)
    return demodata.DemoRun(
        container=results.distro_container("noble"),
        release="noble",
        arch=arch,
        package="hello",
        run_id=f"{when:%Y%m%d_%H%M%S}_{index:05x}@",
        exitcode=exitcode,
        version=version,
        triggers=triggers,
        duration=100 + 10 * index,
        requester=requester,
        all_proposed=False,
        testname=None,
        uuid=f"00000000-0000-4000-8000-{0xA000 + index + (100 if arch != 'amd64' else 0):012x}",
    )


@dataclass
class Site:
    root: Path
    config: configmod.Config
    config_path: str
    store: LocalStore
    hello: list[demodata.DemoRun]

    def ingest_and_publish(self, full: bool = False) -> None:
        args = ["--config", self.config_path] + (["--full"] if full else [])
        assert download_all_results.main(args) == 0
        assert publish_db.main(["--config", self.config_path]) == 0

    @property
    def public(self) -> Path:
        return Path(self.config.get("web", "database_public"))


def build(root: Path, runs_per_test: int = 8) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    store = LocalStore(root / "results")
    rng = random.Random(5)
    hello = [crafted_run("amd64", index, spec) for index, spec in enumerate(HELLO)]
    for run in hello + [crafted_run("arm64", index, spec) for index, spec in enumerate(ARM64)]:
        demodata.write_run(store, run, rng)
    demodata.write_runs(store, demodata.plan_runs(RELEASES, ARCHES, GENERATED, runs_per_test=runs_per_test, seed=7))
    archive = demodata.write_archive(root / "archive", {"noble": {"hello": "1.0-3"}, "jammy": {"glib2.0": "2.72-1"}})
    cache = root / "cache"
    cache.mkdir()
    queued = {
        "releases": RELEASES,
        "arches": ARCHES,
        "queues": {
            "ubuntu": {
                "noble": {"amd64": {"size": 2, "requests": ["private job", 'hello\n{"triggers": ["hello/1.0-4"]}']}}
            },
            "huge": {"jammy": {"arm64": {"size": 0, "requests": []}}},
        },
    }
    (cache / "queued.json").write_text(json.dumps(queued))
    running = {
        "hello": {
            results.run_key({"triggers": ["hello/1.0-4"]}): {
                "noble": {"amd64": [{"triggers": ["hello/1.0-4"]}, 300, "log tail\n"]}
            }
        }
    }
    (cache / "running.json").write_text(json.dumps(running))
    (root / "public").mkdir()
    values = {
        "web": {
            "database": str(root / "rw.db"),
            "database_public": str(root / "public" / "autopkgtest.db"),
            "state_dir": str(root / "state"),
            "runtime_dir": str(root / "run"),
            "releases": " ".join(RELEASES),
            "site_url": "https://autopkgtest.example.com",
            "results_store": "local",
            "results_dir": str(root / "results"),
            "archive_url": archive,
            "running_cache": str(cache / "running.json"),
            "amqp_queue_cache": str(cache / "queued.json"),
            "stats_cache_dir": str(cache),
            "indexed_packages": str(cache / "indexed-packages.json"),
        }
    }
    path = root / "autopkgtest-cloud.conf"
    configmod.write(values, path)
    site = Site(root, configmod.load(str(path)), str(path), store, hello)
    site.ingest_and_publish()
    return site
