# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub: webhook signatures, commit statuses, pending-job records (CONTRACT §10).

- :func:`sign` / :func:`verify_signature`: the one implementation of the
  webhook HMAC, used by request.cgi and by the tests that sign deliveries.
- :class:`StatusPoster`: POSTs commit statuses with the per-project Basic
  credentials through the process's HTTP session (retries with backoff on
  429, 5xx and network errors).
- :class:`PendingJobs`: the durable records of queued GitHub requests that
  update-github-jobs later resolves into a final status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webcontrol import atomicfile, httpclient

log = logging.getLogger(__name__)

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

    def __init__(self, credentials_path: str | None, attempts: int = 4, timeout: float = 20.0, backoff: float = 1.0):
        self.credentials_path = credentials_path
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff
        #: Why the last post() failed: "credentials", "refused" (4xx) or "unavailable" (5xx, network).
        self.last_failure: str | None = None

    @classmethod
    def from_config(cls, config, **kwargs: Any) -> StatusPoster:
        return cls(config.get("github", "status_credentials"), **kwargs)

    def post(self, project: str, statuses_url: str, status: dict[str, Any]) -> bool:
        """Send one status. Returns False (after logging) when it could not be delivered."""
        self.last_failure = None
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
                statuses_url, json=status, auth=auth, headers=headers, timeout=self.timeout
            )
        except httpclient.Error as err:
            log.error("giving up on GitHub status %s for %s: %s", status.get("state"), statuses_url,
                      httpclient.describe(err))  # fmt: skip
            self.last_failure = "unavailable"
            return False
        if response.ok:
            log.info("posted GitHub status %s/%s to %s", status.get("state"), status.get("context"), statuses_url)
            return True
        # 5xx and 429 were retried already; a 4xx is a refusal that retrying cannot change.
        if response.status_code in httpclient.RETRY_STATUSES:
            self.last_failure = "unavailable"
            log.error("giving up on GitHub status %s for %s: HTTP %s %s", status.get("state"), statuses_url,
                      response.status_code, response.text[:300])  # fmt: skip
        else:
            self.last_failure = "refused"
            log.warning("GitHub refused status for %s: HTTP %s %s", statuses_url, response.status_code,
                        response.text[:300])  # fmt: skip
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
