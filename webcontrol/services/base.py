# SPDX-License-Identifier: GPL-3.0-or-later
"""What every console script shares: options, logging, config, signals, exit codes.

A program's ``main()`` is one call to :func:`run_program`, which turns the
expected start-up and operational failures into a one-line message on
stderr and a non-zero exit code (tracebacks are for bugs only).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence

from webcontrol import config as configmod

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


class ProgramError(Exception):
    """An operational failure that needs an operator (exit 1, one-line reason)."""


def _failure_types() -> tuple[type[BaseException], ...]:
    from webcontrol.amqp import BrokerError
    from webcontrol.db import DatabaseError
    from webcontrol.store import StoreError

    return (ProgramError, BrokerError, DatabaseError, StoreError, sqlite3.Error, OSError)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (journald adds timestamps under systemd)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pika logs every failed connect at ERROR with a traceback (8 lines per attempt while the
    # broker is down); our consumer base logs one line with the reason instead.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("swiftclient").setLevel(logging.CRITICAL)


def make_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"configuration file (default: ${configmod.ENV_VAR}, then {', '.join(configmod.SEARCH_PATHS)})",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration file for this program, print every problem and exit (2 when there is one)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


@contextlib.contextmanager
def stop_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT call ``stop`` (which only sets a flag).

    On leaving, the handlers found on entry are put back, and a signal that
    arrived meanwhile is passed on to them when an enclosing program installed
    them: a program run inside another one (download-all-results inside the
    demo) stops gracefully and then lets the enclosing program stop too.
    Python's own SIGINT handler is not called: a stopped program exits as it
    does on SIGTERM, not with KeyboardInterrupt.
    """
    received: list[int] = []

    def handler(signum, frame):
        log.info("received signal %d, stopping", signum)
        received.append(signum)
        stop()

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        for signum in dict.fromkeys(received):
            if callable(previous[signum]) and previous[signum] is not signal.default_int_handler:
                previous[signum](signum, None)


def run_program(
    description: str,
    body: Callable[[argparse.Namespace, configmod.Config], int | None],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
    needs_config: bool = True,
) -> int:
    """Parse options, set up logging, load config, run ``body``; map failures to exit codes."""
    parser = make_parser(description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.check_config:
        from webcontrol import configcheck

        return configcheck.report(args.config, [body.__module__.rsplit(".", 1)[-1]])
    setup_logging(args.verbose)
    try:
        config = configmod.load(args.config) if needs_config or args.config else None
        code = body(args, config)
    except configmod.ConfigError as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except _failure_types() as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    return EXIT_OK if code is None else code
