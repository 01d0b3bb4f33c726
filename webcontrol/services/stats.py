# SPDX-License-Identifier: GPL-3.0-or-later
"""autopkgtest-stats: per release/arch counters of the public DB into stats.json (hourly).

``stats.json`` is ``{"<rel>": {"<arch>": {"numpkgs", "numpkgspass",
"passruns", "failruns"}}}`` with all four counters always written (docs/formats.rst, stats.json). When the config has an ``[influxdb]`` section the same
numbers are also pushed as InfluxDB points (line protocol over HTTP).
"""

from __future__ import annotations

import argparse
import logging
import os

from webcontrol import db, history, httpclient
from webcontrol.atomicfile import write_json_atomic
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import ProgramError, run_program

log = logging.getLogger(__name__)

MEASUREMENT = "autopkgtest_package_stats"
COUNTERS = ("numpkgs", "numpkgspass", "passruns", "failruns")
INFLUX_TIMEOUT_S = 30
#: The stats job scans the whole DB; allow it much longer than a page.
QUERY_TIMEOUT_MS = 30 * 60 * 1000


def compute(public_db: str) -> dict[str, dict[str, dict[str, int]]]:
    """The stats.json value from the public DB. Raises DatabaseError, sqlite3.Error."""
    conn = db.connect_ro(public_db, timeout_ms=QUERY_TIMEOUT_MS)
    try:
        found = history.statistics(conn)
    finally:
        conn.close()
    return {
        release: {arch: {name: getattr(entry, name) for name in COUNTERS} for arch, entry in sorted(arches.items())}
        for release, arches in sorted(found.items())
    }


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def influx_lines(stats: dict, instance: str) -> list[str]:
    """InfluxDB line-protocol points: one ``count`` per counter, one ``percentage`` per release/arch."""
    lines = []
    for release, arches in stats.items():
        for arch, counters in arches.items():
            tags = f"release={_escape_tag(release)},arch={_escape_tag(arch)}"
            for name in COUNTERS:
                lines.append(
                    f"{MEASUREMENT},{tags},stat={name},instance={_escape_tag(instance)} count={counters[name]}i"
                )
            total = counters["numpkgs"]
            rate = round(100.0 * counters["numpkgspass"] / total, 2) if total else 0.0
            lines.append(
                f"{MEASUREMENT},{tags},stat=pass_percentage,instance={_escape_tag(instance)} percentage={rate:.2f}"
            )
    return lines


def push_influx(config: Config, stats: dict) -> None:
    """POST the points to ``/write`` of the configured InfluxDB. Raises ProgramError."""
    host = config.need("influxdb", "influxdb_hostname")
    port = config.get("influxdb", "influxdb_port")
    database = config.need("influxdb", "influxdb_database")
    instance = config.get("influxdb", "influxdb_context") or ""
    body = ("\n".join(influx_lines(stats, instance)) + "\n").encode()
    url = f"http://{host}:{port}/write"
    user = config.get("influxdb", "influxdb_username")
    auth = (user, config.get("influxdb", "influxdb_password") or "") if user else None
    try:
        response = httpclient.session().post(
            url, params={"db": database, "precision": "s"}, data=body, auth=auth, timeout=INFLUX_TIMEOUT_S
        )
    except httpclient.Error as err:
        raise ProgramError(f"cannot push statistics to InfluxDB at {host}:{port}: {httpclient.describe(err)}") from None
    if not response.ok:
        raise ProgramError(
            f"cannot push statistics to InfluxDB at {host}:{port}: HTTP {response.status_code} {response.text[:200]}"
        )
    log.info("pushed %d points to InfluxDB %s:%s/%s", body.count(b"\n"), host, port, database)


def _has_influx(config: Config) -> bool:
    return bool(config.get("influxdb", "influxdb_hostname"))


def _run(args: argparse.Namespace, config: Config) -> int:
    return periodic.run_passes("autopkgtest-stats", lambda: _pass(args, config))


def _pass(args: argparse.Namespace, config: Config) -> int:
    public_db = config.need("web", "database_public")
    folder = config.need("web", "stats_cache_dir")
    if not os.path.exists(public_db):
        raise ProgramError(f"public DB {public_db} does not exist (has publish-db run?)")
    stats = compute(public_db)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "stats.json")
    write_json_atomic(target, stats)
    log.info("wrote %s: %d releases", target, len(stats))
    if _has_influx(config) and not args.no_influx:
        push_influx(config, stats)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-influx", action="store_true", help="do not push to InfluxDB even if configured")


def main(argv=None) -> int:
    return run_program(
        "Count packages, passing packages, passed and failed runs per release and arch in the public DB, "
        "write <[web] stats_cache_dir>/stats.json, and push them to InfluxDB when [influxdb] is configured.",
        _run,
        _arguments,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
