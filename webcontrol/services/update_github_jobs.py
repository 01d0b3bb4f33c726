# SPDX-License-Identifier: GPL-3.0-or-later
"""update-github-jobs: turn finished GitHub-triggered runs into commit statuses (docs/formats.rst, update-github-jobs).

Oneshot (systemd timer, every minute; a lock file keeps two runs apart).
For each pending-job record written by request.cgi:

- a ``pending-status`` left in the record (request.cgi posts it in the
  background; this is the to-do when that failed) is posted first;
- still in queued.json (or running.json) → leave it; the first run that no
  longer finds it in queued.json stamps ``left-queue`` into the record, and
  the age limit counts from there;
- else look for its result in ``autopkgtest-<rel>-<last ppa>`` under
  ``<rel>/<arch>/<prefix>/<package>/``: ``result.tar`` objects written
  between the record's creation (minus clock skew) and 30 days later, whose
  ``custom_environment`` holds the record's ``GITHUB_STATUSES_URL`` and
  whose testname matches; the newest wins. A damaged tar falls back to
  ``log.gz`` (its ``command line:`` must hold every env item; state error);
- found → post success/failure/error and delete the record; too old without
  a result → post error "autopkgtest result not found" and delete it. A
  status that cannot be delivered keeps the record for the next run.
  Statuses only ever go to URLs under ``[github] api_url``.

Container listings and fetched files are cached per run, per container and
prefix (several jobs of one project share them).
"""

from __future__ import annotations

import datetime
import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from webcontrol import github, livestate, results, resulttar
from webcontrol.config import Config
from webcontrol.services import periodic
from webcontrol.services.base import run_program
from webcontrol.store import ContainerNotFound, ObjectInfo, ObjectNotFound, ResultStore, StoreError, open_store

log = logging.getLogger(__name__)

PROGRAM = "update-github-jobs"

SKEW = datetime.timedelta(minutes=5)
#: After this many undeliverable statuses in a row GitHub is taken to be down for this run.
MAX_CONSECUTIVE_POST_FAILURES = 3
RESULT_WINDOW = datetime.timedelta(days=30)
#: At most this much of a log.gz is inflated when looking for its ``command line:``.
LOG_HEADER_BYTES = 1024 * 1024


@dataclass
class Found:
    run_id: str
    state: str
    container: str
    run_dir: str


def queued_env_items(raw_queued: dict) -> set[str]:
    items: set[str] = set()
    for request in livestate.queued_requests(raw_queued):
        items.update(str(e) for e in _env(request.params))
    return items


def running_env_items(raw_running: dict) -> set[str]:
    items: set[str] = set()
    for job in livestate.running_jobs(raw_running):
        items.update(str(e) for e in _env(job.params))
    return items


def _env(params) -> list:
    env = params.get("env") if isinstance(params, dict) else None
    return env if isinstance(env, list) else []


