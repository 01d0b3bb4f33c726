# SPDX-License-Identifier: GPL-3.0-or-later
"""What the charm writes: autopkgtest-cloud.conf and the Apache variables.

Pure functions of the charm's inputs, so they are easy to test. The file
layout matches the shipped systemd units and tmpfiles entry (state under
/var/lib/autopkgtest-web, throwaway caches under /run/autopkgtest-web).
"""

from __future__ import annotations

import configparser
import io
import urllib.parse
from dataclasses import dataclass, field

INSTALL_DIR = "/opt/autopkgtest-web"
VENV = f"{INSTALL_DIR}/venv"
SOURCE_CHECKOUT = f"{INSTALL_DIR}/src"
CODE_LINK = f"{INSTALL_DIR}/webcontrol"
CONFIG_DIR = "/etc/autopkgtest-web"
CONFIG_FILE = f"{CONFIG_DIR}/autopkgtest-cloud.conf"
STATE_DIR = "/var/lib/autopkgtest-web"
RUNTIME_DIR = "/run/autopkgtest-web"
PUBLIC_DB = f"{STATE_DIR}/public/autopkgtest.db"
RUNNING_JSON = f"{RUNTIME_DIR}/running.json"
ALERT_FILE = f"{STATE_DIR}/alert"
SERVICE_USER = "autopkgtest-web"
APACHE_SITE = "/etc/apache2/sites-available/autopkgtest-web.conf"
APACHE_DEFINES = "/etc/apache2/conf-available/autopkgtest-web-site.conf"
#: Apache's environment (deploy/apache2/apache2.service.d/): read at start, so a change restarts Apache.
APACHE_DROP_IN = "/etc/systemd/system/apache2.service.d/autopkgtest-web.conf"
APACHE_MODULES = ("wsgi", "proxy", "proxy_http", "rewrite", "headers", "deflate", "filter", "alias", "env", "mime")

SWIFT_SECRET_KEYS = {
    # Juju secret keys allow no underscores: secret key -> [swift] option.
    "auth-url": "os_auth_url",
    "username": "os_username",
    "password": "os_password",
    "project-name": "os_project_name",
    "project-domain-name": "os_project_domain_name",
    "user-domain-name": "os_user_domain_name",
    "region-name": "os_region_name",
    "identity-api-version": "os_identity_api_version",
}
REQUIRED_SWIFT_KEYS = ("auth-url", "username", "password")
QUEUE_TYPES = ("classic", "quorum")
# Quorum queues keep working with one node down only with three or more members.
QUORUM_MIN_NODES = 3


class SiteConfigError(Exception):
    """An input the operator must fix; the message says which."""


@dataclass(frozen=True)
class SiteInputs:
    """Everything the rendered files depend on."""

    amqp_uri: str  # one amqp:// URI, or the nodes of a cluster separated by spaces
    swift: dict[str, str]
    amqp_queue_type: str = "classic"
    site_url: str = ""
    releases: str = ""
    archive_url: str = ""
    allowed_requestors: str = ""
    swift_storage_url: str = ""
    port: int = 80
    wsgi_processes: int = 4
    wsgi_threads: int = 8
    extra: dict[str, dict[str, str]] = field(default_factory=dict)


def amqp_uri(username: str, password: str, host: str, vhost: str = "/", port: int = 5672) -> str:
    """An amqp:// URI; the default vhost "/" is left out, any other is percent-encoded."""
    user = urllib.parse.quote(username, safe="")
    secret = urllib.parse.quote(password, safe="")
    host_part = f"[{host}]" if ":" in host else host
    path = "" if vhost == "/" else "/" + urllib.parse.quote(vhost, safe="")
    return f"amqp://{user}:{secret}@{host_part}:{port}{path}"


def amqp_queue_type(option: str, uri: str) -> str:
    """``[amqp] queue_type`` from the amqp-queue-type option. Raises SiteConfigError.

    ``auto`` picks quorum for a cluster of three or more nodes (the number
    of URIs), classic otherwise.
    """
    option = option.strip() or "auto"
    if option == "auto":
        return "quorum" if len(uri.split()) >= QUORUM_MIN_NODES else "classic"
    if option not in QUEUE_TYPES:
        raise SiteConfigError(f"amqp-queue-type must be auto, classic or quorum, not {option!r}")
    return option


def swift_section(secret: dict[str, str]) -> dict[str, str]:
    """The [swift] section from the secret's content. Raises SiteConfigError."""
    missing = [key for key in REQUIRED_SWIFT_KEYS if not secret.get(key)]
    if missing:
        raise SiteConfigError("swift-credentials secret lacks " + ", ".join(missing))
    unknown = sorted(set(secret) - set(SWIFT_SECRET_KEYS))
    if unknown:
        raise SiteConfigError("swift-credentials secret has unknown keys " + ", ".join(unknown))
    return {SWIFT_SECRET_KEYS[key]: value for key, value in secret.items() if value}


def _validate_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise SiteConfigError(f"{name} must be an {'/'.join(schemes)} URL, not {value!r}")


