# SPDX-License-Identifier: GPL-3.0-or-later
"""Several threads calling at once while the first call in is held (tests of "one build per version")."""

from __future__ import annotations

import threading
from collections.abc import Callable


def call_together(call: Callable[[], object], started: threading.Event, release: threading.Event, count: int = 8):
    """What ``call()`` returned in each of ``count`` threads, started together.

    The loader under test sets ``started`` and waits for ``release``: every
    thread is running by the time the first call is let go.
    """
    got = []
    threads = [threading.Thread(target=lambda: got.append(call())) for _ in range(count)]
    for thread in threads:
        thread.start()
    started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    return got
