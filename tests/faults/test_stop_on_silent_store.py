# SPDX-License-Identifier: GPL-3.0-or-later
"""A stop ends download-all-results within seconds even when the store never answers.

systemd sends SIGTERM and kills the unit 90 s later; a run waiting on a
silent Swift (60 s per request, retried) must not sit out that timeout.
Nothing of the page in flight is committed, so the next run resumes there.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.faults.conftest import program, wait_for
from webcontrol import config as configmod
from webcontrol import db


class SilentServer:
    """Accepts TCP connections on loopback and never answers a byte."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


# Stuck listing a container's page, or (no release given or configured) listing the containers.
@pytest.mark.parametrize("releases", [["--release", "noble"], []])
def test_sigterm_ends_download_all_results_stuck_on_a_silent_store(tmp_path, releases):
    server = SilentServer()
    conf = tmp_path / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {"database": tmp_path / "rw.db", "results_store": "swift"},
            "swift": {
                "os_auth_url": f"http://127.0.0.1:{server.port}/auth/v1.0",
                "os_username": "test:tester",
                "os_password": "testing",
                "os_project_name": "test",
                "os_identity_api_version": "1",
            },
        },
        conf,
    )
    stderr = tmp_path / "stderr.log"
    try:
        with open(stderr, "wb") as errors:
            process = subprocess.Popen(program("download_all_results", "--config", str(conf), *releases), stderr=errors)
        try:
            wait_for(lambda: server.accepted, timeout=30)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = process.wait(timeout=15)
            elapsed = time.monotonic() - stopped
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        server.close()
    log = stderr.read_text()
    assert code == 0, log
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    assert "received signal 15, stopping" in log
    assert "Traceback" not in log
    conn = db.connect_ro(str(tmp_path / "rw.db"))
    try:
        assert db.get_marker(conn, "autopkgtest-noble") in (None, "")
    finally:
        conn.close()
