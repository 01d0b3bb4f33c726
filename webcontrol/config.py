# SPDX-License-Identifier: GPL-3.0-or-later
"""The INI configuration file ``autopkgtest-cloud.conf``.

Every key is declared once in :data:`SETTINGS` with its type, default and
help text. Programs load the file once at start (``--config`` or the search
order below) and pass the :class:`Config` down; web apps load it on their
first request, preferring ``AUTOPKGTEST_CLOUD_CONF`` from the WSGI environ.
"""

from __future__ import annotations

import configparser
import datetime
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "AUTOPKGTEST_CLOUD_CONF"
SEARCH_PATHS = (
    "/etc/autopkgtest-web/autopkgtest-cloud.conf",
    "/etc/autopkgtest-website/autopkgtest-cloud.conf",
    "~/autopkgtest-cloud.conf",
)


class ConfigError(Exception):
    """The configuration file is missing, unreadable, or lacks a required key."""


def _words(value: str) -> list[str]:
    return [w for w in value.replace(",", " ").split() if w]


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    aliases: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting("web", "database", str, None, "rw SQLite results DB"),
    Setting("web", "database_public", str, None, "published copy that web apps read", ("database_ro",)),
    Setting("web", "external_swift_url", str, None, "public base URL of results", ("ExternalURL", "SwiftURL")),
    Setting("web", "site_url", str, None, "canonical public base URL"),
    Setting("web", "releases", _words, None, "supported releases, oldest first"),
    Setting("web", "archive_url", str, "http://archive.ubuntu.com/ubuntu", "Ubuntu mirror"),
    Setting("web", "amqp_queue_cache", str, None, "path of queued.json"),
    Setting("web", "running_cache", str, None, "path of running.json"),
    Setting("web", "stats_cache_dir", str, None, "directory of stats.json"),
    Setting("web", "ppa_containers_cache_dir", str, None, "directory of ppa_containers.json"),
    Setting("web", "indexed_packages", str, None, "path of the indexed-packages JSON"),
    Setting("web", "allowed_requestors", _words, [], "Launchpad teams allowed to request any test"),
    Setting("web", "package_requestors", str, "", "per-package extra requesters pkg:lpuser,..."),
    Setting("web", "alert", str, None, "file holding a level:message banner"),
    Setting("web", "api_keys", str, None, "API keys JSON {lpuser: key}"),
    Setting("web", "team_cache", str, None, "team membership cache (default <state_dir>/team-cache.json)"),
    Setting("web", "team_cache_seconds", _positive_int, 10800, "lifetime of a positive team answer"),
    Setting("web", "state_dir", str, "/var/lib/autopkgtest-web", "persistent state"),
    Setting("web", "runtime_dir", str, "/run/autopkgtest-web", "throwaway caches"),
    Setting("web", "results_store", str, None, "swift or local"),
    Setting("web", "results_dir", str, None, "root of the local result store"),
    Setting("web", "openid_provider", str, "https://login.ubuntu.com/", "OpenID 2.0 provider"),
    Setting("web", "launchpad_api", str, "https://api.launchpad.net/", "Launchpad service root"),
    Setting("web", "request_rate_limit", _positive_int, 0, "test requests per hour per requester (0 = off)"),
    Setting("web", "running_expiry_seconds", _positive_int, 300, "drop running entries without status"),
    Setting("web", "swift_storage_url", str, None, "public Swift storage URL proxied at /results/"),
    Setting("web", "backup_retention_days", _positive_int, 30, "how long db-backup keeps backups"),
    Setting("web", "trigger_index", str, None, "sidecar DB of runs per trigger (default: next to database_public)"),
    Setting(
        "web",
        "classification_index",
        str,
        None,
        "sidecar DB of each result's classification (default: next to database_public)",
    ),
    Setting("web", "failure_index", str, None, "FTS5 DB of failure excerpts (default: <state_dir>/failures.db)"),
    Setting("web", "failure_retention_days", _positive_int, 90, "how long failure excerpts stay searchable"),
    Setting("web", "failure_excerpt_bytes", _positive_int, 4096, "most bytes of log excerpt indexed per run"),
    Setting("web", "max_triggers", _positive_int, 50, "most distinct triggers in one test request"),
    Setting("web", "confirm_cross_site", lambda v: _boolean(v), True, "confirm cross-site cookie requests"),
    Setting("amqp", "uri", str, None, "amqp://user:password@host[:port][/vhost], several for a cluster"),
    Setting("amqp", "queue_type", lambda v: _choice(v, ("classic", "quorum")), "classic", "type of our durable queues"),
    Setting("amqp", "complete_exchange_durable", lambda v: _boolean(v), True, "testcomplete.fanout durable"),
    Setting("amqp", "status_exchange_auto_delete", lambda v: _boolean(v), False, "teststatus.fanout auto-delete"),
    Setting("swift", "os_auth_url", str, None, "Keystone (or tempauth) URL"),
    Setting("swift", "os_username", str, None, "user name (tempauth: account:user)"),
    Setting("swift", "os_password", str, None, "password (tempauth: key)"),
    Setting("swift", "os_project_name", str, None, "project"),
    Setting("swift", "os_project_domain_name", str, "Default", "project domain"),
    Setting("swift", "os_user_domain_name", str, "Default", "user domain"),
    Setting("swift", "os_region_name", str, None, "region"),
    Setting("swift", "os_identity_api_version", str, "3", "3 (Keystone) or 1 (tempauth)"),
    Setting("github", "secrets", str, None, "webhook secrets JSON {package: secret}"),
    Setting("github", "status_credentials", str, None, "file of project:user:token lines"),
    Setting("github", "pending_dir", str, None, "pending-job records"),
    Setting("github", "job_max_age_days", _positive_int, 7, "age of a pending job reported as error"),
    Setting("github", "api_url", str, "https://api.github.com/", "the only GitHub API base statuses go to"),
    Setting("influxdb", "influxdb_hostname", str, None, "InfluxDB host"),
    Setting("influxdb", "influxdb_port", int, 8086, "InfluxDB port"),
    Setting("influxdb", "influxdb_username", str, None, "InfluxDB user"),
    Setting("influxdb", "influxdb_password", str, None, "InfluxDB password"),
    Setting("influxdb", "influxdb_database", str, None, "InfluxDB database"),
    Setting("influxdb", "influxdb_context", str, None, "value of the instance tag"),
)

