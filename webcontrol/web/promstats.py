# SPDX-License-Identifier: GPL-3.0-or-later
"""Counters the web apps keep across all their processes, for ``/metrics``.

Under Apache the apps run in several mod_wsgi daemon processes and each
scrape of ``/metrics`` reaches one of them at random. So counters and
histograms live in prometheus_client's multiprocess mode: every process
writes its samples to memory-mapped files in ``<runtime_dir>/prometheus/``
and the scrape sums all the files. Files of processes that have exited stay
(their counts remain part of the totals, so a recycled daemon never makes a
counter go down); the folder is emptied when a new Apache (or demo server)
starts, as a restart of a single-process exporter would reset it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from webcontrol import atomicfile
from webcontrol.config import Config

log = logging.getLogger(__name__)

DIR_NAME = "prometheus"
GENERATION_FILE = "generation"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProcessMetrics:
    """The metrics every web process updates, stored in one shared folder."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.request_outcomes = Counter(
            "autopkgtest_request_outcomes",
            "Answers of request.cgi to test requests and webhooks, by HTTP status.",
            ["status"],
            registry=None,
        )
        self.page_latency = Histogram(
            "autopkgtest_page_latency_seconds",
            "Time the web apps took to answer requests, per endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def registry(self) -> CollectorRegistry:
        """A registry that reads the samples of every process from the folder."""
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(self.directory))
        return registry


_lock = threading.Lock()
_current: ProcessMetrics | None = None


def metrics_dir(config: Config) -> Path:
    return Path(config.get("web", "runtime_dir")) / DIR_NAME


def for_config(config: Config) -> ProcessMetrics:
    """This process's metrics, writing into the configured folder (prepared on first use).

    A process serves one configuration; should a second one with another
    runtime_dir appear (tests), the metrics move to its folder.
    """
    global _current
    directory = metrics_dir(config)
    with _lock:
        if _current is not None and _current.directory == directory:
            return _current
        prepare(directory)
        # Samples created from now on go to memory-mapped files in this folder.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        values.ValueClass = values.MultiProcessValue()
        _current = ProcessMetrics(directory)
        return _current


def prepare(directory: Path, generation: str | None = None) -> None:
    """Create the folder; empty it when it was left by an earlier server run. Raises OSError.

    ``generation`` names the current server run; by default the parent
    process and its start time, which all mod_wsgi daemons of one Apache
    share and a restarted Apache changes.
    """
    generation = generation or server_generation()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / GENERATION_FILE
    with atomicfile.file_lock(directory / ".lock"):
        try:
            if stamp.read_text(encoding="utf-8") == generation:
                return
        except FileNotFoundError:
            pass
        removed = 0
        for path in directory.glob("*.db"):
            path.unlink(missing_ok=True)
            removed += 1
        atomicfile.write_atomic(stamp, generation)
    if removed:
        log.info("new server run: removed %d metrics files of the previous one from %s", removed, directory)


def server_generation() -> str:
    """The parent process's id and start time (clock ticks since boot)."""
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/stat", encoding="ascii") as handle:
            # The command name (field 2) may contain spaces; the start time is field 22.
            started = handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError) as err:
        log.debug("cannot read the start time of process %d: %s", parent, err)
        started = "?"
    return f"{parent} {started}"
