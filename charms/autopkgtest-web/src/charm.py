#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Juju machine charm for autopkgtest-web.

Every configuration event runs one idempotent reconcile: install the Debian
packages (once per charm revision), install the project from ``source`` into
a virtualenv (when the source changed), render autopkgtest-cloud.conf and the
Apache variables, install the shipped Apache site and systemd units from the
same source tree, and enable the services. Missing inputs leave the unit
blocked (operator action needed) or waiting (relation data not there yet),
with the reason in the status message.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import ops
import siteconfig
from host import Host, HostError
from siteconfig import SiteConfigError, SiteInputs

log = logging.getLogger(__name__)

PACKAGES = ("apache2", "libapache2-mod-wsgi-py3", "python3-venv", "git", "distro-info-data")
TARGET = "autopkgtest-web.target"
DAEMONS = (
    "autopkgtest-web-download-results.service",
    "autopkgtest-web-amqp-status-collector.service",
    "autopkgtest-web-index-failures.service",
)
DOWNLOAD_ALL_UNIT = "autopkgtest-web-download-all-results.service"
UNIT_PATTERN = re.compile(r"^autopkgtest-web(-[a-z0-9-]+)?\.(service|timer|target)$")
GIT_SOURCE = re.compile(r"^(git\+|https?://|git://|ssh://)|\.git$|^[\w.-]+@[\w.-]+:")


def _unit_number(unit: ops.Unit) -> int:
    return int(unit.name.rsplit("/", 1)[1])


class WaitingForRelation(Exception):
    """Relation data this unit needs has not arrived yet."""


class AutopkgtestWebCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(packages_for="", deployed="", code_dir="", apache_applied="", apache_env="")
        self.host = self.make_host()
        for event in (
            self.on.install,
            self.on.upgrade_charm,
            self.on.config_changed,
            self.on.secret_changed,
            self.on.amqp_relation_changed,
            self.on.amqp_relation_departed,
            self.on.amqp_relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.amqp_relation_joined, self._on_amqp_joined)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.set_alert_action, self._on_set_alert)
        framework.observe(self.on.clear_alert_action, self._on_clear_alert)
        framework.observe(self.on.download_all_results_action, self._on_download_all_results)

    def make_host(self) -> Host:
        """The managed machine (unit tests return one rooted in a temp folder)."""
        return Host()

    # --- reconcile -------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase) -> None:
        """Bring the machine to the state the config and relations describe.

        HostError (a failed apt, pip, git or systemctl) propagates: the hook
        fails and Juju retries it.
        """
        force = isinstance(event, (ops.InstallEvent, ops.UpgradeCharmEvent))
        self._install_packages(force)
        source = str(self.config.get("source", "")).strip()
        if not source:
            self.unit.status = ops.BlockedStatus("set the source option (git URL or project directory)")
            return
        try:
            self._deploy_code(source, str(self.config.get("source-ref", "")).strip(), force)
            inputs = self._inputs()
        except SiteConfigError as err:
            self.unit.status = ops.BlockedStatus(str(err))
            return
        except WaitingForRelation as err:
            self.unit.status = ops.WaitingStatus(str(err))
            return
        self.unit.status = ops.MaintenanceStatus("configuring")
        try:
            config_changed = self._write_site(inputs)
        except SiteConfigError as err:
            self.unit.status = ops.BlockedStatus(str(err))
            return
        self._start_services(config_changed)
        self.unit.set_ports(inputs.port)
        self.unit.status = ops.ActiveStatus()

    def _install_packages(self, force: bool) -> None:
        wanted = ",".join(PACKAGES)
        if self._stored.packages_for == wanted and not force:
            return
        self.unit.status = ops.MaintenanceStatus("installing packages")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        self.host.run(["apt-get", "update", "-q"], env=env)
        self.host.run(["apt-get", "install", "-q", "-y", "--no-install-recommends", *PACKAGES], env=env)
        self._stored.packages_for = wanted

    def _source_tree(self, source: str, ref: str) -> Path:
        """The project tree on the machine: a git checkout, or the given directory."""
        if GIT_SOURCE.search(source):
            url = source.removeprefix("git+")
            checkout = siteconfig.SOURCE_CHECKOUT
            if not (self.host.path(checkout) / ".git").exists():
                self.host.run(["git", "clone", "--quiet", url, checkout])
            else:
                self.host.run(["git", "-C", checkout, "remote", "set-url", "origin", url])
            self.host.run(["git", "-C", checkout, "fetch", "--quiet", "--force", "--tags", "origin", ref or "HEAD"])
            self.host.run(["git", "-C", checkout, "checkout", "--quiet", "--force", "FETCH_HEAD"])
            return self.host.path(checkout)
        if not source.startswith("/"):
            raise SiteConfigError(f"source must be a git URL or an absolute directory, not {source!r}")
        tree = self.host.path(source)
        if not (tree / "pyproject.toml").exists():
            raise SiteConfigError(f"source {source} holds no pyproject.toml")
        return tree

    def _deploy_code(self, source: str, ref: str, force: bool) -> Path:
        """Install the project into the virtualenv and its units and site files. Returns the tree."""
        wanted = f"{source}#{ref}"
        if self._stored.deployed == wanted and not force and self._stored.code_dir:
            return self._source_tree_cached(source)
        self.unit.status = ops.MaintenanceStatus("installing autopkgtest-web")
        tree = self._source_tree(source, ref)
        venv = siteconfig.VENV
        if not self.host.path(f"{venv}/bin/python").exists():
            self.host.run(["/usr/bin/python3", "-m", "venv", venv])
        machine_tree = "/" + str(tree.relative_to(self.host.root))
        # The tree's constraints.txt pins every dependency to the versions its CI tested.
        pins = ["-c", f"{machine_tree}/constraints.txt"] if (tree / "constraints.txt").exists() else []
        self.host.run([f"{venv}/bin/pip", "install", "--quiet", "--upgrade", *pins, machine_tree], timeout=1800)
        # -I: do not let the current folder shadow the installed package.
        code_dir = self.host.run(
            [f"{venv}/bin/python", "-I", "-c", "import os, webcontrol; print(os.path.dirname(webcontrol.__file__))"]
        ).strip()
        if not code_dir.startswith("/"):
            raise HostError(f"cannot locate the installed webcontrol package (got {code_dir!r})")
        # The Apache site names this stable path, whatever the Python version.
        self.host.symlink(code_dir, siteconfig.CODE_LINK)
        self._install_system_files(tree)
        self._stored.deployed = wanted
        self._stored.code_dir = code_dir
        return tree

    def _source_tree_cached(self, source: str) -> Path:
        if GIT_SOURCE.search(source):
            return self.host.path(siteconfig.SOURCE_CHECKOUT)
        return self.host.path(source)

    def _install_system_files(self, tree: Path) -> None:
        """systemd units, tmpfiles and sysusers entries from the source tree, then create user and folders."""
        shipped = {p.name: p for p in sorted((tree / "systemd").iterdir()) if UNIT_PATTERN.match(p.name)}
        if TARGET not in shipped:
            raise SiteConfigError(f"source tree has no systemd/{TARGET}")
        unit_dir = self.host.path("/etc/systemd/system")
        stale = [p.name for p in unit_dir.glob("autopkgtest-web*") if UNIT_PATTERN.match(p.name)]
        stale = [name for name in stale if name not in shipped]
        if stale:
            self.host.run(["systemctl", "disable", "--now", *stale])
            for name in stale:
                self.host.remove(f"/etc/systemd/system/{name}")
        for name, path in shipped.items():
            self.host.copy_file(path, f"/etc/systemd/system/{name}")
        self.host.copy_file(tree / "systemd" / "autopkgtest-web.sysusers", "/etc/sysusers.d/autopkgtest-web.conf")
        self.host.copy_file(tree / "systemd" / "autopkgtest-web.tmpfiles", "/etc/tmpfiles.d/autopkgtest-web.conf")
        self.host.copy_file(tree / "deploy" / "apache2" / "autopkgtest-web.conf", siteconfig.APACHE_SITE)
        self.host.copy_file(
            tree / "deploy" / "apache2" / "apache2.service.d" / "autopkgtest-web.conf", siteconfig.APACHE_DROP_IN
        )
        self.host.run(["systemd-sysusers", "/etc/sysusers.d/autopkgtest-web.conf"])
        self.host.run(["systemd-tmpfiles", "--create", "/etc/tmpfiles.d/autopkgtest-web.conf"])
        self.host.run(["systemctl", "daemon-reload"])

    def _amqp_uri(self) -> str:
        """One URI per broker node, in unit order: the programs fail over from one to the next."""
        configured = " ".join(str(self.config.get("amqp-uri", "")).split())
        if configured:
            return configured
        relation = self.model.get_relation("amqp")
        if relation is None:
            raise SiteConfigError("needs the amqp relation (rabbitmq-server) or the amqp-uri option")
        username = str(self.config.get("amqp-username") or "autopkgtest-web")
        vhost = str(self.config.get("amqp-vhost") or "/")
        app_password = relation.app and relation.data[relation.app].get("password")
        uris = []
        for unit in sorted(relation.units, key=_unit_number):
            data = relation.data[unit]
            password = data.get("password") or app_password
            host = data.get("hostname") or data.get("private-address")
            if password and host:
                uri = siteconfig.amqp_uri(username, password, host, vhost)
                if uri not in uris:  # units behind one virtual IP all report that address
                    uris.append(uri)
        if not uris:
            raise WaitingForRelation("waiting for AMQP credentials from the amqp relation")
        return " ".join(uris)

    def _swift(self) -> dict[str, str]:
        secret_id = self.config.get("swift-credentials")
        if not secret_id:
            raise SiteConfigError("set swift-credentials to a Juju secret with the Swift credentials")
        try:
            content = self.model.get_secret(id=str(secret_id)).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as err:
            raise SiteConfigError(f"cannot read the swift-credentials secret (granted?): {err}") from None
        return siteconfig.swift_section(content)

    def _inputs(self) -> SiteInputs:
        uri = self._amqp_uri()
        return SiteInputs(
            amqp_uri=uri,
            amqp_queue_type=siteconfig.amqp_queue_type(str(self.config.get("amqp-queue-type", "auto")), uri),
            swift=self._swift(),
            site_url=str(self.config.get("site-url", "")).strip(),
            releases=str(self.config.get("releases", "")),
            archive_url=str(self.config.get("archive-url", "")).strip(),
            allowed_requestors=str(self.config.get("allowed-requestors", "")),
            swift_storage_url=str(self.config.get("swift-storage-url", "")).strip(),
            port=int(self.config.get("port", 80)),
            wsgi_processes=int(self.config.get("wsgi-processes", 4)),
            wsgi_threads=int(self.config.get("wsgi-threads", 8)),
        )

    def _write_site(self, inputs: SiteInputs) -> bool:
        """Render the config and Apache variables; reload Apache on change. Returns True if the config changed."""
        config_text = siteconfig.render_config(inputs)
        defines_text = siteconfig.render_apache_defines(inputs, siteconfig.CODE_LINK)
        modules = siteconfig.apache_modules(inputs)
        config_changed = self.host.write_file(
            siteconfig.CONFIG_FILE,
            config_text,
            mode=0o640,  # holds the Swift and AMQP passwords
            owner=("root", siteconfig.SERVICE_USER),
        )
        self.host.write_file(siteconfig.APACHE_DEFINES, defines_text)
        # The web apps read the config, Apache the variables and the site (from the deployed tree).
        applied = hashlib.sha256(
            "\0".join((config_text, defines_text, " ".join(modules), self._stored.deployed)).encode()
        ).hexdigest()
        if applied == self._stored.apache_applied:
            return config_changed
        self.host.run(["a2enmod", "-q", *modules])
        self.host.run(["a2enconf", "-q", "autopkgtest-web-site"])
        self.host.run(["a2ensite", "-q", "autopkgtest-web"])
        if self.host.path("/etc/apache2/sites-enabled/000-default.conf").exists():
            self.host.run(["a2dissite", "-q", "000-default"])
        self.host.run(["apache2ctl", "configtest"])
        env_text = self.host.path(siteconfig.APACHE_DROP_IN).read_text()
        if env_text != self._stored.apache_env:
            # Apache's environment (MALLOC_ARENA_MAX) is read at start only: a graceful reload keeps the old one.
            self.host.run(["systemctl", "restart", "apache2.service"])
            self._stored.apache_env = env_text
        else:
            # Graceful: running requests finish; the WSGI daemons restart and re-read the config.
            self.host.run(["systemctl", "reload-or-restart", "apache2.service"])
        self._stored.apache_applied = applied
        return config_changed

    def _start_services(self, config_changed: bool) -> None:
        timers = sorted(p.name for p in self.host.path("/etc/systemd/system").glob("autopkgtest-web-*.timer"))
        self.host.run(["systemctl", "enable", "--now", TARGET, *DAEMONS, *timers])
        if config_changed:
            # The long-running consumers read the config once at start; oneshots read it every run.
            self.host.run(["systemctl", "try-restart", *DAEMONS])

    def _on_remove(self, event: ops.RemoveEvent) -> None:
        """Stop serving and stop every unit; data under /var/lib/autopkgtest-web is kept."""
        units = sorted(
            p.name for p in self.host.path("/etc/systemd/system").glob("autopkgtest-web*") if UNIT_PATTERN.match(p.name)
        )
        if units:
            self.host.run(["systemctl", "disable", "--now", *units])
        if self.host.path("/etc/apache2/sites-enabled/autopkgtest-web.conf").exists():
            self.host.run(["a2dissite", "-q", "autopkgtest-web"])
            self.host.run(["a2disconf", "-q", "autopkgtest-web-site"])
            self.host.run(["systemctl", "reload-or-restart", "apache2.service"])

    # --- relation ----------------------------------------------------------------

    def _on_amqp_joined(self, event: ops.RelationJoinedEvent) -> None:
        # rabbitmq-server creates this user and vhost and answers with hostname and password.
        data = event.relation.data[self.unit]
        data["username"] = str(self.config.get("amqp-username") or "autopkgtest-web")
        data["vhost"] = str(self.config.get("amqp-vhost") or "/")
        self._reconcile(event)

    # --- actions -----------------------------------------------------------------

    def _on_set_alert(self, event: ops.ActionEvent) -> None:
        try:
            content = siteconfig.render_alert(str(event.params.get("level", "info")), str(event.params["message"]))
        except SiteConfigError as err:
            event.fail(str(err))
            return
        # World-readable on purpose: it is shown on every public page.
        self.host.write_file(siteconfig.ALERT_FILE, content, mode=0o644)
        event.set_results({"alert": content})

    def _on_clear_alert(self, event: ops.ActionEvent) -> None:
        removed = self.host.remove(siteconfig.ALERT_FILE)
        event.set_results({"removed": removed})

    def _on_download_all_results(self, event: ops.ActionEvent) -> None:
        wait = bool(event.params.get("wait", False))
        argv = ["systemctl", "start", *([] if wait else ["--no-block"]), DOWNLOAD_ALL_UNIT]
        try:
            self.host.run(argv, timeout=7 * 3600)
        except HostError as err:
            event.fail(f"{err}; see journalctl -u {DOWNLOAD_ALL_UNIT}")
            return
        state = "finished" if wait else "started"
        event.set_results({"result": f"download-all-results {state}; log: journalctl -u {DOWNLOAD_ALL_UNIT}"})


if __name__ == "__main__":  # pragma: no cover
    ops.main(AutopkgtestWebCharm)