_BY_KEY = {(s.section, s.key): s for s in SETTINGS}


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError("must be one of " + ", ".join(choices))
    return value


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError("must be true or false")


class Config:
    """Typed, read-only view of one configuration file."""

    def __init__(self, parser: configparser.ConfigParser, path: str):
        self.path = path
        self._values: dict[tuple[str, str], Any] = {}
        for setting in SETTINGS:
            self._values[(setting.section, setting.key)] = self._read(parser, setting)
        if parser.has_option("web", "database_public") and parser.has_option("web", "database_ro"):
            log.warning("%s: both [web] database_public and database_ro are set; using database_public", path)

    def _read(self, parser: configparser.ConfigParser, setting: Setting) -> Any:
        for name in (setting.key, *setting.aliases):
            if parser.has_option(setting.section, name):
                raw = parser.get(setting.section, name, raw=True).strip()
                try:
                    return setting.parse(raw)
                except ValueError as err:
                    raise ConfigError(f"{self.path}: [{setting.section}] {name} = {raw!r} is invalid: {err}") from None
        return setting.default

    def get(self, section: str, key: str) -> Any:
        """The value of a declared key, or its default (None when it has none)."""
        return self._values[(section, key)]

    def need(self, section: str, key: str) -> Any:
        """The value of a key the caller cannot work without. Raises ConfigError."""
        value = self.get(section, key)
        if value is None or value == "":
            raise ConfigError(f"{self.path}: missing required key [{section}] {key}")
        return value

    def need_all(self, keys: Iterable[tuple[str, str]]) -> None:
        """Check at start-up that every listed key is set. Raises ConfigError."""
        for section, key in keys:
            self.need(section, key)

    # Derived values used by several programs.

    @property
    def results_store(self) -> str:
        kind = self.get("web", "results_store")
        if kind is None:
            return "swift" if self.get("swift", "os_auth_url") else "local"
        if kind not in ("swift", "local"):
            raise ConfigError(f"{self.path}: [web] results_store must be swift or local, not {kind!r}")
        return kind

    @property
    def state_dir(self) -> Path:
        return Path(self.get("web", "state_dir"))

    @property
    def pending_dir(self) -> Path:
        configured = self.get("github", "pending_dir")
        return Path(configured) if configured else self.state_dir / "github-pending"

    @property
    def team_cache(self) -> Path:
        """Positive team answers: never in a world-writable folder, so under state_dir by default."""
        configured = self.get("web", "team_cache")
        return Path(configured) if configured else self.state_dir / "team-cache.json"

    @property
    def public_db_sha256(self) -> str:
        return self.need("web", "database_public") + ".sha256"

    def external_results_url(self, site_url: str | None = None) -> str:
        """Base URL of result links: ``<this>/<container>/<object>``."""
        configured = self.get("web", "external_swift_url")
        if configured:
            return configured.rstrip("/")
        base = (self.get("web", "site_url") or site_url or "").rstrip("/")
        return f"{base}/results"

    def supported_releases(self, db_releases: Iterable[str] = (), today: datetime.date | None = None) -> list[str]:
        """Releases oldest first: configured, else distro-info, else the DB's.

        ``db_releases`` is the DB's release list ordered by oldest run (the
        caller queries it; this module does not touch the DB).
        """
        configured = self.get("web", "releases")
        if configured:
            return list(configured)
        found = distro_info_releases(today)
        if found:
            return found
        return list(db_releases)


