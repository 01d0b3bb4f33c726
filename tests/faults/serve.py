# SPDX-License-Identifier: GPL-3.0-or-later
"""Serve browse.cgi, request.cgi and private-results from one threaded WSGI server (fault tests).

``python -m tests.faults.serve CONFIG`` binds 127.0.0.1 on a free port,
prints the port on stdout, and serves until SIGTERM. Running the apps in
their own process lets a test measure the server's memory (``/proc/<pid>``)
and kill it without touching the test process.
"""

from __future__ import annotations

import logging
import signal
import sys

from werkzeug.serving import make_server

from webcontrol import config as configmod
from webcontrol.services.demo import make_wsgi_app


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    config = configmod.load(sys.argv[1])
    server = make_server("127.0.0.1", 0, make_wsgi_app(config), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_port, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
