# SPDX-License-Identifier: GPL-3.0-or-later
"""Pending GitHub statuses, posted off the webhook's request path.

GitHub gives a webhook 10 s to answer and its status API may hang, so the
webhook only records the status to post (in the pending-job record, under
``pending-status``) and hands it to this background sender. Whatever the
sender cannot deliver stays in the record, and update-github-jobs posts it
on its next run.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from webcontrol import github

log = logging.getLogger(__name__)

MAX_WAITING = 1000


class StatusOutbox:
    def __init__(self, poster: github.StatusPoster, pending_dir: str | Path):
        self.poster = poster
        self.jobs = github.PendingJobs(pending_dir)
        self._queue: queue.Queue = queue.Queue(MAX_WAITING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, record: str, project: str, url: str, status: dict[str, Any]) -> None:
        """Post later; when too much is waiting, update-github-jobs will post it instead."""
        self._start()
        try:
            self._queue.put_nowait((record, project, url, status))
        except queue.Full:
            log.warning("status outbox full; %s left for update-github-jobs", record)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="github-status-outbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            record, project, url, status = self._queue.get()
            try:
                if self.poster.post(project, url, status):
                    self.jobs.pending_status_posted(record)
            except (OSError, ValueError) as err:
                log.error("pending status for %s not posted: %s", record, err)
