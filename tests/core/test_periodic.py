# SPDX-License-Identifier: GPL-3.0-or-later
"""The periodic-program base: one lock per program, passes until a stop signal."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from webcontrol.services import periodic
from webcontrol.services.base import ProgramError


def test_a_second_copy_is_told_the_lock_is_held(tmp_path, caplog):
    lock = tmp_path / "sub" / "x.lock"
    caplog.set_level(logging.INFO)
    with periodic.single_instance(lock, "prog") as first:
        with periodic.single_instance(lock, "prog") as second:
            assert (first, second) == (True, False)
    assert f"{lock} is held by another prog; nothing to do" in caplog.text
    assert oct(lock.stat().st_mode & 0o777) == oct(periodic.LOCK_MODE)
    with periodic.single_instance(lock, "prog") as again:
        assert again  # released on leaving the block


def test_an_unopenable_lock_file_is_a_program_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ProgramError, match="cannot open lock file"):
        with periodic.single_instance(tmp_path / "file" / "x.lock", "prog"):
            pass


def test_one_pass_returns_its_exit_code_and_logs_its_time(caplog):
    caplog.set_level(logging.INFO)
    assert periodic.run_passes("prog", lambda: 1) == 1
    assert periodic.run_passes("prog", lambda: None) == 0
    assert caplog.text.count("prog: pass done in") == 2


def test_passes_are_spaced_by_the_interval_until_stopped():
    stopping = threading.Event()
    passes = []

    def one_pass() -> None:
        passes.append(time.monotonic())
        if len(passes) == 3:
            stopping.set()

    assert periodic.run_passes("prog", one_pass, every=0.2, stopping=stopping) == 0
    assert len(passes) == 3
    assert all(later - earlier >= 0.2 for earlier, later in zip(passes, passes[1:], strict=False))


def test_sigterm_ends_the_wait_between_passes_and_restores_the_handler(caplog):
    caplog.set_level(logging.INFO)
    passes = []

    def one_pass() -> int:
        passes.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        return 3

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert periodic.run_passes("prog", one_pass, every=60) == 3
    assert time.monotonic() - started < 5  # the 60 s wait ended at once
    assert passes == [1]
    assert "received signal 15, stopping" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is before
