# SPDX-License-Identifier: GPL-3.0-or-later
"""A Debian bookworm container with systemd as PID 1 (systemd-nspawn), and the project's venv for it.

The container root comes from ``debootstrap --variant=minbase`` with every
Debian package a site needs (systemd, Apache with mod_wsgi, Python); it is
built once and cached under ``/var/cache/autopkgtest-web`` with a recipe
marker, like the Swift virtualenv. A container boots from an overlay on that
root whose upper layer is the test's own, so the cache never changes and a
reboot keeps what the test installed.

The container has no route out, so the project's virtualenv is built on the
host with Debian's ``/usr/bin/python3`` (the same interpreter the image
has) at the path operators use, ``/opt/autopkgtest-web/venv`` (a private
mount namespace puts the build folder there), and bind-mounted read-only.

systemd-nspawn runs inside a cgroup of its own (there is no systemd on the
host to give it one) and is driven with ``nsenter`` into its namespaces.
``python -m tests.deploy.nspawn --prepare`` fills the caches (``.ci/run``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.deploy.apache import _copy_source

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AUTOPKGTEST_WEB_NSPAWN_CACHE") or "/var/cache/autopkgtest-web")
SUITE = "bookworm"
# Everything the manual installation in docs/operating.rst apt-get installs, and systemd.
PACKAGES = ("systemd", "dbus", "apache2", "libapache2-mod-wsgi-py3", "python3-venv", "distro-info-data")
RECIPE = "1"  # bump when the root or venv recipe changes, so caches are rebuilt
READY = ".autopkgtest-web-ready"
VENV_INSIDE = "/opt/autopkgtest-web/venv"
SYSTEM_PYTHON = "/usr/bin/python3"
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
BOOT_TIMEOUT = 60.0
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


class NspawnError(RuntimeError):
    """The container or its virtualenv could not be built or booted."""


def nspawn_available() -> str | None:
    """Why containers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "systemd-nspawn containers need root"
    for tool in ("systemd-nspawn", "debootstrap", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install debootstrap systemd-container iproute2)"
    if not all(root.is_dir() for root in CGROUP_ROOTS):
        return f"this recipe expects the hybrid cgroup layout ({', '.join(map(str, CGROUP_ROOTS))})"
    return None


def _run(argv: list[str], timeout: float = 900, **kwargs) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise NspawnError(f"{' '.join(argv)} failed ({done.returncode}): {(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def debian_mirror(sources: Path = SOURCES) -> str:
    """The first Debian archive URI of the host's deb822 sources (the security archive has its own suite)."""
    for stanza in sources.read_text().split("\n\n"):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.M))
        if SUITE in fields.get("Suites", "").split() and "URIs" in fields:
            return fields["URIs"].split()[0]
    raise NspawnError(f"no {SUITE} archive URI in {sources}")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _cached(path: Path, key: str, build) -> Path:
    """``path``, rebuilt by ``build(tmp)`` unless its ready marker holds ``key``."""
    marker = path / READY
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == key:
            return path
    with _locked(path):
        with contextlib.suppress(OSError):
            if marker.read_text().strip() == key:
                return path
        partial = path.with_name(path.name + ".partial")
        for stale in (partial, path):
            if stale.exists():
                shutil.rmtree(stale)
        partial.mkdir(mode=0o755)
        build(partial)
        (partial / READY).write_text(key + "\n")
        partial.rename(path)
    return path


def root_key(mirror: str) -> str:
    return f"{RECIPE} {SUITE} {mirror} {','.join(PACKAGES)}"


def prepare_root() -> Path:
    """The cached container root (debootstrap, about a minute the first time)."""
    mirror = debian_mirror()

    def build(tmp: Path) -> None:
        log.info("debootstrap %s from %s into %s", SUITE, mirror, tmp)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror])

    # One folder per recipe: a branch with another recipe never deletes a root a container runs on.
    return _cached(CACHE / f"nspawn-root-{SUITE}-r{RECIPE}", root_key(mirror), build)


def at_opt(opt: Path, argv: list[str]) -> str:
    """Run ``argv`` where ``opt`` is mounted at /opt (a private mount namespace; the host's /opt is untouched)."""
    script = 'mount --bind "$1" /opt && shift && exec "$@"'
    return _run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", str(opt), *argv])


def venv_key() -> str:
    digest = hashlib.sha256(RECIPE.encode() + (PROJECT / "pyproject.toml").read_bytes())
    digest.update((PROJECT / "constraints.txt").read_bytes())
    digest.update(os.path.realpath(SYSTEM_PYTHON).encode())
    return digest.hexdigest()


def prepare_venv() -> Path:
    """The cached folder that, mounted at /opt, holds the virtualenv with the project's dependencies."""

    def build(opt: Path) -> None:
        log.info("building %s in %s", VENV_INSIDE, opt)
        pip = f"{VENV_INSIDE}/bin/pip"
        with tempfile.TemporaryDirectory() as tmp:
            source = _copy_source(Path(tmp))
            at_opt(opt, [SYSTEM_PYTHON, "-m", "venv", VENV_INSIDE])
            at_opt(opt, [pip, "install", "--quiet", "setuptools", "wheel"])
            at_opt(opt, [pip, "install", "--quiet", "-c", str(source / "constraints.txt"), str(source)])

    # One folder per dependency set, for the same reason (tests copy it while it exists).
    key = venv_key()
    return _cached(CACHE / f"nspawn-opt-{key[:12]}", key, build)


