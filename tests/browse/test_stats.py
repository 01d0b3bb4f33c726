# SPDX-License-Identifier: GPL-3.0-or-later
"""autopkgtest-stats: stats.json with all four counters, optional InfluxDB push over real HTTP."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from webcontrol import config as configmod
from webcontrol.services import stats


def test_stats_json_has_all_four_counters_even_when_small(site):
    data = json.loads((site.root / "cache" / "stats.json").read_text())
    for release, arches in data.items():
        for arch, counters in arches.items():
            assert set(counters) == {"numpkgs", "numpkgspass", "passruns", "failruns"}, (release, arch)
    # One package only: numpkgs 1 is still written (docs/formats.rst, stats.json).
    assert data["noble"]["armhf"] == {"numpkgs": 1, "numpkgspass": 0, "passruns": 0, "failruns": 1}
    assert data["noble"]["arm64"] == {"numpkgs": 2, "numpkgspass": 1, "passruns": 2, "failruns": 0}


class _Influx(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers.get("Authorization"), body.decode()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_influx_push_when_configured(site, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Influx)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        values = {
            "web": {"database_public": str(site.public_db), "stats_cache_dir": str(tmp_path)},
            "influxdb": {
                "influxdb_hostname": "127.0.0.1",
                "influxdb_port": server.server_address[1],
                "influxdb_username": "stats",
                "influxdb_password": "pw",
                "influxdb_database": "metrics",
                "influxdb_context": "staging",
            },
        }
        configmod.write(values, tmp_path / "c.conf")
        assert stats.main(["--config", str(tmp_path / "c.conf")]) == 0
    finally:
        server.shutdown()
        server.server_close()
    (path, auth, body) = _Influx.received[-1]
    assert path.startswith("/write?db=metrics") and auth.startswith("Basic ")
    lines = body.splitlines()
    assert ("autopkgtest_package_stats,release=noble,arch=amd64,stat=numpkgs,instance=staging count=3i") in lines
    assert any(line.endswith("percentage=33.33") and "arch=amd64" in line and "release=noble" in line for line in lines)
    assert json.loads((tmp_path / "stats.json").read_text())["noble"]["amd64"]["numpkgs"] == 3


def test_without_influx_section_nothing_is_pushed_and_errors_are_clean(site, tmp_path, capsys):
    configmod.write(
        {"web": {"database_public": str(tmp_path / "missing.db"), "stats_cache_dir": str(tmp_path)}},
        tmp_path / "c.conf",
    )
    assert stats.main(["--config", str(tmp_path / "c.conf")]) == 1
    assert "does not exist" in capsys.readouterr().err
    configmod.write({"web": {"database_public": str(site.public_db)}}, tmp_path / "d.conf")
    assert stats.main(["--config", str(tmp_path / "d.conf")]) == 2
    assert "stats_cache_dir" in capsys.readouterr().err
