# SPDX-License-Identifier: GPL-3.0-or-later
"""A real Apache + mod_wsgi serving the project with the shipped site config.

mod_wsgi is built against Debian's ``/usr/bin/python3``, so the project runs
from a virtualenv made with that interpreter, in a world-readable folder
(Apache serves as ``www-data`` and refuses to run as root). The virtualenv and
the project's dependencies are built once and reused; the project itself is
reinstalled from the checkout (a copy of it, so no build files land in the
work tree) at every start, so the test always serves the code under test,
installed the way operators install it (package data included).

The shipped ``deploy/apache2/autopkgtest-web.conf`` is included unchanged:
the test only sets its ``Define`` variables (ports and paths, plus the WSGI
daemon user, www-data here) in a small ``httpd.conf`` that also holds what
Debian's ``apache2.conf`` would (modules, pid file, logs, ``<Directory />``).

``python -m tests.deploy.apache --prepare`` builds the virtualenv ahead of
time (``.ci/run``), so that is not inside a test timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[2]
SITE_CONFIG = PROJECT / "deploy" / "apache2" / "autopkgtest-web.conf"
#: The systemd drop-in that sets Apache's environment in production: tests run Apache with it too.
SERVICE_DROP_IN = PROJECT / "deploy" / "apache2" / "apache2.service.d" / "autopkgtest-web.conf"
SYSTEM_PYTHON = "/usr/bin/python3"
VENV_ENV = "AUTOPKGTEST_WEB_APACHE_VENV"
DEFAULT_VENV = "/var/cache/autopkgtest-web/apache-venv"
READY_MARKER = ".autopkgtest-web-ready"
RECIPE = "2"  # bump when prepare_locked() changes, so reused virtualenvs are rebuilt
MODULES = (
    "mpm_event",
    "authz_core",
    "wsgi",
    "deflate",
    "filter",
    "alias",
    "rewrite",
    "proxy",
    "proxy_http",
    "headers",
    "mime",
    "dir",
    "env",
    "setenvif",
)


def serving_account() -> tuple[str, str]:
    """Who Apache and the WSGI daemons run as: www-data when we are root, else ourselves."""
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


APACHE_USER, APACHE_GROUP = serving_account()
START_TIMEOUT = 30.0
# Copied into the build tree: what packaging needs to build the package, and the pinned versions.
SOURCE_ITEMS = ("pyproject.toml", "constraints.txt", "README.rst", "LICENSE", "webcontrol")


class ApacheSetupError(RuntimeError):
    """The virtualenv or Apache could not be set up."""


def apache_available() -> str | None:
    """Why the real-Apache tests cannot run here, or None when they can."""
    if shutil.which("apache2") is None and not Path("/usr/sbin/apache2").exists():
        return "apache2 is not installed (apt-get install apache2 libapache2-mod-wsgi-py3)"
    if not Path("/usr/lib/apache2/modules/mod_wsgi.so").exists():
        return "mod_wsgi is not installed (apt-get install libapache2-mod-wsgi-py3)"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} (the Python mod_wsgi is built for) is missing"
    return None


def venv_path() -> Path:
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)


def _dependency_key() -> str:
    """Changes whenever the dependencies or the interpreter change: then rebuild."""
    digest = hashlib.sha256(RECIPE.encode() + (PROJECT / "pyproject.toml").read_bytes())
    digest.update((PROJECT / "constraints.txt").read_bytes())
    digest.update(os.path.realpath(SYSTEM_PYTHON).encode())
    return digest.hexdigest()


def _run(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise ApacheSetupError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")


def _copy_source(dest: Path) -> Path:
    """A clean copy of what packaging needs (pip builds in the source tree)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in SOURCE_ITEMS:
        item = PROJECT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif item.exists():
            shutil.copy2(item, src / name)
    return src


@contextlib.contextmanager
def venv_lock():
    """Serialise builders and users of the shared virtualenv (the project is reinstalled into it)."""
    venv = venv_path()
    venv.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(venv.parent, 0o755)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield venv


def prepare_locked(venv: Path) -> Path:
    """Build the dependency virtualenv if needed. Call with venv_lock() held."""
    marker = venv / READY_MARKER
    key = _dependency_key()
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == key:
            return venv
    if venv.exists():
        shutil.rmtree(venv)
    log.info("building the Apache virtualenv in %s", venv)
    _run([SYSTEM_PYTHON, "-m", "venv", str(venv)])
    # install_project builds without isolation; Python >= 3.12 venvs come without setuptools.
    _run([str(venv / "bin" / "pip"), "install", "--quiet", "setuptools", "wheel"])
    with tempfile.TemporaryDirectory() as tmp:
        # Installing the project once pulls in its dependencies, at the pinned versions.
        source = _copy_source(Path(tmp))
        _run([str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(source / "constraints.txt"), str(source)])
    marker.write_text(key + "\n")
    return venv