def distro_info_releases(today: datetime.date | None = None) -> list[str]:
    """Supported Ubuntu releases (+ESM, + devel) from distro-info, oldest first."""
    try:
        import distro_info
    except ImportError:
        return []
    today = today or datetime.date.today()
    try:
        info = distro_info.UbuntuDistroInfo()
        names = set(info.supported(today)) | set(info.supported_esm(today))
        try:
            names.add(info.devel(today))
        except distro_info.DistroDataOutdated:
            log.info("distro-info data has no development release for %s", today)
        ordered = [name for name in info.all if name in names]
    except (OSError, ValueError, distro_info.DistroDataOutdated) as err:
        log.warning("distro-info unusable: %s", err)
        return []
    return ordered


def find_config_path(explicit: str | None = None, environ: dict | None = None) -> str:
    """The config path from ``explicit``, the environment, then the search list.

    Raises ConfigError when none exists.
    """
    if explicit:
        return explicit
    for env in (environ or {}, os.environ):
        if env.get(ENV_VAR):
            return env[ENV_VAR]
    for candidate in SEARCH_PATHS:
        path = os.path.expanduser(candidate)
        if os.path.exists(path):
            return path
    raise ConfigError(
        f"no configuration file: pass --config, set {ENV_VAR}, or create one of " + ", ".join(SEARCH_PATHS)
    )


def load(explicit: str | None = None, environ: dict | None = None) -> Config:
    """Read and validate the configuration file. Raises ConfigError."""
    path = find_config_path(explicit, environ)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # legacy keys such as ExternalURL keep their case
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as err:
        raise ConfigError(f"cannot read configuration {path}: {err.strerror}") from None
    except configparser.Error as err:
        raise ConfigError(f"{path}: malformed configuration: {err}") from None
    return Config(parser, path)


def _parser_from(values: dict[str, dict[str, Any]]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    for section, keys in values.items():
        parser.add_section(section)
        for key, value in keys.items():
            if value is not None:
                parser.set(section, key, str(value))
    return parser


def from_dict(values: dict[str, dict[str, Any]], path: str = "<test>") -> Config:
    """A Config from ``{section: {key: value}}`` (tests, demo). Raises ConfigError."""
    return Config(_parser_from(values), path)


def write(values: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """Write ``{section: {key: value}}`` as an INI file (tests, demo)."""
    with open(path, "w", encoding="utf-8") as handle:
        _parser_from(values).write(handle)
