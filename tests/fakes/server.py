# SPDX-License-Identifier: GPL-3.0-or-later
"""A real HTTP server on 127.0.0.1 running a WSGI app in a background thread."""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import make_server


class ThreadedServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        # werkzeug logs every request at INFO; tests only need errors.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"fake-{self.port}", daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