def project_venv(work: Path) -> Path:
    """A copy of the cached virtualenv with this checkout installed; returns its folder (to bind at VENV_INSIDE)."""
    cached = prepare_venv()
    opt = work / "opt"
    shutil.copytree(cached / "autopkgtest-web", opt / "autopkgtest-web", symlinks=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = _copy_source(Path(tmp))
        at_opt(
            opt,
            [
                f"{VENV_INSIDE}/bin/pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--force-reinstall",
                str(source),
            ],
        )
    return opt / "autopkgtest-web" / "venv"


class Container:
    """One booted container: ``root`` is the read-only lower layer, ``work`` holds ours.

    ``binds`` maps host paths to read-only paths inside. ``netns`` is the
    network namespace (a path under /run/netns) it joins.
    """

    def __init__(self, root: Path, work: Path, name: str, netns: str, binds: dict[Path, str]):
        self.root, self.work, self.name, self.netns, self.binds = root, work, name, netns, binds
        for sub in ("upper", "overlay-work", "merged"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        self.cgroups = [base / f"autopkgtest-web-{name}" for base in CGROUP_ROOTS]
        self.proc: subprocess.Popen | None = None
        self.pid1 = 0
        self.boots = 0

    def _enter_cgroups(self) -> None:
        # Runs in the child before exec: nspawn (and with it the whole container) starts in our cgroups.
        for cgroup in self.cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def boot(self) -> None:
        """Start systemd-nspawn and wait until the container's systemd is running. Raises NspawnError."""
        for cgroup in self.cgroups:
            cgroup.mkdir(exist_ok=True)
        hostname = self.work / "upper" / "etc" / "hostname"
        if not hostname.exists():  # else the host's, copied by debootstrap
            hostname.parent.mkdir(exist_ok=True)
            hostname.write_text(self.name + "\n")
        overlay = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 4 && exec "$@"'
        nspawn = [
            "systemd-nspawn",
            "-q",
            "-D",
            str(self.work / "merged"),
            "-M",
            self.name,
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            f"--network-namespace-path={self.netns}",
        ]
        nspawn += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        layers = [str(self.root), str(self.work / "upper"), str(self.work / "overlay-work"), str(self.work / "merged")]
        self.boots += 1
        with open(self.work / f"nspawn-{self.boots}.log", "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", overlay, "sh", *layers, *nspawn],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=self._enter_cgroups,
            )
        self.pid1 = self._wait_pid1()
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False).strip()
        if state not in ("running", "degraded"):
            raise NspawnError(f"container systemd is {state!r}:\n{self.log_tail()}")
        if state == "degraded":
            log.warning("container booted degraded: %s", self.run(["systemctl", "--failed", "--no-legend"]))

    def _wait_pid1(self) -> int:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NspawnError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.log_tail()}")
            for cgroup in self.cgroups:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid = int((cgroup / "payload" / "init.scope" / "cgroup.procs").read_text().split()[0])
                    if Path(f"/proc/{pid}/root/run/systemd/private").exists():
                        return pid
            time.sleep(0.05)
        raise NspawnError(f"the container's systemd did not come up in {BOOT_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.work / f"nspawn-{self.boots}.log").read_text(errors="replace")[-chars:]
        return "(no log)"

    def path(self, inside: str) -> Path:
        """A path inside the running container, as the host sees it."""
        return Path(f"/proc/{self.pid1}/root") / inside.lstrip("/")

    def run(self, argv: list[str], check: bool = True, timeout: float = 120, input: str | None = None) -> str:
        """Run a command in the container's namespaces as root; its stdout. Raises NspawnError if ``check``."""
        enter = ["nsenter", "-t", str(self.pid1), "-m", "-u", "-i", "-n", "-p", "-C", "--"]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        done = subprocess.run(enter + argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
        if check and done.returncode != 0:
            raise NspawnError(f"{' '.join(argv)} in the container failed ({done.returncode}): {done.stderr[-3000:]}")
        return done.stdout

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return self.run(["sh", "-ec", script], check=check, timeout=timeout)

    def wait_exit(self, timeout: float) -> int:
        """Wait for systemd-nspawn to end (after poweroff or reboot); its exit status (133 after a reboot)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise NspawnError(f"the container did not stop within {timeout} s:\n{self.log_tail()}") from err

    def reboot(self) -> None:
        """``systemctl reboot`` inside, then boot again on the same layers, as systemd-nspawn@.service does."""
        self.run(["systemctl", "reboot"], check=False)
        status = self.wait_exit(BOOT_TIMEOUT)
        if status != 133:
            raise NspawnError(f"systemd-nspawn exited with {status} on reboot, not 133:\n{self.log_tail()}")
        self.boot()

    def destroy(self) -> None:
        """Power off (or kill) the container and remove its cgroups. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            # nspawn turns SIGTERM into a clean shutdown of the container's systemd.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("container %s did not power off; killing its cgroup", self.name)
        unified = self.cgroups[0]
        if (unified / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (unified / "cgroup.kill").write_text("1")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for cgroup in self.cgroups:
            _remove_cgroup(cgroup)


def _remove_cgroup(top: Path, timeout: float = 10.0) -> None:
    if not top.exists():
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            for folder, _subdirs, _files in os.walk(top, topdown=False):
                os.rmdir(folder)
            return
        except OSError as err:
            if time.monotonic() > deadline:
                log.warning("cgroup %s not removed: %s", top, err)
                return
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Container root and venv for the systemd boot test.")
    parser.add_argument("--prepare", action="store_true", help="build (or reuse) the cached root and venv, and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = nspawn_available()
    if reason:
        print(f"cannot prepare: {reason}", file=sys.stderr)
        return 1
    if not args.prepare:
        parser.error("nothing to do: pass --prepare")
    try:
        print(prepare_root())
        print(prepare_venv())
    except NspawnError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
