# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain vocabulary of autopkgtest results, defined once and imported everywhere.

Exit codes and their names, run ids, store paths, queue names, name and
version patterns, the running.json run key, and the human formats of dates
and durations.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

# Exit codes (docs/formats.rst, Exit codes) -------------------------------------------------

RESULT_NAMES: dict[int, str] = {
    0: "pass",
    2: "pass",
    4: "fail",
    6: "fail",
    8: "neutral",
    12: "fail",
    14: "fail",
    16: "tmpfail",
    20: "error",
    99: "denylisted",
}
#: Result names a user may filter on, in display order.
FILTERABLE_RESULTS = ("pass", "fail", "neutral", "denylisted", "tmpfail", "error")
#: What a run says about whether its test works, by result name.
#: Exit 20 (``error``) is a failure: britney blocks on it like any FAIL, and unlike 16 it does not blame the testbed.
VERDICTS: dict[str, str] = {
    "pass": "pass",
    "fail": "fail",
    "error": "fail",
    "otherfail": "fail",
    "neutral": "neutral",
    "tmpfail": "tmpfail",
    "denylisted": "denylisted",
}
#: Verdicts that say nothing about whether the test works (never compared with a pass or a failure).
NON_DECISIVE = frozenset({"neutral", "tmpfail", "denylisted"})
#: Exit codes counted as a passing run by statistics and britney (PASS/NEUTRAL).
PASSING_CODES = frozenset(code for code, name in RESULT_NAMES.items() if name in ("pass", "neutral"))
#: Exit codes for which a missing tested version is stored as ``unknown``.
UNKNOWN_VERSION_CODES = frozenset({4, 12, 20})
#: Results that never get a retry link.
NO_RETRY_RESULTS = frozenset({"pass", "neutral", "denylisted"})


def result_name(exitcode: int | None) -> str:
    """The result name (also the CSS class) of an exit code."""
    if exitcode is None:
        return "otherfail"
    return RESULT_NAMES.get(exitcode, "otherfail")


def codes_for_result(name: str) -> list[int]:
    """The exit codes that carry a result name (for SQL filters)."""
    return sorted(code for code, value in RESULT_NAMES.items() if value == name)


#: Exit codes of a passing run (``pass``: 0 and 2), for SQL filters.
PASS_CODES = tuple(codes_for_result("pass"))


def verdict(exitcode: int | None) -> str:
    """``pass``, ``fail``, ``neutral``, ``tmpfail`` or ``denylisted``; unknown and missing codes fail."""
    return VERDICTS[result_name(exitcode)]


def is_decisive(exitcode: int | None) -> bool:
    """True when the run passed or failed (not neutral, tmpfail or denylisted)."""
    return verdict(exitcode) not in NON_DECISIVE


def github_state(exitcode: int | None) -> str:
    """The GitHub commit-status state of a finished run (docs/formats.rst, update-github-jobs)."""
    return {"pass": "success", "fail": "failure"}.get(result_name(exitcode), "error")


def show_retry(exitcode: int | None) -> bool:
    return result_name(exitcode) not in NO_RETRY_RESULTS


# Names -----------------------------------------------------------------------

_PACKAGE = r"[a-z0-9][a-z0-9.+-]+"
_VERSION = r"[a-zA-Z0-9.+:~-]+"
PACKAGE_RE = re.compile(rf"^{_PACKAGE}\Z")
VERSION_RE = re.compile(rf"^{_VERSION}\Z")
#: ``source/version``, both parts as above (neither holds a "/"): a trigger naming an upload.
SOURCE_VERSION_RE = re.compile(rf"^{_PACKAGE}/{_VERSION}\Z")
#: Releases, arches and contexts never contain "-" (workers split queue names on it).
SERIES_RE = re.compile(r"^[a-z0-9][a-z0-9.+]*\Z")
ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9_]*\Z")
#: Launchpad person and team names: requesters, the user pages, ``readable-by``.
LAUNCHPAD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*\Z")
#: Each half of a PPA's ``owner/name`` as requests accept it; PPA containers are named from these.
PPA_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]+\Z")
RUN_ID_RE = re.compile(r"^[0-9]{8}_[0-9]{6}(_[0-9a-f]{5})?@\Z")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
MIGRATION_REFERENCE = "migration-reference/0"


def is_package_name(name: str) -> bool:
    return bool(PACKAGE_RE.match(name))


def is_run_id(value: str) -> bool:
    return bool(RUN_ID_RE.match(value))


def is_launchpad_name(name: str) -> bool:
    return bool(LAUNCHPAD_NAME_RE.fullmatch(name))


def is_ppa_name(name: str) -> bool:
    """True for the owner or the name half of a PPA (``owner/name``)."""
    return bool(PPA_NAME_RE.fullmatch(name))


# Store layout (docs/formats.rst, Result store) -----------------------------------------------------


def srchash(package: str) -> str:
    """The path prefix of a source package: first letter, or 4 for ``lib*``."""
    return package[:4] if package.startswith("lib") else package[:1]


