# SPDX-License-Identifier: GPL-3.0-or-later
"""The ingest rules shared by download-results and download-all-results (docs/formats.rst, rw DB).

Only distro results are stored: the container must be
``autopkgtest-<release>`` and the run must have triggers. PPA, upstream and
private results never reach the DB.
"""

from __future__ import annotations

from webcontrol import results
from webcontrol.db import ResultRecord
from webcontrol.messages import CompletionMessage
from webcontrol.resulttar import ResultTar


class NotIngested(Exception):
    """A valid result that the DB does not store (PPA run, no triggers, ...)."""


def _version(version: str | None, exitcode: int) -> str | None:
    if version and version != "unknown":
        return version
    if exitcode in results.UNKNOWN_VERSION_CODES:
        return "unknown"
    return version


def _check_distro(container: str, release: str, triggers: str) -> None:
    if container != results.distro_container(release):
        raise NotIngested(f"container {container} is not a distro container of {release}")
    if not triggers:
        raise NotIngested("run has no triggers")


def record_from_completion(message: CompletionMessage) -> ResultRecord:
    """The DB record of a completion message. Raises NotIngested."""
    _check_distro(message.container, message.release, message.triggers)
    return ResultRecord(
        release=message.release,
        arch=message.architecture,
        package=message.package,
        run_id=message.run_id,
        version=_version(message.testpkg_version, message.exitcode),
        triggers=message.triggers,
        duration=message.duration,
        exitcode=message.exitcode,
        requester=message.requester,
        env=message.env,
        uuid=message.uuid,
    )


def record_from_tar(container: str, release: str, arch: str, package: str, run_id: str, tar: ResultTar) -> ResultRecord:
    """The DB record of a result.tar found in the store. Raises NotIngested."""
    _check_distro(container, release, tar.triggers)
    return ResultRecord(
        release=release,
        arch=arch,
        package=package,
        run_id=run_id,
        version=_version(tar.version, tar.exitcode),
        triggers=tar.triggers,
        duration=tar.duration,
        exitcode=tar.exitcode,
        requester=tar.requester,
        env=results.env_string(tar.all_proposed, tar.testname),
        uuid=tar.uuid,
    )
