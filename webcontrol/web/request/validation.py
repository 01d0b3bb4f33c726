# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation of distro and PPA test requests, in the order of docs/formats.rst, Validation order.

Checks 1-13 need only the request, the public DB and the live-state files;
checks 14-18 ask Launchpad. Every failure raises a :class:`WebError` with
the status and message of the contract; nothing here publishes anything.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from webcontrol import livestate, results
from webcontrol.launchpad import Launchpad, LaunchpadUnavailable, Membership
from webcontrol.web.appbase import BadRequest, Forbidden, NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

REQUIRED = ("release", "arch", "package", "trigger")
SINGLE = ("release", "package", "all-proposed")
DISTRO_KEYS = frozenset({"release", "arch", "package", "trigger", "ppa", "all-proposed", "readable-by"})
GITHUB_ONLY = frozenset({"env", "build-git", "testname"})
#: Triggers that are never looked up in the archive.
UNPUBLISHED_TRIGGERS = frozenset({results.MIGRATION_REFERENCE, "qemu-efi-noacpi/0"})
LAUNCHPAD_DOWN = "Launchpad is not responding, please try again later."
DEFAULT_MAX_TRIGGERS = 50
#: ``readable-by`` names Launchpad people or teams.
LAUNCHPAD_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.+-]*")


def example_url(site: str) -> str:
    return f"<{site}/request.cgi/?release=release&arch=arch&package=pkg&trigger=trigger1&trigger=trigger2>"


@dataclass
class RequestArgs:
    """The parameters of a request as received: key → list of values, in order."""

    items: list[tuple[str, str]]

    def keys(self) -> list[str]:
        seen: list[str] = []
        for key, _value in self.items:
            if key not in seen:
                seen.append(key)
        return seen

    def getlist(self, key: str) -> list[str]:
        return [value for k, value in self.items if k == key]

    def first(self, key: str) -> str | None:
        values = self.getlist(key)
        return values[0] if values else None


@dataclass
class Plan:
    """A validated request: one message per arch, not yet published."""

    release: str
    arches: list[str]
    package: str
    params: dict[str, Any]  # triggers, ppas, all-proposed, readable-by (no requester/time/uuid)
    shown: dict[str, Any] = field(default_factory=dict)

    @property
    def queue_context(self) -> str:
        return "ppa" if self.params.get("ppas") else "ubuntu"


@dataclass
class Environment:
    """What validation reads besides the request: DB, live state, Launchpad and config rules."""

    db: sqlite3.Connection
    releases: Sequence[str]
    running: dict
    queued: dict
    launchpad: Launchpad
    membership: Membership
    package_requestors: dict[str, set[str]]
    site: str
    #: Arches with results for a release; defaults to asking the DB each time.
    arches: Callable[[str], set[str]] | None = None

    def arches_of(self, release: str) -> set[str]:
        return self.arches(release) if self.arches else release_arches(self.db, release)


def parse_package_requestors(value: str) -> dict[str, set[str]]:
    """``pkg:lpuser[,pkg:lpuser]`` → ``{pkg: {lpuser}}``."""
    rules: dict[str, set[str]] = {}
    for item in value.replace(" ", ",").split(","):
        if ":" in item:
            package, user = item.split(":", 1)
            rules.setdefault(package.strip(), set()).add(user.strip())
    return rules


def shown_ppa(ppa: str) -> str:
    """A PPA spec fit for a page: never the ``user:token@`` part (docs/formats.rst, Live-state files)."""
    return ppa.rsplit("@", 1)[-1]


def release_arches(db: sqlite3.Connection, release: str) -> set[str]:
    return {row[0] for row in db.execute("SELECT DISTINCT arch FROM test WHERE release = ?", (release,))}


def has_test(db: sqlite3.Connection, package: str, release: str, arch: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM test WHERE package = ? AND release = ? AND arch = ? LIMIT 1", (package, release, arch)
    ).fetchone()
    return row is not None


def split_triggers(values: Iterable[str]) -> list[str]:
    """Each value may hold several whitespace-separated triggers (autopkgtest-cli)."""
    return [trigger for value in values for trigger in value.split()]


def duplicate_message(kind: str, release: str, package: str, arch: str, triggers: Sequence[str]) -> str:
    return f"Test already {kind}:\nrelease: {release}\npkg: {package}\narch: {arch}\ntriggers: {', '.join(triggers)}"


