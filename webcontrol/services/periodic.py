# SPDX-License-Identifier: GPL-3.0-or-later
"""The shape of a periodic program: one lock, then one pass or a pass every N seconds.

A timer-started program (publish-db, update-github-jobs) runs one pass; a
looping one (cache-amqp --loop) runs passes until SIGTERM or SIGINT, which
end the wait between passes at once and let a running pass finish. Only
one copy runs per lock file (:func:`single_instance`): a second one logs
why and exits 0. Each pass's time is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from webcontrol.services.base import ProgramError, stop_signals

log = logging.getLogger(__name__)

LOCK_MODE = 0o644
# How often the wait between passes looks for a stop.
STOP_POLL = 0.5


@contextlib.contextmanager
def single_instance(path: str | os.PathLike, program: str) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` within the block; False (logged) when ``program`` already holds it.

    Raises ProgramError when the lock file cannot be opened.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 - closed below, after the block
    except OSError as err:
        raise ProgramError(f"cannot open lock file {path}: {err}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s is held by another %s; nothing to do", path, program)
            yield False
            return
        os.fchmod(handle.fileno(), LOCK_MODE)
        yield True


def run_passes(
    program: str,
    one_pass: Callable[[], int | None],
    every: float | None = None,
    stopping: threading.Event | None = None,
) -> int:
    """Run ``one_pass`` once, or every ``every`` seconds until SIGTERM or SIGINT (or ``stopping`` is set).

    Returns the last pass's exit code (None counts as 0). What a pass raises
    ends the program: a looping pass handles the failures it survives itself.
    """
    if every is None:
        return _timed(program, one_pass)
    stopping = stopping or threading.Event()
    with stop_signals(stopping.set):
        return repeat(program, one_pass, every, stopping)


def repeat(program: str, one_pass: Callable[[], int | None], every: float, stopping: threading.Event) -> int:
    """A pass every ``every`` seconds until ``stopping`` is set; the last pass's exit code."""
    while True:
        started = time.monotonic()
        code = _timed(program, one_pass)
        # Polled rather than stopping.wait(): a signal handler sets it in this same thread.
        while not stopping.is_set() and time.monotonic() - started < every:
            time.sleep(min(STOP_POLL, every))
        if stopping.is_set():
            return code


def _timed(program: str, one_pass: Callable[[], int | None]) -> int:
    started = time.monotonic()
    code = one_pass() or 0
    log.info("%s: pass done in %.2f s", program, time.monotonic() - started)
    return code
