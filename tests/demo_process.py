# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``autopkgtest-web-demo`` command as a child process, as a user starts it."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoProcess:
    """The demo serving ``root`` on a free loopback port; its stderr lines are collected."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webcontrol.services.demo", "--dir", str(root), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stderr, self.process.stdout)
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream) -> None:
        with stream:  # closed at the end of the output, so no pipe is left to the garbage collector
            for line in stream:
                self.lines.put(line)

    def wait_for(self, needle: str, timeout: float = 120.0) -> str:
        """The first output line containing ``needle``. Raises AssertionError on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"demo exited with {self.process.returncode}:\n" + "".join(self.log[-30:])
                    ) from None
                continue
            self.log.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} never appeared:\n" + "".join(self.log[-30:]))

    def output(self) -> str:
        """Everything the demo printed so far."""
        while not self.lines.empty():
            self.log.append(self.lines.get_nowait())
        return "".join(self.log)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for reader in self.readers:
            reader.join(10)
