# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the charm with ops.testing.Harness.

The charm's real logic runs against a temporary root folder: files are
really written there (and compared with the project's shipped files), while
commands (apt, pip, git, systemctl, a2enmod) are recorded instead of run.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import charm as charm_module
import ops
import pytest
import siteconfig
from host import Host
from ops.testing import ActionFailed, Harness

CHARM_DIR = Path(__file__).resolve().parents[2]
PROJECT = CHARM_DIR.parents[1]
# ops 3 marks Harness as pending deprecation in favour of the state-transition
# API (a separate package, ops[testing]); Harness is still fully supported.
pytestmark = pytest.mark.filterwarnings("ignore:Harness is deprecated:PendingDeprecationWarning")

SOURCE = "/srv/autopkgtest-web"
CODE_DIR = "/opt/autopkgtest-web/venv/lib/python3.12/site-packages/webcontrol"
SWIFT_SECRET = {
    "auth-url": "https://keystone.example.com:5000/v3",
    "username": "autopkgtest",
    "password": "sw1ft pass%word",
    "project-name": "autopkgtest",
    "project-domain-name": "default",
    "user-domain-name": "default",
    "region-name": "RegionOne",
}


class RecordingHost(Host):
    """Files go under a temp root; commands are recorded, not run."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.commands: list[list[str]] = []
        self.owners: dict[str, tuple[str, str]] = {}
        self.fail_on: str | None = None

    def run(self, argv, timeout=3600, env=None):
        self.commands.append(list(argv))
        if self.fail_on and self.fail_on in argv:
            from host import HostError

            raise HostError(f"{' '.join(argv)} failed (1): simulated")
        if argv[:2] == [f"{siteconfig.VENV}/bin/python", "-I"]:
            return CODE_DIR + "\n"
        if argv[:3] == ["/usr/bin/python3", "-m", "venv"]:
            # What python3 -m venv leaves behind, so the charm does not make it again.
            python = self.path(argv[3]) / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            python.touch()
        return ""

    def chown(self, path, user, group):
        self.owners[path.name] = (user, group)

    def ran(self, *prefix: str) -> list[list[str]]:
        return [cmd for cmd in self.commands if cmd[: len(prefix)] == list(prefix)]


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    # The project checkout itself is the source, so the shipped files are the real ones.
    (root / "srv" / "autopkgtest-web").symlink_to(PROJECT)
    (root / "etc" / "apache2" / "sites-enabled").mkdir(parents=True)
    (root / "etc" / "apache2" / "sites-enabled" / "000-default.conf").touch()
    recording = RecordingHost(root)
    monkeypatch.setattr(charm_module.AutopkgtestWebCharm, "make_host", lambda self: recording)
    return recording


@pytest.fixture
def harness(host):
    harness = Harness(charm_module.AutopkgtestWebCharm)
    harness.set_leader(True)
    yield harness
    harness.cleanup()


def add_amqp(harness, data: dict[str, str] | None = None) -> int:
    rel = harness.add_relation("amqp", "rabbitmq-server")
    harness.add_relation_unit(rel, "rabbitmq-server/0")
    if data is not None:
        harness.update_relation_data(rel, "rabbitmq-server/0", data)
    return rel


def add_swift_secret(harness, content=None) -> str:
    secret_id = harness.add_user_secret(content or SWIFT_SECRET)
    harness.grant_secret(secret_id, harness.model.app.name)
    return secret_id


def configure(harness, **extra) -> None:
    secret_id = add_swift_secret(harness)
    harness.update_config(
        {
            "source": SOURCE,
            "site-url": "https://autopkgtest.example.com",
            "releases": "jammy noble  resolute",
            "swift-credentials": secret_id,
            "swift-storage-url": "https://swift.example.com/v1/AUTH_abc",
            "allowed-requestors": "autopkgtest-requestors",
            **extra,
        }
    )


def read_config(host: RecordingHost) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(host.path(siteconfig.CONFIG_FILE))
    return parser


def test_without_source_it_installs_packages_and_blocks(harness, host):
    harness.begin_with_initial_hooks()
    assert harness.model.unit.status == ops.BlockedStatus("set the source option (git URL or project directory)")
    install = host.ran("apt-get", "install")
    assert install and {"apache2", "libapache2-mod-wsgi-py3", "python3-venv"} <= set(install[0])
    assert not host.path(siteconfig.CONFIG_FILE).exists()


def test_without_amqp_it_blocks_with_the_reason(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness)
    assert harness.model.unit.status == ops.BlockedStatus(
        "needs the amqp relation (rabbitmq-server) or the amqp-uri option"
    )
    assert not host.ran("systemctl", "enable", "--now")


def test_amqp_relation_asks_for_user_and_vhost_then_waits_for_password(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-username": "webuser"})
    rel = add_amqp(harness)
    assert harness.get_relation_data(rel, harness.model.unit.name) == {"username": "webuser", "vhost": "/"}
    assert isinstance(harness.model.unit.status, ops.WaitingStatus)
    harness.update_relation_data(rel, "rabbitmq-server/0", {"hostname": "10.1.2.3", "password": "p@ss/w:rd"})
    assert harness.model.unit.status == ops.ActiveStatus()
    assert read_config(host)["amqp"]["uri"] == "amqp://webuser:p%40ss%2Fw%3Ard@10.1.2.3:5672"


def test_full_deployment(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    assert harness.model.unit.status == ops.ActiveStatus()

    # The project went into the virtualenv, from the configured tree.
    assert host.ran("/usr/bin/python3", "-m", "venv", siteconfig.VENV)
    assert host.ran(
        f"{siteconfig.VENV}/bin/pip", "install", "--quiet", "--upgrade", "-c", f"{SOURCE}/constraints.txt", SOURCE
    )
    assert os.readlink(host.path(siteconfig.CODE_LINK)) == CODE_DIR

    # autopkgtest-cloud.conf: private to root and the service group, values from config, secret, relation.
    conf_path = host.path(siteconfig.CONFIG_FILE)
    assert conf_path.stat().st_mode & 0o777 == 0o640
    owners = {owner for name, owner in host.owners.items() if name.startswith(f".{conf_path.name}.")}
    assert owners == {("root", "autopkgtest-web")}  # set on the temp file before the rename
    conf = read_config(host)
    assert conf["web"]["releases"] == "jammy noble resolute"
    assert conf["web"]["site_url"] == "https://autopkgtest.example.com"
    assert conf["web"]["external_swift_url"] == "https://autopkgtest.example.com/results"
    assert conf["web"]["swift_storage_url"] == "https://swift.example.com/v1/AUTH_abc"
    assert conf["web"]["database_public"] == siteconfig.PUBLIC_DB
    assert conf["web"]["alert"] == siteconfig.ALERT_FILE
    assert conf["amqp"]["uri"] == "amqp://autopkgtest-web:secret@10.1.2.3:5672"
    assert conf["swift"]["os_password"] == "sw1ft pass%word"
    assert conf["swift"]["os_auth_url"] == SWIFT_SECRET["auth-url"]
    assert conf["swift"]["os_region_name"] == "RegionOne"

    # Shipped files installed unchanged from the same tree.
    for unit in (PROJECT / "systemd").glob("autopkgtest-web*"):
        if unit.suffix in (".service", ".timer", ".target"):
            assert host.path(f"/etc/systemd/system/{unit.name}").read_text() == unit.read_text()
    site = (PROJECT / "deploy" / "apache2" / "autopkgtest-web.conf").read_text()
    assert host.path(siteconfig.APACHE_SITE).read_text() == site
    tmpfiles = (PROJECT / "systemd" / "autopkgtest-web.tmpfiles").read_text()
    assert host.path("/etc/tmpfiles.d/autopkgtest-web.conf").read_text() == tmpfiles
    assert host.ran("systemd-sysusers")
    assert host.ran("systemd-tmpfiles", "--create")

    # Apache variables: every variable the site reads is one it declares.
    defines = host.path(siteconfig.APACHE_DEFINES).read_text()
    assert "Define AUTOPKGTEST_WEB_SERVER_NAME https://autopkgtest.example.com" in defines
    assert "Define AUTOPKGTEST_WEB_SWIFT_STORAGE_URL https://swift.example.com/v1/AUTH_abc" in defines
    assert f"Define AUTOPKGTEST_WEB_CODE {siteconfig.CODE_LINK}" in defines
    assert "AUTOPKGTEST_WEB_LISTEN" not in defines  # port 80 is in Debian's ports.conf
    for line in defines.splitlines()[1:]:
        assert f"<IfDefine !{line.split()[1]}>" in site or f"<IfDefine {line.split()[1]}>" in site, line
    assert host.ran("a2ensite", "-q", "autopkgtest-web")
    assert host.ran("a2dissite", "-q", "000-default")
    assert set(siteconfig.APACHE_MODULES) <= set(host.ran("a2enmod")[-1])
    assert host.ran("apache2ctl", "configtest")

    # Everything enabled: the target, both consumers and every timer.
    enable = host.ran("systemctl", "enable", "--now")[-1]
    assert "autopkgtest-web.target" in enable
    assert set(charm_module.DAEMONS) <= set(enable)
    timers = {p.name for p in (PROJECT / "systemd").glob("*.timer")}
    assert timers and timers <= set(enable)
    assert harness.model.unit.opened_ports() == {ops.Port("tcp", 80)}


def test_the_rendered_config_is_valid_for_the_programs(harness, host):
    configmod = pytest.importorskip("webcontrol.config")
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-uri": "amqp://u:p@broker.example.com:5672/ci"})
    cfg = configmod.load(str(host.path(siteconfig.CONFIG_FILE)))
    assert cfg.results_store == "swift"
    assert cfg.get("web", "releases") == ["jammy", "noble", "resolute"]
    assert str(cfg.state_dir) == siteconfig.STATE_DIR
    assert cfg.public_db_sha256 == siteconfig.PUBLIC_DB + ".sha256"
    assert cfg.get("swift", "os_project_domain_name") == "default"


def test_amqp_uri_option_wins_over_the_relation(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness, **{"amqp-uri": "amqp://u:p@broker.example.com:5671/%2Fci"})
    assert read_config(host)["amqp"]["uri"] == "amqp://u:p@broker.example.com:5671/%2Fci"


def test_a_rabbitmq_cluster_gives_one_uri_per_node_and_quorum_queues(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness)
    rel = harness.add_relation("amqp", "rabbitmq-server")
    # Units join one by one; the password comes from the leader's application data.
    harness.update_relation_data(rel, "rabbitmq-server", {"password": "secret"})
    for number, address in ((10, "10.1.2.30"), (2, "10.1.2.20"), (0, "10.1.2.10")):
        harness.add_relation_unit(rel, f"rabbitmq-server/{number}")
        harness.update_relation_data(rel, f"rabbitmq-server/{number}", {"private-address": address})
    assert harness.model.unit.status == ops.ActiveStatus()
    amqp = read_config(host)["amqp"]
    assert amqp["uri"].split() == [
        "amqp://autopkgtest-web:secret@10.1.2.10:5672",
        "amqp://autopkgtest-web:secret@10.1.2.20:5672",
        "amqp://autopkgtest-web:secret@10.1.2.30:5672",
    ]
    assert amqp["queue_type"] == "quorum"

    # A node leaves: two nodes cannot keep a quorum queue available, so auto falls back to classic.
    harness.remove_relation_unit(rel, "rabbitmq-server/10")
    amqp = read_config(host)["amqp"]
    assert len(amqp["uri"].split()) == 2
    assert amqp["queue_type"] == "classic"

    # The operator's choice wins over auto.
    harness.update_config({"amqp-queue-type": "quorum"})
    assert read_config(host)["amqp"]["queue_type"] == "quorum"


def test_single_broker_keeps_classic_queues_and_a_bad_queue_type_blocks(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    assert read_config(host)["amqp"]["queue_type"] == "classic"
    harness.update_config({"amqp-queue-type": "mirrored"})
    assert harness.model.unit.status == ops.BlockedStatus(
        "amqp-queue-type must be auto, classic or quorum, not 'mirrored'"
    )
    assert read_config(host)["amqp"]["queue_type"] == "classic"  # the last good file stays


def test_several_amqp_uris_in_the_option(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-uri": " amqp://u:p@rmq-1  amqp://u:p@rmq-2\namqp://u:p@rmq-3 "})
    amqp = read_config(host)["amqp"]
    assert amqp["uri"] == "amqp://u:p@rmq-1 amqp://u:p@rmq-2 amqp://u:p@rmq-3"
    assert amqp["queue_type"] == "quorum"
    harness.update_config({"amqp-uri": "amqp://u:p@rmq-1 http://rmq-2"})
    assert harness.model.unit.status == ops.BlockedStatus("the AMQP URI must be an amqp/amqps URL, not 'http://rmq-2'")


def test_config_change_restarts_the_consumers_only_when_the_file_changed(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    restarts = len(host.ran("systemctl", "try-restart"))
    reloads = len(host.ran("systemctl", "reload-or-restart"))
    harness.update_config({"port": 80})  # nothing changes
    assert len(host.ran("systemctl", "try-restart")) == restarts
    assert len(host.ran("systemctl", "reload-or-restart")) == reloads
    harness.update_config({"releases": "noble"})
    assert read_config(host)["web"]["releases"] == "noble"
    assert host.ran("systemctl", "try-restart")[-1][2:] == list(charm_module.DAEMONS)
    assert len(host.ran("systemctl", "try-restart")) == restarts + 1
    assert len(host.ran("systemctl", "reload-or-restart")) == reloads + 1  # the web apps re-read it


def test_other_port_listens_and_opens_it(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness, port=8080)
    defines = host.path(siteconfig.APACHE_DEFINES).read_text()
    assert "Define AUTOPKGTEST_WEB_LISTEN 8080" in defines
    assert "Define AUTOPKGTEST_WEB_VHOST *:8080" in defines
    assert harness.model.unit.opened_ports() == {ops.Port("tcp", 8080)}


@pytest.mark.parametrize(
    "content, message",
    [
        ({"auth-url": "https://k/v3", "username": "u"}, "swift-credentials secret lacks password"),
        ({**SWIFT_SECRET, "tenant": "x"}, "swift-credentials secret has unknown keys tenant"),
    ],
)
def test_bad_swift_secret_blocks(harness, host, content, message):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    secret_id = add_swift_secret(harness, content)
    harness.update_config({"swift-credentials": secret_id})
    assert harness.model.unit.status == ops.BlockedStatus(message)


def test_secret_rotation_rewrites_the_config(harness, host):
    harness.begin_with_initial_hooks()
    add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    secret_id = harness.model.config["swift-credentials"]
    harness.set_secret_content(secret_id, {**SWIFT_SECRET, "password": "rotated"})
    harness.charm.on.secret_changed.emit(secret_id, None)
    assert read_config(host)["swift"]["os_password"] == "rotated"


def test_unknown_secret_blocks(harness, host):
    harness.begin_with_initial_hooks()
    harness.update_config({"source": SOURCE, "amqp-uri": "amqp://u:p@h", "swift-credentials": "secret:nope"})
    assert isinstance(harness.model.unit.status, ops.BlockedStatus)
    assert "swift-credentials" in harness.model.unit.status.message


def test_bad_site_url_blocks(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness, **{"site-url": "autopkgtest.example.com", "amqp-uri": "amqp://u:p@h"})
    assert harness.model.unit.status == ops.BlockedStatus(
        "site-url must be an http/https URL, not 'autopkgtest.example.com'"
    )


def test_git_source_is_cloned_and_checked_out(harness, host):
    harness.begin_with_initial_hooks()
    # A clone that "succeeded": the tree appears where git would put it.
    checkout = host.path(siteconfig.SOURCE_CHECKOUT)
    checkout.parent.mkdir(parents=True, exist_ok=True)
    checkout.symlink_to(PROJECT)
    harness.update_config(
        {
            "source": "git+https://git.example.com/autopkgtest-web.git",
            "source-ref": "v1.2",
            "amqp-uri": "amqp://u:p@h",
            "swift-credentials": add_swift_secret(harness),
        }
    )
    assert harness.model.unit.status == ops.ActiveStatus()
    assert host.ran("git", "-C", siteconfig.SOURCE_CHECKOUT, "fetch")[-1][-1] == "v1.2"
    assert host.ran("git", "-C", siteconfig.SOURCE_CHECKOUT, "checkout", "--quiet", "--force", "FETCH_HEAD")
    assert host.ran(
        f"{siteconfig.VENV}/bin/pip",
        "install",
        "--quiet",
        "--upgrade",
        "-c",
        f"{siteconfig.SOURCE_CHECKOUT}/constraints.txt",
        siteconfig.SOURCE_CHECKOUT,
    )


def test_failed_command_fails_the_hook(harness, host):
    from host import HostError

    harness.begin_with_initial_hooks()
    host.fail_on = "configtest"
    with pytest.raises(HostError, match="apache2ctl configtest failed"):
        configure(harness, **{"amqp-uri": "amqp://u:p@h"})


def test_https_swift_enables_mod_ssl(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-uri": "amqp://u:p@h"})
    assert "ssl" in host.ran("a2enmod")[-1]
    harness.update_config({"swift-storage-url": "http://swift.internal:8080/v1/AUTH_abc"})
    assert "ssl" not in host.ran("a2enmod")[-1]


def test_losing_the_amqp_relation_leaves_active(harness, host):
    harness.begin_with_initial_hooks()
    rel = add_amqp(harness, {"hostname": "10.1.2.3", "password": "secret"})
    configure(harness)
    assert harness.model.unit.status == ops.ActiveStatus()
    harness.remove_relation(rel)
    assert isinstance(harness.model.unit.status, (ops.BlockedStatus, ops.WaitingStatus))


def test_remove_stops_units_and_site(harness, host):
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-uri": "amqp://u:p@h"})
    # a2ensite is recorded, not run: make the link it would have made.
    host.path("/etc/apache2/sites-enabled/autopkgtest-web.conf").touch()
    harness.charm.on.remove.emit()
    disable = host.ran("systemctl", "disable", "--now")[-1]
    assert "autopkgtest-web.target" in disable and charm_module.DOWNLOAD_ALL_UNIT in disable
    assert host.ran("a2dissite", "-q", "autopkgtest-web")
    assert host.commands[-1] == ["systemctl", "reload-or-restart", "apache2.service"]


def test_set_and_clear_alert(harness, host):
    harness.begin()
    output = harness.run_action("set-alert", {"level": "warning", "message": " Swift is slow today "})
    assert output.results == {"alert": "warning:Swift is slow today"}
    alert = host.path(siteconfig.ALERT_FILE)
    assert alert.read_text() == "warning:Swift is slow today"
    assert alert.stat().st_mode & 0o777 == 0o644
    assert harness.run_action("clear-alert").results == {"removed": True}
    assert not alert.exists()
    assert harness.run_action("clear-alert").results == {"removed": False}


@pytest.mark.parametrize(
    "params, error",
    [
        ({"level": "critical", "message": "x"}, "level must be info, warning or danger"),
        ({"level": "info", "message": "two\nlines"}, "message must be one line"),
        ({"level": "info", "message": "  "}, "message must not be empty"),
    ],
)
def test_set_alert_rejects_bad_input(harness, host, params, error):
    harness.begin()
    with pytest.raises(ActionFailed, match=error):
        harness.run_action("set-alert", params)
    assert not host.path(siteconfig.ALERT_FILE).exists()


def test_download_all_results_action_starts_the_unit(harness, host):
    harness.begin()
    output = harness.run_action("download-all-results")
    assert host.commands[-1] == ["systemctl", "start", "--no-block", charm_module.DOWNLOAD_ALL_UNIT]
    assert "started" in output.results["result"]
    harness.run_action("download-all-results", {"wait": True})
    assert host.commands[-1] == ["systemctl", "start", charm_module.DOWNLOAD_ALL_UNIT]


def test_download_all_results_action_reports_failure(harness, host):
    harness.begin()
    host.fail_on = "start"
    with pytest.raises(ActionFailed, match="journalctl -u autopkgtest-web-download-all-results"):
        harness.run_action("download-all-results")


def test_charmcraft_declares_the_actions_and_relation(harness):
    harness.begin()  # Harness reads charmcraft.yaml from the charm folder
    meta = harness.charm.meta
    assert set(meta.actions) == {"set-alert", "clear-alert", "download-all-results"}
    assert meta.requires["amqp"].interface_name == "rabbitmq"
    assert meta.config["swift-credentials"].type == "secret"


def test_apache_environment_installed_and_applied_by_a_restart(harness, host):
    """The drop-in sets MALLOC_ARENA_MAX for Apache; only a restart (not a graceful reload) applies it."""
    harness.begin_with_initial_hooks()
    configure(harness, **{"amqp-uri": "amqp://u:p@h"})
    drop_in = host.path("/etc/systemd/system/apache2.service.d/autopkgtest-web.conf").read_text()
    assert "Environment=MALLOC_ARENA_MAX=2" in drop_in
    assert host.ran("systemctl", "restart", "apache2.service")
    restarts = len(host.ran("systemctl", "restart", "apache2.service"))
    harness.update_config({"releases": "noble"})
    assert len(host.ran("systemctl", "restart", "apache2.service")) == restarts
    assert host.ran("systemctl", "reload-or-restart", "apache2.service")
