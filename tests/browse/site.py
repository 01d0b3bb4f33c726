# SPDX-License-Identifier: GPL-3.0-or-later
"""A complete browse.cgi site in a folder: public DB, local store, live-state files, caches, config.

Results go into the DB through the one write routine (``db.record_results``)
with realistic values; logs and PPA results are the recorded real files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from webcontrol import config as configmod
from webcontrol import db, results
from webcontrol.atomicfile import write_json_atomic
from webcontrol.db import ResultRecord
from webcontrol.services import stats

DATA = Path(__file__).resolve().parents[1] / "data" / "client-data"
LOGS = {
    # name: (container, object directory)
    "results-chrony-armhf.log.gz": (
        "autopkgtest-noble-bryce-chrony-merge",
        "noble/armhf/c/chrony/20240326_184806_3f2a1@",
    ),
    "results-six-s390x.log.gz": ("autopkgtest-kinetic-bryce-six-fix", "kinetic/s390x/s/six/20220827_144521_9c1d2@"),
    "results-rabbitmq-server-armhf.log.gz": (
        "autopkgtest-jammy-bryce-rabbitmq-sru",
        "jammy/armhf/r/rabbitmq-server/20240513_125051_0b7e4@",
    ),
}
RELEASES = ["jammy", "noble"]
ARCHES = ["amd64", "arm64", "s390x"]
HELLO_UUID = "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10"
RUNNING_UUID = "84661c0e-2b8f-4a0e-9c55-3f7d1e2a6b48"
QUEUED_UUID = "5b0f2d3e-6a4c-4f0e-8d1b-2c9e7a6f4b31"
HEAVY_USER = "bryce"


@dataclass
class Site:
    root: Path
    config: configmod.Config
    public_db: Path
    store: Path
    records: list[ResultRecord]


def _run_id(day: int, second: int, suffix: int) -> str:
    return f"202402{day:02d}_{10 + second // 3600:02d}{(second // 60) % 60:02d}{second % 60:02d}_{suffix:05x}@"


def make_records() -> list[ResultRecord]:
    records = []
    # hello: a long history on noble/amd64 (paging), a few runs elsewhere.
    for n in range(250):
        exitcode = 4 if n % 10 == 7 or n == 248 else 0
        records.append(
            ResultRecord(
                release="noble",
                arch="amd64",
                package="hello",
                run_id=_run_id(1 + n // 20, n * 7, 0xA0000 + n),
                version=f"2.10-{3 + n // 100}",
                triggers=f"hello/2.10-{3 + n // 100}" + (" glib2.0/2.80.0-6" if n % 3 == 0 else ""),
                duration=300 + n,
                exitcode=exitcode,
                requester=HEAVY_USER if n % 2 else "",
                env="all-proposed=1" if n % 5 == 0 else "",
                uuid=HELLO_UUID if n == 249 else f"00000000-0000-4000-8000-{n:012x}",
            )
        )
    for release in RELEASES:
        for arch in ARCHES:
            if (release, arch) == ("noble", "amd64"):
                continue
            code = {"arm64": 8, "s390x": 16}.get(arch, 0)
            records.append(
                ResultRecord(release, arch, "hello", _run_id(25, 100, 0xB0001), "2.10-3", "hello/2.10-3", 303, code)
            )
    # libpng1.6: one failing run with a trigger and a requester; migration-reference runs.
    records.append(
        ResultRecord(
            "noble", "amd64", "libpng1.6", _run_id(26, 5, 0xC0001), "1.6.43-5", "libpng1.6/1.6.43-5", 125, 12, "joe"
        )
    )
    records.append(
        ResultRecord(
            "noble", "arm64", "libpng1.6", _run_id(26, 9, 0xC0002), "1.6.43-5", results.MIGRATION_REFERENCE, 99, 0
        )
    )
    records.append(
        ResultRecord(
            "noble", "amd64", "glib2.0", _run_id(27, 1, 0xC0003), "2.80.0-6", results.MIGRATION_REFERENCE, 61, 4
        )
    )
    # A very old run without uuid or suffix, and an odd exit code.
    records.append(ResultRecord("jammy", "amd64", "six", "20220827_144521@", "1.16.0-4", "six/1.16.0-4", 42, 42, ""))
    # chrony on noble: the distro copy of the recorded chrony log (log viewer on a DB run).
    records.append(
        ResultRecord(
            "noble", "armhf", "chrony", "20240326_184806_3f2a1@", "4.5-1ubuntu1", "dpkg/1.22.6ubuntu5", 1581, 4
        )
    )
    return records


def _running(sample: Path) -> dict:
    tree = json.loads(sample.read_text())
    tree["hello"] = {
        results.run_key({"requester": "joe", "triggers": ["hello/2.10-4"], "uuid": RUNNING_UUID}): {
            "noble": {
                "amd64": [
                    {"requester": "joe", "triggers": ["hello/2.10-4"], "uuid": RUNNING_UUID},
                    5255,
                    "   12s autopkgtest [10:00:00]: starting <b>test</b>\n",
                ]
            }
        }
    }
    # A hostile or legacy file: a private run (readable-by) stored with its params and log.
    hidden = {"readable-by": ["secret-team"], "requester": "sneaky", "triggers": ["hello/9.9-secret"]}
    tree["hello"][results.run_key(hidden)] = {"jammy": {"s390x": [hidden, 60, "SECRET LOG LINE\n"]}}
    return tree


def _queued() -> dict:
    def body(package, params):
        return f"{package}\n{json.dumps(params, sort_keys=True)}"

    hello = body(
        "hello",
        {
            "requester": "joe",
            "submit-time": "2024-02-22 01:56:14+0000",
            "triggers": ["hello/2.10-4"],
            "uuid": QUEUED_UUID,
        },
    )
    queues = {}
    for context in results.CONTEXTS:
        queues[context] = {}
        for release in RELEASES:
            queues[context][release] = {arch: {"size": 0, "requests": []} for arch in ARCHES}
    queues["ubuntu"]["noble"]["amd64"] = {
        "size": 3,
        "requests": [hello, "private job", body("six", {"triggers": ["six/1.16.0-5"]})],
    }
    queues["huge"]["noble"]["arm64"] = {"size": 1, "requests": [body("hello", {"triggers": ["glib2.0/2.80.0-7"]})]}
    return {"releases": RELEASES, "arches": ARCHES, "queues": queues, "generated": "2026-11-29T09:08:20Z"}


def build(root: Path) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    public = root / "public" / "autopkgtest.db"
    public.parent.mkdir()
    records = make_records()
    conn = sqlite3.connect(public)
    db.create_public_schema(conn)
    conn.executemany(
        "INSERT INTO current_version(release, pocket, component, package, version) VALUES (?, ?, 'main', ?, ?)",
        [
            ("noble", "noble", "hello", "2.10-5"),
            ("noble", "noble", "libpng1.6", "1.6.43-5"),
            ("noble", "noble-updates", "glib2.0", "2.80.0-6"),
            ("jammy", "jammy", "six", "1.16.0-4"),
            ("jammy", "jammy", "hello", "1:2.10-2"),
        ],
    )
    conn.commit()
    conn.isolation_level = None
    db.record_results(conn, records)
    conn.close()
    digest = hashlib.sha256(public.read_bytes()).hexdigest()
    (root / "public" / "autopkgtest.db.sha256").write_text(digest)

    store = root / "results"
    for name, (container, directory) in LOGS.items():
        target = store / container / directory
        target.mkdir(parents=True)
        shutil.copyfile(DATA / "ppa-dev-tools" / name, target / "log.gz")
        (target / "artifacts.tar.gz").write_bytes(b"\x1f\x8b artifacts")
        (target / "result.tar").write_bytes(b"tar")
    chrony = store / "autopkgtest-noble" / "noble/armhf/c/chrony/20240326_184806_3f2a1@"
    chrony.mkdir(parents=True)
    shutil.copyfile(DATA / "ppa-dev-tools" / "results-chrony-armhf.log.gz", chrony / "log.gz")
    (store / "autopkgtest-empty").mkdir()

    cache = root / "cache"
    cache.mkdir()
    write_json_atomic(
        cache / "running.json", _running(DATA / "ubuntu-dev-tools" / "test_running_autopkgtests.RUN_DATA.json")
    )
    write_json_atomic(cache / "queued.json", _queued())
    write_json_atomic(
        cache / "ppa_containers.json",
        sorted(container for container, _ in LOGS.values()) + ["autopkgtest-noble-bryceson-other"],
    )
    alert = root / "alert"
    alert.write_text("warning:Maintenance <b>tonight</b>\n")
    values = {
        "web": {
            "database_public": str(public),
            "state_dir": str(root / "state"),
            "runtime_dir": str(root / "run"),
            "releases": " ".join(RELEASES),
            "site_url": "https://autopkgtest.example.com",
            "results_store": "local",
            "results_dir": str(store),
            "running_cache": str(cache / "running.json"),
            "amqp_queue_cache": str(cache / "queued.json"),
            "stats_cache_dir": str(cache),
            "ppa_containers_cache_dir": str(cache),
            "indexed_packages": str(cache / "indexed-packages.json"),
            "alert": str(alert),
        }
    }
    configmod.write(values, root / "autopkgtest-cloud.conf")
    cfg = configmod.load(str(root / "autopkgtest-cloud.conf"))
    assert stats.main(["--config", str(root / "autopkgtest-cloud.conf")]) == 0
    return Site(root=root, config=cfg, public_db=public, store=store, records=records)
