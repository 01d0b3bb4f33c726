# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub: webhook signatures, commit statuses, pending-job records (docs/formats.rst, GitHub webhook).

- :func:`sign` / :func:`verify_signature`: the one implementation of the
  webhook HMAC, used by request.cgi and by the tests that sign deliveries.
- :class:`StatusPoster`: POSTs commit statuses with the per-project Basic
  credentials through the process's HTTP session (retries with backoff on
  429, 5xx and network errors); only to URLs under ``[github] api_url`` (the
  token never goes elsewhere, redirects are not followed).
- :class:`PendingJobs`: the durable records of queued GitHub requests that
  update-github-jobs later resolves into a final status. A record is created
  exclusively, so concurrent copies of one delivery queue one request.
- :class:`Deliveries`: which query string each delivery was used with.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webcontrol import atomicfile, httpclient

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com/"
USER_AGENT = httpclient.USER_AGENT
SIGNATURE_FAILED = "GitHub signature verification failed"


class SignatureError(Exception):
    """The webhook is not signed with the project's secret."""


# Signatures -----------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> dict[str, str]:
    """Both signature headers GitHub sends for ``body``."""
    key = secret.encode("utf-8")
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
    }


def load_secrets(path: str | None) -> dict[str, str]:
    """``{package: secret}``. Raises SignatureError when the file is missing or unreadable."""
    if not path:
        raise SignatureError("no [github] secrets file configured")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise SignatureError(f"cannot read GitHub secrets {path}: {err}") from None
    if not isinstance(data, dict):
        raise SignatureError(f"GitHub secrets {path} is not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def verify_signature(secret: str | None, headers: Mapping[str, str], body: bytes) -> None:
    """Check the sha256 signature, or the sha1 one when no sha256 header exists. Raises SignatureError.

    A wrong sha256 signature is never rescued by a valid sha1 one.
    """
    if not secret:
        raise SignatureError("no secret for this package")
    key = secret.encode("utf-8")
    sha256 = headers.get("X-Hub-Signature-256")
    if sha256 is not None:
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sha256.strip().encode("utf-8", "replace"), expected.encode("ascii")):
            raise SignatureError("X-Hub-Signature-256 mismatch")
        return
    sha1 = headers.get("X-Hub-Signature")
    if sha1 is None:
        raise SignatureError("no signature header")
    expected = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(sha1.strip().encode("utf-8", "replace"), expected.encode("ascii")):
        raise SignatureError("X-Hub-Signature mismatch")


# Statuses -------------------------------------------------------------------------------


def status_url(api_url: str, full_name: str, sha: str) -> str:
    """``<api_url>repos/<owner>/<repo>/statuses/<sha>``: the only place a PR's statuses go."""
    return f"{api_url.rstrip('/')}/repos/{full_name}/statuses/{sha}"


def under_api(url: str, api_url: str) -> bool:
    """Whether ``url`` is on the configured API host and under its path (no ``..`` tricks)."""
    base = urllib.parse.urlsplit(api_url.rstrip("/") + "/")
    target = urllib.parse.urlsplit(url)
    return (
        target.scheme in ("http", "https")
        and (target.scheme, target.netloc) == (base.scheme, base.netloc)
        and target.path.startswith(base.path)
        and "/../" not in target.path + "/"
        and "\\" not in url
        and not any(ord(c) < 0x21 for c in url)
    )


def status_context(release: str, arch: str, testname: str | None) -> str:
    return f"{release}/{arch} {testname}" if testname else f"{release}/{arch}"


def load_credentials(path: str | None) -> dict[str, tuple[str, str]]:
    """``{project: (user, token)}`` from ``project:user:token`` lines; ``{}`` when unreadable."""
    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        log.error("cannot read GitHub status credentials %s: %s", path, err)
        return {}
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) == 3 and all(parts):
            found[parts[0]] = (parts[1], parts[2])
    return found


