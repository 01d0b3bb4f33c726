# SPDX-License-Identifier: GPL-3.0-or-later
"""A whole site under real systemd: a container installed as docs/operating.rst says.

Two network namespaces joined by a veth pair stand for two hosts: the
"services" host runs a private RabbitMQ node and a Swift, each listening on
its veth address; the container (systemd as PID 1) joins the other and
reaches them over the veth, as a web unit reaches its broker and Swift in
production. The test talks to the broker and Swift from inside the services
namespace and to Apache from inside the container's.

The installation repeats the operator guide's manual steps inside the
container, on the checkout's own ``systemd/`` and ``deploy/apache2/`` (bound
read-only at :data:`SOURCE`), with the project's virtualenv built on the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions

from tests.deploy import netns, nspawn
from tests.services.rabbitmq import PrivateBroker
from tests.services.swift import SwiftServer, start_swift
from webcontrol import config as configmod
from webcontrol import demodata, results
from webcontrol.store.swift import SwiftStore

log = logging.getLogger(__name__)

SOURCE = "/usr/src/autopkgtest-web"
CONF = "/etc/autopkgtest-web/autopkgtest-cloud.conf"
STATE = "/var/lib/autopkgtest-web"
RUNTIME = "/run/autopkgtest-web"
RW_DB = f"{STATE}/autopkgtest.db"
PUBLIC_DB = f"{STATE}/public/autopkgtest.db"
ARCHIVE = "/srv/archive"
RELEASE = "noble"
DAEMONS = ("download-results", "amqp-status-collector", "index-failures")
TIMED = (
    "publish-db",
    "cache-amqp",
    "cache-ppa-containers",
    "update-github-jobs",
    "stats",
    "download-all-results",
    "db-backup",
)
TARGET = "autopkgtest-web.target"
ARCHIVE_VERSIONS = {RELEASE: {"hello": "2.10-3", "six": "1.16.0-4"}, f"{RELEASE}-updates": {"hello": "2.10-3ubuntu1"}}


def unit(stem: str, kind: str = "service") -> str:
    return f"autopkgtest-web-{stem}.{kind}"


@dataclass
class Site:
    """One installed, running site: the container, the link to the services host, its broker and Swift."""

    container: nspawn.Container
    link: netns.Link
    broker: PrivateBroker
    swift: SwiftServer
    work: Path

    # --- systemd, asked inside the container -------------------------------------------------

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.container.run(["systemctl", *args], check=check)

    def show(self, name: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", name, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, name: str, lines: int = 40) -> str:
        return self.container.run(["journalctl", "-b", "-u", name, "-n", str(lines), "--no-pager"], check=False)

    # --- the rw and public DB, read from the host --------------------------------------------

    def query(self, db: str, sql: str) -> list[list]:
        """Rows of a read-only query, run by the container's Python (SQLite on the host would
        resolve /proc/PID/root to the host's own root); [] while the DB or table is missing."""
        out = self.container.run(["python3", "-c", QUERY_SCRIPT, db, sql])
        return json.loads(out)

    def uuids(self, db: str = RW_DB) -> list[str]:
        return [row[0] for row in self.query(db, "SELECT uuid FROM result")]

    # --- the broker, Swift and Apache, reached from their own namespaces ----------------------

    def publish(self, runs: Iterable[demodata.DemoRun]) -> None:
        """Publish the runs' completion messages as workers do (persistent, to testcomplete.fanout)."""
        bodies = [run.completion_message().serialise() for run in runs]

        def send() -> None:
            connection = pika.BlockingConnection(pika.URLParameters(self.broker.uri))
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                for body in bodies:
                    channel.basic_publish(results.COMPLETE_EXCHANGE, "", body, pika.BasicProperties(delivery_mode=2))
            finally:
                connection.close()

        self.link.a.call(send)

    def consumers(self) -> dict[str, int]:
        """Consumers on the site's own queues (``<base>-<fqdn>``), 0 for a queue not declared yet."""
        fqdn = self.container.run(["python3", "-c", "import socket; print(socket.getfqdn())"]).strip()
        queues = [f"complete-listener-{fqdn}", f"running-listener-{fqdn}", f"index-failures-{fqdn}"]

        def count() -> dict[str, int]:
            connection = pika.BlockingConnection(pika.URLParameters(self.broker.uri))
            found = {}
            try:
                for queue in queues:
                    channel = connection.channel()
                    try:
                        found[queue] = channel.queue_declare(queue, passive=True).method.consumer_count
                        channel.close()
                    except pika.exceptions.ChannelClosedByBroker:
                        found[queue] = 0
            finally:
                connection.close()
            return found

        return self.link.a.call(count)

    def wait_consuming(self, timeout: float = 60) -> None:
        """Until every daemon consumes its queue: completions published from then on are recorded."""
        wait_for(lambda: all(self.consumers().values()), timeout, f"{', '.join(DAEMONS)} to consume")

    def write_results(self, runs: Iterable[demodata.DemoRun]) -> list[demodata.DemoRun]:
        """Store the runs' result files in Swift, as workers do before they announce them."""
        runs = list(runs)

        def write() -> list[demodata.DemoRun]:
            store = SwiftStore.from_config(configmod.from_dict({"swift": self.swift.config_section()}))
            try:
                return demodata.write_runs(store, runs)
            finally:
                store.close()

        return self.link.a.call(write)

    def swift_objects(self, container: str) -> list[str]:
        def listing() -> list[str]:
            import swiftclient

            url, token = swiftclient.get_auth(self.swift.auth_url, self.swift.user, self.swift.key, auth_version="1")
            try:
                return [o["name"] for o in swiftclient.get_container(url, token, container, full_listing=True)[1]]
            except swiftclient.ClientException as err:
                if err.http_status == 404:
                    return []
                raise

        return self.link.a.call(listing)

    def http(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET from the site's Apache on port 80, from inside the container's network namespace."""

        def get() -> tuple[int, dict[str, str], bytes]:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(f"http://127.0.0.1{path}", timeout=30) as response:
                    return response.status, dict(response.headers), response.read()
            except urllib.error.HTTPError as err:
                return err.code, dict(err.headers), err.read()

        return self.link.b.call(get)

    def apache_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.container.path("/var/log/apache2/autopkgtest-web-error.log").read_text()[-3000:]
        return "(no log)"


QUERY_SCRIPT = """
import json, os, sqlite3, sys
rows = []
if os.path.exists(sys.argv[1]):
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(sys.argv[2]).fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" not in str(err):
            raise
print(json.dumps(rows))
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def site_config(site: Site) -> str:
    """docs/operating.rst's production-like example, pointed at the test's broker and Swift."""
    swift = site.swift.config_section()
    return f"""\
[web]
database = {RW_DB}
database_public = {PUBLIC_DB}
running_cache = {RUNTIME}/running.json
amqp_queue_cache = {RUNTIME}/queued.json
stats_cache_dir = {STATE}/stats
ppa_containers_cache_dir = {RUNTIME}
indexed_packages = {RUNTIME}/indexed-packages.json
team_cache = {RUNTIME}/team-cache.json
alert = {STATE}/alert
site_url = http://autopkgtest.test
external_swift_url = http://autopkgtest.test/results
swift_storage_url = {site.swift.storage_url}
releases = {RELEASE}
archive_url = file://{ARCHIVE}
allowed_requestors = autopkgtest-requestors

[amqp]
uri = {site.broker.uri}

[swift]
os_auth_url = {swift["os_auth_url"]}
os_username = {swift["os_username"]}
os_password = {swift["os_password"]}
os_project_name = {swift["os_project_name"]}
os_identity_api_version = {swift["os_identity_api_version"]}
"""


def site_defines(site: Site) -> str:
    return f"Define AUTOPKGTEST_WEB_SWIFT_STORAGE_URL {site.swift.storage_url}\nDefine AUTOPKGTEST_WEB_PROCESSES 2\n"


def install(site: Site) -> None:
    """The manual installation of docs/operating.rst, step by step, as root in the container."""
    c = site.container
    # 2. User, group and folders.
    c.sh(f"""
        install -D -m 0644 {SOURCE}/systemd/autopkgtest-web.sysusers /etc/sysusers.d/autopkgtest-web.conf
        install -D -m 0644 {SOURCE}/systemd/autopkgtest-web.tmpfiles /etc/tmpfiles.d/autopkgtest-web.conf
        systemd-sysusers /etc/sysusers.d/autopkgtest-web.conf
        systemd-tmpfiles --create /etc/tmpfiles.d/autopkgtest-web.conf
    """)
    # 3. The project: the venv is built on the host (no network in here) and bound at its path.
    c.sh("""
        ln -sfn "$(/opt/autopkgtest-web/venv/bin/python -I -c \
            'import os, webcontrol; print(os.path.dirname(webcontrol.__file__))')" \
            /opt/autopkgtest-web/webcontrol
    """)
    # 4. The configuration (and an archive mirror for publish-db's versions, inside the host as file://).
    c.path(CONF).parent.mkdir(parents=True, exist_ok=True)
    c.path(CONF).write_text(site_config(site))
    c.sh(f"chown root:autopkgtest-web {CONF} && chmod 0640 {CONF}")
    demodata.write_archive(c.path(ARCHIVE), ARCHIVE_VERSIONS)
    # 5. systemd units.
    c.sh(f"""
        install -m 0644 {SOURCE}/systemd/*.service {SOURCE}/systemd/*.timer {SOURCE}/systemd/*.target /etc/systemd/system/
        systemctl daemon-reload
    """)
    # 6. Apache.
    c.path("/etc/apache2/conf-available/autopkgtest-web-site.conf").write_text(site_defines(site))
    c.sh(f"""
        install -m 0644 {SOURCE}/deploy/apache2/autopkgtest-web.conf /etc/apache2/sites-available/
        a2enmod wsgi proxy proxy_http rewrite headers deflate filter alias env mime >/dev/null
        a2dissite 000-default >/dev/null
        a2ensite autopkgtest-web >/dev/null
        a2enconf autopkgtest-web-site >/dev/null
        apache2ctl configtest
        systemctl reload apache2
    """)


def first_population(site: Site) -> None:
    """docs/operating.rst's "First population from Swift": fill the DB, publish once, then enable everything."""
    site.systemctl("start", unit("download-all-results"))
    site.systemctl("start", unit("publish-db"))
    timers = site.container.sh("cd /etc/systemd/system && ls autopkgtest-web-*.timer").split()
    site.systemctl("enable", "--now", TARGET, *(unit(stem) for stem in DAEMONS), *timers)


def seed_runs(count: int, packages: Iterable[str] = ("hello", "six"), seed: int = 1) -> list[demodata.DemoRun]:
    return list(demodata.plan_runs([RELEASE], ["amd64"], list(packages), runs_per_test=count, seed=seed))


@contextlib.contextmanager
def running_site(seeded: list[demodata.DemoRun]) -> Iterator[Site]:
    """Everything above, torn down in reverse order whatever happens (containers, brokers, namespaces)."""
    root = nspawn.prepare_root()
    work = Path(tempfile.mkdtemp(prefix="autopkgtest-web-nspawn-"))
    project = Path(__file__).resolve().parents[2]
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        venv = nspawn.project_venv(work)
        link = netns.Link()
        cleanup.callback(link.delete)
        broker = link.a.call(PrivateBroker, work / "rabbitmq", link.a_ip)
        cleanup.callback(link.a.call, broker.destroy)
        link.a.call(broker.start)
        swift = link.a.call(start_swift, proxy_ip=link.a_ip)
        cleanup.callback(link.a.call, swift.destroy)
        binds = {
            venv: nspawn.VENV_INSIDE,
            project / "systemd": f"{SOURCE}/systemd",
            project / "deploy": f"{SOURCE}/deploy",
        }
        name = f"apw-{secrets.token_hex(3)}"
        container = nspawn.Container(root, work / "container", name, link.b.path, binds)
        cleanup.callback(container.destroy)
        container.boot()
        site = Site(container, link, broker, swift, work)
        site.write_results(seeded)
        install(site)
        first_population(site)
        site.wait_consuming()
        yield site


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