CONTAINER_PREFIX = "autopkgtest-"
#: Containers of private runs; only private-results serves them, after its login and ACL check.
PRIVATE_CONTAINER_PREFIX = "private-"


def distro_container(release: str) -> str:
    return f"{CONTAINER_PREFIX}{release}"


def ppa_container(release: str, ppa: str) -> str:
    """Container of a PPA run, named after the (last) PPA ``owner/name``.

    Credentials (``user:token@``) and a ``:FINGERPRINT`` suffix are not part of
    the name.
    """
    spec = ppa.rsplit("@", 1)[-1].split(":", 1)[0]
    return f"{CONTAINER_PREFIX}{release}-{spec.replace('/', '-')}"


def release_of_container(name: str) -> str | None:
    """The release of a distro container (``autopkgtest-<release>``); None for any other container."""
    release = name[len(CONTAINER_PREFIX) :] if name.startswith(CONTAINER_PREFIX) else ""
    return release if release and "-" not in release else None


def may_be_ppa_container(name: str) -> bool:
    """``autopkgtest-`` and at least three ``-``-separated parts (a distro container has two)."""
    return name.startswith(CONTAINER_PREFIX) and len(name.split("-")) >= 3


def ppa_of_container(name: str, release: str, owner: str) -> str | None:
    """The PPA name of ``autopkgtest-<release>-<owner>-<ppa>``; None for another release, owner or shape."""
    head = ppa_container(release, f"{owner}/")
    return name[len(head) :] if name.startswith(head) and len(name) > len(head) else None


def is_private_container(container: str) -> bool:
    return container.startswith(PRIVATE_CONTAINER_PREFIX)


def run_dir(release: str, arch: str, package: str, run_id: str) -> str:
    """``<release>/<arch>/<prefix>/<package>/<run_id>``."""
    return f"{release}/{arch}/{srchash(package)}/{package}/{run_id}"


def parse_run_dir(path: str) -> tuple[str, str, str, str] | None:
    """``(release, arch, package, run_id)`` of an object path, or None if off-layout."""
    parts = path.split("/")
    if len(parts) < 5:
        return None
    release, arch, prefix, package, run_id = parts[:5]
    if prefix != srchash(package) or not RUN_ID_RE.match(run_id):
        return None
    return release, arch, package, run_id


# Run ids and time -------------------------------------------------------------


def run_id_time(run_id: str) -> datetime.datetime:
    """The UTC end time a run id encodes. Raises ValueError."""
    return datetime.datetime.strptime(run_id[:15], "%Y%m%d_%H%M%S").replace(tzinfo=datetime.timezone.utc)


def run_id_for_date(date: datetime.date) -> str:
    """Smallest run id on or after a date (for ``run_id >= ?`` comparisons)."""
    return date.strftime("%Y%m%d_000000")


def human_date(run_id: str) -> str:
    """``YYYY-MM-DD HH:MM:SS UTC`` from a run id; the raw id if it is off-format."""
    try:
        return run_id_time(run_id).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return run_id


def human_duration(seconds: int | None) -> str:
    """``Hh MMm SSs`` (``0h 05m 03s``); empty for unknown."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


# Queues (docs/formats.rst, Queues and messages) ----------------------------------------------------------

CONTEXTS = ("ubuntu", "huge", "ppa", "upstream")
COMPLETE_EXCHANGE = "testcomplete.fanout"
STATUS_EXCHANGE = "teststatus.fanout"


def queue_name(context: str, release: str, arch: str) -> str:
    """``debci-[<ctx>-]<release>-<arch>``; the ``ubuntu`` context has no infix."""
    if context == "ubuntu":
        return f"debci-{release}-{arch}"
    return f"debci-{context}-{release}-{arch}"


# Requests and running state ----------------------------------------------------


def run_key(params: Mapping[str, Any]) -> str:
    """The running.json run key: ``<key>_<value>;`` over sorted keys.

    Lists are written as Python list literals, strings as they are, exactly
    as the clients that parse running.json expect.
    """
    return "".join(f"{key}_{params[key]};" for key in sorted(params))


def ppa_has_credentials(ppa: str) -> bool:
    return "@" in ppa


def is_private_request(params: Mapping[str, Any]) -> bool:
    """True when a request must be hidden (``private job`` / ``private-test``)."""
    if params.get("readable-by") or params.get("swiftuser"):
        return True
    ppas = params.get("ppas") or []
    if isinstance(ppas, str):  # malformed, but its credentials must not leak either
        ppas = [ppas]
    return isinstance(ppas, list) and any(isinstance(p, str) and ppa_has_credentials(p) for p in ppas)


def split_triggers(value: str | None) -> list[str]:
    return value.split() if value else []


def env_string(all_proposed: bool, testname: str | None) -> str:
    """The stored env column: ``all-proposed=1,testname=foo`` or ``""``."""
    parts = []
    if all_proposed:
        parts.append("all-proposed=1")
    if testname:
        parts.append(f"testname={testname}")
    return ",".join(parts)


def parse_env_string(env: str | None) -> dict[str, str]:
    result = {}
    for item in (env or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            result[key] = value
    return result