def config_sections(inputs: SiteInputs) -> dict[str, dict[str, str]]:
    """autopkgtest-cloud.conf as {section: {key: value}}. Raises SiteConfigError."""
    web = {
        "database": f"{STATE_DIR}/autopkgtest.db",
        "database_public": PUBLIC_DB,
        "running_cache": RUNNING_JSON,
        "amqp_queue_cache": f"{RUNTIME_DIR}/queued.json",
        "stats_cache_dir": f"{STATE_DIR}/stats",
        "ppa_containers_cache_dir": RUNTIME_DIR,
        "indexed_packages": f"{RUNTIME_DIR}/indexed-packages.json",
        "team_cache": f"{RUNTIME_DIR}/team-cache.json",
        "state_dir": STATE_DIR,
        "runtime_dir": RUNTIME_DIR,
        "alert": ALERT_FILE,
        "results_store": "swift",
    }
    if inputs.site_url:
        _validate_url("site-url", inputs.site_url, ("http", "https"))
        web["site_url"] = inputs.site_url.rstrip("/")
    if inputs.swift_storage_url:
        _validate_url("swift-storage-url", inputs.swift_storage_url, ("http", "https"))
        web["swift_storage_url"] = inputs.swift_storage_url.rstrip("/")
        if inputs.site_url:
            # Result links go through our own /results/ proxy.
            web["external_swift_url"] = inputs.site_url.rstrip("/") + "/results"
    if inputs.releases.split():
        web["releases"] = " ".join(inputs.releases.split())
    if inputs.archive_url:
        web["archive_url"] = inputs.archive_url
    if inputs.allowed_requestors.strip():
        web["allowed_requestors"] = inputs.allowed_requestors.strip()
    uris = inputs.amqp_uri.split()
    if not uris:
        raise SiteConfigError("no AMQP URI")
    for uri in uris:
        _validate_url("the AMQP URI", uri, ("amqp", "amqps"))
    if inputs.amqp_queue_type not in QUEUE_TYPES:
        raise SiteConfigError(f"unknown AMQP queue type {inputs.amqp_queue_type!r}")
    amqp = {"uri": " ".join(uris), "queue_type": inputs.amqp_queue_type}
    sections = {"web": web, "amqp": amqp, "swift": dict(inputs.swift)}
    for section, values in inputs.extra.items():
        sections.setdefault(section, {}).update(values)
    return sections


def render_config(inputs: SiteInputs) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    for section, values in config_sections(inputs).items():
        parser[section] = values
    out = io.StringIO()
    out.write("# Written by the autopkgtest-web charm; changes here are overwritten.\n")
    parser.write(out)
    return out.getvalue()


def render_apache_defines(inputs: SiteInputs, code_dir: str = CODE_LINK) -> str:
    """The Define lines the shipped site reads (deploy/apache2/autopkgtest-web.conf)."""
    defines = {
        "AUTOPKGTEST_WEB_VHOST": f"*:{inputs.port}",
        "AUTOPKGTEST_WEB_CONF": CONFIG_FILE,
        "AUTOPKGTEST_WEB_VENV": VENV,
        "AUTOPKGTEST_WEB_CODE": code_dir,
        "AUTOPKGTEST_WEB_PUBLIC_DB": PUBLIC_DB,
        "AUTOPKGTEST_WEB_RUNNING_JSON": RUNNING_JSON,
        "AUTOPKGTEST_WEB_USER": SERVICE_USER,
        "AUTOPKGTEST_WEB_GROUP": SERVICE_USER,
        "AUTOPKGTEST_WEB_PROCESSES": str(inputs.wsgi_processes),
        "AUTOPKGTEST_WEB_THREADS": str(inputs.wsgi_threads),
    }
    if inputs.port != 80:  # Debian's ports.conf already listens on 80
        defines["AUTOPKGTEST_WEB_LISTEN"] = str(inputs.port)
    if inputs.site_url:
        parsed = urllib.parse.urlsplit(inputs.site_url)
        defines["AUTOPKGTEST_WEB_SERVER_NAME"] = f"{parsed.scheme}://{parsed.netloc}"
    if inputs.swift_storage_url:
        defines["AUTOPKGTEST_WEB_SWIFT_STORAGE_URL"] = inputs.swift_storage_url.rstrip("/")
    for name, value in defines.items():
        if any(ch.isspace() for ch in value) or '"' in value:
            raise SiteConfigError(f"{name} must not contain spaces or quotes: {value!r}")
    lines = ["# Written by the autopkgtest-web charm; read before sites-enabled/autopkgtest-web.conf."]
    lines += [f"Define {name} {value}" for name, value in defines.items()]
    return "\n".join(lines) + "\n"


def apache_modules(inputs: SiteInputs) -> tuple[str, ...]:
    """Modules the site needs; mod_ssl only to proxy /results/ to an https Swift."""
    if inputs.swift_storage_url.startswith("https://"):
        return (*APACHE_MODULES, "ssl")
    return APACHE_MODULES


def render_alert(level: str, message: str) -> str:
    """The [web] alert file content. Raises SiteConfigError."""
    if level not in ("info", "warning", "danger"):
        raise SiteConfigError(f"level must be info, warning or danger, not {level!r}")
    message = message.strip()
    if not message:
        raise SiteConfigError("message must not be empty")
    if "\n" in message or "\r" in message:
        raise SiteConfigError("message must be one line")
    return f"{level}:{message}"
