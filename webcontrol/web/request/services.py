# SPDX-License-Identifier: GPL-3.0-or-later
"""The long-lived collaborators of request.cgi, built once per app from the config."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import flask

from webcontrol import config as configmod
from webcontrol import db, livestate
from webcontrol.github import StatusPoster
from webcontrol.launchpad import Launchpad, Membership, TeamCache
from webcontrol.launchpad_limits import LaunchpadAnswers, RequestLaunchpad
from webcontrol.web.request.auth import ApiKeys
from webcontrol.web.request.hidden import HiddenRequests
from webcontrol.web.request.outbox import StatusOutbox
from webcontrol.web.request.publisher import Publisher
from webcontrol.web.request.ratelimit import RateLimiter
from webcontrol.web.request.validation import Environment, parse_package_requestors, release_arches

RELEASES_TTL_S = 300.0
#: Launchpad time one test request may spend in all, and a webhook (GitHub waits 10 s for an answer).
REQUEST_LAUNCHPAD_BUDGET_S = 20.0
WEBHOOK_LAUNCHPAD_BUDGET_S = 5.0


@dataclass
class RequestServices:
    config: configmod.Config
    launchpad: Launchpad
    membership: Membership
    api_keys: ApiKeys
    rate_limiter: RateLimiter
    status_poster: StatusPoster
    amqp_uri: str | None
    publisher: Publisher | None
    answers: LaunchpadAnswers
    outbox: StatusOutbox
    hidden: HiddenRequests
    #: Prepended to every queue name; only tests set it, to publish to private queues.
    queue_prefix: str = ""
    _releases: tuple[float, list[str]] | None = None
    _arches: dict[str, tuple[float, set[str]]] | None = None

    @classmethod
    def from_config(cls, config: configmod.Config) -> RequestServices:
        launchpad = Launchpad.from_config(config)
        cache = TeamCache(config.team_cache, config.get("web", "team_cache_seconds"))
        poster = StatusPoster.from_config(config, attempts=2, timeout=10.0, backoff=1.0)
        return cls(
            config=config,
            launchpad=launchpad,
            membership=Membership(launchpad, config.get("web", "allowed_requestors"), cache),
            api_keys=ApiKeys(config.get("web", "api_keys")),
            rate_limiter=RateLimiter(
                Path(config.get("web", "runtime_dir")) / "request-rate.json", config.get("web", "request_rate_limit")
            ),
            status_poster=poster,
            amqp_uri=config.get("amqp", "uri"),
            publisher=Publisher(config.get("amqp", "uri")) if config.get("amqp", "uri") else None,
            answers=LaunchpadAnswers(config.get("web", "team_cache_seconds")),
            outbox=StatusOutbox(poster, config.pending_dir),
            hidden=HiddenRequests(Path(config.get("web", "runtime_dir")) / "hidden-requests.json"),
        )

    @property
    def max_triggers(self) -> int:
        return self.config.get("web", "max_triggers")

    def request_launchpad(self, budget_s: float = REQUEST_LAUNCHPAD_BUDGET_S) -> RequestLaunchpad:
        """Launchpad for one request: at most 2 x max_triggers + 10 calls and ``budget_s`` seconds."""
        return RequestLaunchpad(self.launchpad, self.answers, 2 * self.max_triggers + 10, budget_s)

    def open_db(self) -> sqlite3.Connection:
        return db.connect_ro(self.config.need("web", "database_public"), timeout_ms=10_000)

    def releases(self, conn: sqlite3.Connection) -> list[str]:
        """Supported releases; distro-info and the DB fallback are consulted at most every few minutes."""
        now = time.monotonic()
        if self._releases is not None and now - self._releases[0] < RELEASES_TTL_S:
            return self._releases[1]
        # The DB fallback scans every result: only when neither config nor distro-info answers.
        found = self.config.supported_releases() or self.config.supported_releases(db.releases_by_age(conn))
        self._releases = (now, found)
        return found

    def arches(self, conn: sqlite3.Connection, release: str) -> set[str]:
        """Arches with results for a release. The query scans the test table, so it is reused a while."""
        now = time.monotonic()
        cache = self._arches if self._arches is not None else {}
        hit = cache.get(release)
        if hit and now - hit[0] < RELEASES_TTL_S:
            return hit[1]
        found = release_arches(conn, release)
        if len(cache) > 100:
            cache.clear()
        cache[release] = (now, found)
        self._arches = cache
        return found

    def environment(self, conn: sqlite3.Connection, site: str) -> Environment:
        launchpad = self.request_launchpad()
        return Environment(
            db=conn,
            releases=self.releases(conn),
            running=livestate.running_cache.get(self.config.get("web", "running_cache")),
            queued=livestate.queued_cache.get(self.config.get("web", "amqp_queue_cache")),
            launchpad=launchpad,
            membership=Membership(launchpad, self.membership.allowed, self.membership.cache),
            package_requestors=parse_package_requestors(self.config.get("web", "package_requestors") or ""),
            site=site,
            arches=lambda release: self.arches(conn, release),
        )


def services() -> RequestServices:
    return flask.current_app.extensions["autopkgtest-request"]