class GithubJobUpdater:
    def __init__(self, config: Config, store: ResultStore, poster: github.StatusPoster, now: float | None = None):
        self.config = config
        self.store = store
        self.poster = poster
        self.now = time.time() if now is None else now
        self.jobs = github.PendingJobs(config.pending_dir)
        self.max_age_s = config.get("github", "job_max_age_days") * 86400
        self.results_base = config.external_results_url()
        self._listings: dict[tuple[str, str], list[ObjectInfo]] = {}
        self._tars: dict[tuple[str, str], resulttar.ResultTar | None] = {}
        self.failures = 0
        self._post_failures_in_row = 0

    def run_once(self) -> None:
        queued = queued_env_items(livestate.load_queued(self.config.get("web", "amqp_queue_cache")))
        running = running_env_items(livestate.load_running(self.config.get("web", "running_cache")))
        for job in self.jobs:
            try:
                self.update(job, queued, running)
            except (StoreError, OSError) as err:
                self.failures += 1
                log.error("pending GitHub job %s: %s; retrying next run", job.path.name, err)

    def update(self, job: github.PendingJob, queued: set[str], running: set[str]) -> None:
        to_post = job.params.get("pending-status")
        if isinstance(to_post, dict) and self.post(job, to_post):
            # request.cgi's background sender could not post it; this is the to-do it left.
            del job.params["pending-status"]
            self.jobs.update(job)
        if job.statuses_item in queued:
            log.debug("%s still queued", job.path.name)
            return
        if job.left_queue is None:
            job.params["left-queue"] = self.now
            self.jobs.update(job)
        if job.statuses_item in running:
            log.debug("%s running", job.path.name)
            return
        found = self.find_result(job)
        if found:
            status = {
                "state": found.state,
                "context": job.context,
                "description": f"autopkgtest finished ({found.state})",
                "target_url": f"{self.results_base}/{found.container}/{found.run_dir}/log.gz",
            }
            if self.post(job, status):
                log.info("%s finished: %s (%s)", job.path.name, found.state, found.run_id)
                self.jobs.delete(job)
            return
        age = self.now - (job.left_queue or self.now)
        if age > self.max_age_s:
            status = {"state": "error", "context": job.context, "description": "autopkgtest result not found"}
            site = self.config.get("web", "site_url")
            if site:
                status["target_url"] = f"{site.rstrip('/')}/running"
            if self.post(job, status):
                log.warning(
                    "%s: no result %.1f days after leaving the queue; reported error", job.path.name, age / 86400
                )
                self.jobs.delete(job)

    def post(self, job: github.PendingJob, status: dict) -> bool:
        """Send a status; False keeps the record for the next run."""
        if self._post_failures_in_row >= MAX_CONSECUTIVE_POST_FAILURES:
            log.warning("%s: GitHub looks down this run; status %s postponed", job.path.name, status["state"])
            return False
        if self.poster.post(job.package, job.statuses_url, status):
            self._post_failures_in_row = 0
            return True
        if self.poster.last_failure == "unavailable":
            self._post_failures_in_row += 1
        return False

    def container(self, job: github.PendingJob) -> str | None:
        ppas = [p for p in job.params.get("ppas") or [] if isinstance(p, str)]
        return results.ppa_container(job.release, ppas[-1]) if ppas else None

    def listing(self, container: str, prefix: str) -> list[ObjectInfo]:
        key = (container, prefix)
        if key not in self._listings:
            try:
                self._listings[key] = [
                    info
                    for info in self.store.iter_objects(container, prefix=prefix)
                    if info.name.endswith("/result.tar")
                ]
            except ContainerNotFound:
                self._listings[key] = []
        return self._listings[key]

    def find_result(self, job: github.PendingJob) -> Found | None:
        container = self.container(job)
        if container is None:
            log.error("pending GitHub job %s has no PPA; cannot locate its container", job.path.name)
            return None
        prefix = f"{job.release}/{job.arch}/{results.srchash(job.package)}/{job.package}/"
        created = datetime.datetime.fromtimestamp(job.created, datetime.timezone.utc)
        earliest, latest = created - SKEW, created + RESULT_WINDOW
        candidates = []
        for info in self.listing(container, prefix):
            modified = info.last_modified
            if modified is not None and modified.tzinfo is None:
                modified = modified.replace(tzinfo=datetime.timezone.utc)
            if modified is not None and not earliest <= modified <= latest:
                continue
            run_dir = info.name[: -len("/result.tar")]
            candidates.append(run_dir)
        # Newest first: run ids sort by time, so the first match wins.
        for run_dir in sorted(candidates, key=lambda d: d.rsplit("/", 1)[-1], reverse=True):
            state = self.match(job, container, run_dir)
            if state:
                return Found(run_dir.rsplit("/", 1)[-1], state, container, run_dir)
        return None

    def match(self, job: github.PendingJob, container: str, run_dir: str) -> str | None:
        """The state if this run is the job's, else None."""
        tar = self.result_tar(container, run_dir)
        if tar is not None:
            if job.statuses_item not in tar.custom_environment:
                return None
            if (tar.testname or None) != job.testname:
                return None
            return results.github_state(tar.exitcode)
        if self.log_matches(container, run_dir, job.env):
            return "error"
        return None

    def result_tar(self, container: str, run_dir: str) -> resulttar.ResultTar | None:
        key = (container, run_dir)
        if key not in self._tars:
            try:
                self._tars[key] = resulttar.parse(self.store.get_object(container, f"{run_dir}/result.tar"))
            except (resulttar.DamagedResult, ObjectNotFound) as err:
                log.warning("%s/%s/result.tar unreadable (%s); trying log.gz", container, run_dir, err)
                self._tars[key] = None
        return self._tars[key]

    def log_matches(self, container: str, run_dir: str, env: Iterable[str]) -> bool:
        try:
            # The command line is in the header: inflate only its first bytes (a log.gz may be a gzip bomb).
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(self.store.get_object(container, f"{run_dir}/log.gz"), LOG_HEADER_BYTES)
        except (ObjectNotFound, OSError, EOFError, zlib.error) as err:
            log.warning("%s/%s/log.gz unreadable: %s", container, run_dir, err)
            return False
        for line in data.decode("utf-8", "replace").splitlines():
            if "command line:" in line:
                return all(item in line for item in env)
        return False


def _run(args, config: Config) -> int:
    with periodic.single_instance(config.pending_dir.parent / ".update-github-jobs.lock", PROGRAM) as held:
        if not held:
            return 0
        return periodic.run_passes(PROGRAM, lambda: _update_pass(config))


def _update_pass(config: Config) -> int:
    store = open_store(config)
    try:
        updater = GithubJobUpdater(config, store, github.StatusPoster.from_config(config))
        updater.run_once()
    finally:
        store.close()
    return 1 if updater.failures else 0


def main(argv=None) -> int:
    return run_program("Post final GitHub commit statuses for finished GitHub-triggered test runs.", _run, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