def prepare() -> Path:
    """Build (or reuse) the virtualenv with the project's dependencies."""
    with venv_lock() as venv:
        return prepare_locked(venv)


def install_project(venv: Path) -> Path:
    """Reinstall the checkout into the virtualenv; returns the installed webcontrol folder."""
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--force-reinstall",
                str(_copy_source(Path(tmp))),
            ]
        )
    code = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import os, webcontrol; print(os.path.dirname(webcontrol.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    return Path(code)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApacheServer:
    """Apache in the foreground on 127.0.0.1 with the shipped site included.

    ``defines`` are the site's ``AUTOPKGTEST_WEB_*`` variables (without the
    prefix) on top of the port, log dir and www-data user set here.
    """

    def __init__(self, base: Path, venv: Path, code: Path, defines: dict[str, str]):
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.venv = venv
        self.code = code
        self.defines = {
            "LISTEN": f"127.0.0.1:{self.port}",
            "VHOST": f"127.0.0.1:{self.port}",
            "VENV": str(venv),
            "CODE": str(code),
            "USER": APACHE_USER,
            "GROUP": APACHE_GROUP,
            "PROCESSES": "1",
            "THREADS": "4",
            "LOG_DIR": str(base / "logs"),
            **defines,
        }
        self.proc: subprocess.Popen | None = None

    def _write_config(self) -> Path:
        run = self.base / "run"
        logs = self.base / "logs"
        for folder in (run, logs):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o755)
        lines = [
            "# Generated by tests/deploy/apache.py: what Debian's apache2.conf would hold.",
            "ServerRoot /etc/apache2",
            f"DefaultRuntimeDir {run}",
            f"PidFile {run}/apache2.pid",
            f"Mutex file:{run} default",
            f"ErrorLog {logs}/error.log",
            "LogLevel warn wsgi:info",
            f"User {APACHE_USER}",
            f"Group {APACHE_GROUP}",
            "ServerName 127.0.0.1",
            "TypesConfig /etc/mime.types",
            f"WSGISocketPrefix {run}/wsgi",
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
        ]
        lines += [f"LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so" for name in MODULES]
        lines += [f"Define AUTOPKGTEST_WEB_{key} {value}" for key, value in self.defines.items()]
        lines.append(f"Include {SITE_CONFIG}")
        path = self.base / "httpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def check_config(self) -> None:
        """apache2 -t on the generated config. Raises ApacheSetupError."""
        config = self._write_config()
        _run(["apache2", "-f", str(config), "-t"], env=self._env())

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "APACHE_RUN_DIR": str(self.base / "run"),
            **service_environment(),
        }

    def start(self) -> None:
        config = self._write_config()
        with open(self.base / "logs" / "stdout.log", "wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                ["apache2", "-f", str(config), "-DFOREGROUND"], env=self._env(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ApacheSetupError(f"apache2 exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        self.stop()
        raise ApacheSetupError(f"apache2 did not listen within {START_TIMEOUT} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        out = []
        for name in ("stdout.log", "error.log", "autopkgtest-web-error.log"):
            path = self.base / "logs" / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM to the parent (which we started) stops its children too.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def give_to_apache_user(paths) -> None:
    """As root, hand these files and folders to the user Apache and the WSGI daemons run as (www-data)."""
    if os.geteuid() != 0:
        return
    for path in paths:
        shutil.chown(path, user=APACHE_USER, group=APACHE_GROUP)


def tree(*folders: Path) -> list[Path]:
    """Each folder and everything below it."""
    return [path for folder in folders for path in (folder, *folder.rglob("*"))]


@contextlib.contextmanager
def serving(base: Path, defines: dict[str, str]):
    """The shipped site under Apache with this checkout installed, started; stopped on leaving."""
    with venv_lock() as venv:
        prepare_locked(venv)
        code = install_project(venv)
        server = ApacheServer(base, venv, code, defines)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def service_environment(path: Path = SERVICE_DROP_IN) -> dict[str, str]:
    """The ``Environment=`` variables of the shipped systemd drop-in for apache2.service."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            for pair in line.split("=", 1)[1].split():
                key, _sep, value = pair.partition("=")
                env[key] = value
    return env


def make_shared_tmpdir(prefix: str) -> Path:
    """A temp folder www-data can enter (pytest's own tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="build the reusable virtualenv and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = apache_available()
    if reason:
        print(f"cannot prepare: {reason}", file=sys.stderr)
        return 1
    if not args.prepare:
        parser.error("nothing to do: pass --prepare")
    try:
        venv = prepare()
    except ApacheSetupError as err:
        print(err, file=sys.stderr)
        return 1
    print(venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