class StatusPoster:
    """POST commit statuses with Basic auth; retries 5xx and network errors with backoff."""

    def __init__(
        self,
        credentials_path: str | None,
        attempts: int = 4,
        timeout: float = 20.0,
        backoff: float = 1.0,
        api_url: str = DEFAULT_API_URL,
    ):
        self.credentials_path = credentials_path
        self.api_url = api_url
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff
        #: Why the last post() failed: "credentials", "refused" (4xx) or "unavailable" (5xx, network).
        self.last_failure: str | None = None

    @classmethod
    def from_config(cls, config, **kwargs: Any) -> StatusPoster:
        return cls(config.get("github", "status_credentials"), api_url=config.get("github", "api_url"), **kwargs)

    def post(self, project: str, statuses_url: str, status: dict[str, Any]) -> bool:
        """Send one status. Returns False (after logging) when it could not be delivered."""
        self.last_failure = None
        if not under_api(statuses_url, self.api_url):
            self.last_failure = "refused"
            log.error("status URL %r is not under the GitHub API %s; status not sent", statuses_url, self.api_url)
            return False
        credentials = load_credentials(self.credentials_path).get(project)
        if credentials is None:
            self.last_failure = "credentials"
            log.error("no GitHub status credentials for %s; status %s for %s not sent", project, status, statuses_url)
            return False
        auth = (credentials[0], credentials[1])
        headers = {"Accept": "application/vnd.github+json"}
        policy = httpclient.RetryPolicy(attempts=self.attempts, backoff=self.backoff / 2, retry_post=True)
        try:
            response = httpclient.session(policy).post(
                statuses_url, json=status, auth=auth, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except httpclient.Error as err:
            log.error(
                "giving up on GitHub status %s for %s: %s", status.get("state"), statuses_url, httpclient.describe(err)
            )
            self.last_failure = "unavailable"
            return False
        if 200 <= response.status_code < 300:
            log.info("posted GitHub status %s/%s to %s", status.get("state"), status.get("context"), statuses_url)
            return True
        # 5xx and 429 were retried already; a 4xx is a refusal that retrying cannot change.
        if response.status_code in httpclient.RETRY_STATUSES:
            self.last_failure = "unavailable"
            log.error(
                "giving up on GitHub status %s for %s: HTTP %s %s",
                status.get("state"),
                statuses_url,
                response.status_code,
                response.text[:300],
            )
        else:
            self.last_failure = "refused"
            log.warning(
                "GitHub refused status for %s: HTTP %s %s", statuses_url, response.status_code, response.text[:300]
            )
        return False


# Pending-job records ------------------------------------------------------------------------


@dataclass
class PendingJob:
    path: Path
    params: dict[str, Any]

    @property
    def release(self) -> str:
        return self.params["release"]

    @property
    def arch(self) -> str:
        return self.params["arch"]

    @property
    def package(self) -> str:
        return self.params["package"]

    @property
    def testname(self) -> str | None:
        return self.params.get("testname") or None

    @property
    def env(self) -> list[str]:
        return [e for e in self.params.get("env") or [] if isinstance(e, str)]

    def env_value(self, name: str) -> str | None:
        for item in self.env:
            if item.startswith(name + "="):
                return item[len(name) + 1 :]
        return None

    @property
    def statuses_url(self) -> str:
        return self.env_value("GITHUB_STATUSES_URL") or ""

    @property
    def statuses_item(self) -> str:
        return f"GITHUB_STATUSES_URL={self.statuses_url}"

    @property
    def created(self) -> float:
        value = self.params.get("created")
        if isinstance(value, (int, float)):
            return float(value)
        return self.path.stat().st_mtime

    @property
    def left_queue(self) -> float | None:
        value = self.params.get("left-queue")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def context(self) -> str:
        return status_context(self.release, self.arch, self.testname)


def record_name(release: str, arch: str, package: str, testname: str | None, pr: str | int, statuses_url: str) -> str:
    """``<rel>-<arch>-<package>-<testname or empty>-<PR>-<last segment of statuses_url>``."""
    last = statuses_url.rstrip("/").rsplit("/", 1)[-1]
    return f"{release}-{arch}-{package}-{testname or ''}-{pr}-{last}"


class PendingJobs:
    """The ``[github] pending_dir`` folder of pending-job records (one JSON file each)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"invalid pending-job name {name!r}")
        return self.directory / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def create(self, name: str, params: dict[str, Any]) -> bool:
        """Create a record unless it exists (atomic and exclusive). Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return _create_exclusive(self.path(name), json.dumps(params, sort_keys=True))

    def remove(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass

    def pending_status_posted(self, name: str) -> None:
        """Drop a record's to-do ``pending-status`` once it was posted (a deleted record stays deleted)."""
        path = self.path(name)
        try:
            params = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(params, dict) and params.pop("pending-status", None) is not None and path.exists():
            atomicfile.write_atomic(path, json.dumps(params, sort_keys=True), mode=0o640)

    def write(self, name: str, params: dict[str, Any]) -> None:
        """Write (or replace) a record atomically. Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        atomicfile.write_atomic(self.path(name), json.dumps(params, sort_keys=True), mode=0o640)

    def update(self, job: PendingJob) -> None:
        atomicfile.write_atomic(job.path, json.dumps(job.params, sort_keys=True), mode=0o640)

    def delete(self, job: PendingJob) -> None:
        try:
            job.path.unlink()
        except FileNotFoundError:
            pass

    def __iter__(self) -> Iterator[PendingJob]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith("."):
                continue
            path = self.directory / name
            try:
                params = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                log.error("skipping unreadable pending GitHub job %s: %s", path, err)
                continue
            if not isinstance(params, dict) or not all(params.get(k) for k in ("release", "arch", "package")):
                log.error("skipping pending GitHub job %s: not a JSON object with release, arch, package", path)
                continue
            yield PendingJob(path, params)


def _create_exclusive(path: Path, text: str) -> bool:
    """Write ``text`` to a temporary file and hard-link it into place: complete and exclusive."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink()


class Deliveries:
    """``<pending_dir>/.deliveries/<sha256 of the delivery id>``: the query string it was used with.

    One file per accepted delivery, kept ``KEEP_DAYS`` (GitHub redelivers for a
    few days at most) and swept now and then.
    """

    KEEP_DAYS = 90

    def __init__(self, pending_dir: str | os.PathLike):
        self.directory = Path(pending_dir) / ".deliveries"

    def _path(self, delivery: str) -> Path:
        return self.directory / hashlib.sha256(delivery.encode("utf-8", "replace")).hexdigest()

    def claim(self, delivery: str, query: str) -> str | None:
        """None when this call claimed the delivery, else the query it was first used with. Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(delivery)
        if _create_exclusive(path, query):
            return None
        try:
            return path.read_text(encoding="utf-8")
        except OSError as err:
            if err.errno == errno.ENOENT:  # released meanwhile by a failed attempt: try again once
                return None if _create_exclusive(path, query) else ""
            raise

    def release(self, delivery: str) -> None:
        try:
            self._path(delivery).unlink()
        except FileNotFoundError:
            pass

    def sweep(self, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - self.KEEP_DAYS * 86400
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError as err:
                log.debug("cannot sweep %s: %s", entry.path, err)