def check_syntax(args: RequestArgs, site: str, max_triggers: int = DEFAULT_MAX_TRIGGERS) -> Plan:
    """Checks 1-8: shape of the arguments and of the triggers. Raises BadRequest.

    Repeated triggers are dropped first (first occurrence kept), and no more
    than ``max_triggers`` remain: each one costs Launchpad calls later.
    """
    keys = args.keys()
    triggers = list(dict.fromkeys(split_triggers(args.getlist("trigger"))))
    if any(not args.getlist(key) for key in REQUIRED) or not triggers:
        raise BadRequest(
            f"You have passed invalid args: {', '.join(keys)}\nPlease see an example url below:\n{example_url(site)}"
        )
    for key in keys:
        if key not in DISTRO_KEYS or key in GITHUB_ONLY:
            raise BadRequest(f"Invalid argument {key}")
    if len(triggers) > max_triggers:
        raise BadRequest(f"Too many triggers (at most {max_triggers})")
    for key in SINGLE:
        if len(args.getlist(key)) > 1:
            raise BadRequest(f"Invalid argument {key}")
    all_proposed = args.getlist("all-proposed")
    if all_proposed and all_proposed != ["1"]:
        raise BadRequest("Invalid all-proposed value")
    readable_by = args.getlist("readable-by")
    if any(not LAUNCHPAD_NAME_RE.fullmatch(value) for value in readable_by):
        raise BadRequest("Invalid readable-by value")
    ppas = args.getlist("ppa")
    if results.MIGRATION_REFERENCE in triggers:
        if all_proposed:
            raise BadRequest("migration-reference/0 and all-proposed=1 are not compatible arguments.")
        if len(triggers) > 1:
            raise BadRequest("Cannot use additional triggers with migration-reference/0")
        if ppas:
            raise BadRequest("Cannot use PPAs with migration-reference/0")
    for trigger in triggers:
        if trigger.count("/") != 1:
            raise BadRequest("Malformed trigger, must be srcpackage/version")
        source, version = trigger.split("/")
        if not results.PACKAGE_RE.match(source) or not results.VERSION_RE.match(version):
            raise BadRequest(f"Malformed trigger: {source}\nversion: {version}")
        if source.startswith("linux-meta-raspi"):
            raise BadRequest("The raspi kernel can't be tested with autopkgtest.")
    params: dict[str, Any] = {"triggers": triggers}
    if ppas:
        params["ppas"] = ppas
    if all_proposed:
        params["all-proposed"] = "1"
    if readable_by:
        params["readable-by"] = readable_by if len(readable_by) > 1 else readable_by[0]
    arches = list(dict.fromkeys(args.getlist("arch")))
    return Plan(args.first("release") or "", arches, args.first("package") or "", params)


def check_local(plan: Plan, env: Environment) -> None:
    """Checks 9-13: release, arches, package name, running and queued duplicates."""
    if plan.release not in env.releases:
        raise NotFound(f"release {plan.release} not found")
    known = env.arches_of(plan.release)
    for arch in plan.arches:
        if arch not in known:
            raise NotFound(f"arch {arch} not found")
    if not results.PACKAGE_RE.match(plan.package):
        raise NotFound(f"package {plan.package} not found")
    triggers = plan.params["triggers"]
    for arch in plan.arches:
        if livestate.is_running(env.running, plan.package, plan.release, arch, plan.params):
            raise Forbidden(duplicate_message("running", plan.release, plan.package, arch, triggers))
    for arch in plan.arches:
        if livestate.is_queued(env.queued, plan.package, plan.release, arch, plan.params):
            raise Forbidden(duplicate_message("queued", plan.release, plan.package, arch, triggers))


def check_launchpad(plan: Plan, env: Environment, nick: str, login_teams: Iterable[str] = ()) -> bool:
    """Checks 14-18. Returns whether ``nick`` is in an allowed team (for the rate limit).

    Raises NotFound, BadRequest, Forbidden, ServiceUnavailable (Launchpad down).
    """
    try:
        return _check_launchpad(plan, env, nick, login_teams)
    except LaunchpadUnavailable:
        raise ServiceUnavailable(LAUNCHPAD_DOWN) from None


def check_ppas(launchpad, ppas: Iterable[str]) -> None:
    """Each PPA is ``owner/name``, both well-formed, and Launchpad knows it.

    Raises NotFound (``ppa <X> not found``), LaunchpadUnavailable.
    """
    for ppa in ppas:
        owner, _, name = ppa.partition("/")
        if (
            ppa.count("/") != 1
            or not results.is_ppa_name(owner)
            or not results.is_ppa_name(name)
            or not launchpad.ppa_exists(owner, name)
        ):
            raise NotFound(f"ppa {shown_ppa(ppa)} not found")


def _check_launchpad(plan: Plan, env: Environment, nick: str, login_teams: Iterable[str]) -> bool:
    lp = env.launchpad
    ppas: list[str] = plan.params.get("ppas", [])
    check_ppas(lp, ppas)
    in_team: bool | None = None
    if not ppas:
        for arch in plan.arches:
            if not has_test(env.db, plan.package, plan.release, arch):
                in_team = env.membership.is_member(nick, login_teams) if in_team is None else in_team
                if not in_team:
                    raise NotFound(f"package {plan.package} does not have any test results")
    components: dict[str, str] = {}
    for trigger in plan.params["triggers"]:
        if trigger in UNPUBLISHED_TRIGGERS:
            continue
        source, version = trigger.split("/")
        if ppas:
            if not lp.publication(source, plan.release, version, ppa=ppas[-1]).published:
                raise BadRequest(f"{trigger} is not published in PPA {ppas[-1]} {plan.release}")
        else:
            found = lp.publication(source, plan.release, version)
            if not found.published:
                raise BadRequest(f"{trigger} is not published in {plan.release}")
            components[source] = found.component or "main"
    package_component = None
    if not ppas:
        found = lp.publication(plan.package, plan.release)
        if not found.published:
            raise BadRequest(f"{plan.package} is not published in {plan.release}")
        package_component = found.component or "main"
    if nick in env.package_requestors.get(plan.package, ()):
        return bool(in_team)
    if in_team is None:
        in_team = env.membership.is_member(nick, login_teams)
    if in_team:
        return True
    if package_component is None:
        found = lp.publication(plan.package, plan.release)
        package_component = (found.component if found.published else None) or "main"
    if lp.can_upload(nick, plan.release, plan.package, package_component):
        return False
    for trigger in plan.params["triggers"]:
        source = trigger.split("/")[0]
        if trigger in UNPUBLISHED_TRIGGERS or source == plan.package:
            continue
        if lp.can_upload(nick, plan.release, source, components.get(source, "main")):
            return False
    triggers = ",".join(plan.params["triggers"])
    raise Forbidden(
        f"You are not allowed to upload {plan.package} or {triggers} to Ubuntu, "
        "thus you are not allowed to use this service."
    )
