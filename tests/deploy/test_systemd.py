# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped systemd units: systemd-analyze accepts them and they say what operators rely on."""

from __future__ import annotations

import configparser
import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
SHIPPED_BIN = "/opt/autopkgtest-web/venv/bin/"
CONF = "/etc/autopkgtest-web/autopkgtest-cloud.conf"
UNITS = sorted(p for p in SYSTEMD_DIR.iterdir() if p.suffix in (".service", ".timer", ".target"))

# unit name stem -> (program, schedule in seconds between runs, TimeoutStartSec in seconds)
TIMED = {
    "publish-db": ("publish-db", 60, 300),
    "cache-amqp": ("cache-amqp", 30, 600),
    "stats": ("autopkgtest-stats", 3600, None),
    "update-github-jobs": ("update-github-jobs", 60, 600),
    "download-all-results": ("download-all-results", 3600, None),
    "cache-ppa-containers": ("cache-ppa-containers", 60, None),
    "db-backup": ("db-backup", 86400, None),
}
DAEMONS = {
    "download-results": "download-results",
    "amqp-status-collector": "amqp-status-collector",
    "index-failures": "index-failures",
}

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def seconds(value: str) -> int:
    units = {"s": 1, "min": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(s|min|h)", value)
    assert match, f"unexpected time span {value!r}"
    return int(match[1]) * units[match[2]]


def console_script(program: str) -> Path:
    """The installed console script of this environment (the project is installed, see pyproject.toml)."""
    for candidate in (Path(sys.executable).parent / program, Path(shutil.which(program) or "/nonexistent")):
        if candidate.exists():
            return candidate
    pytest.fail(f"console script {program} is not installed; run pip install -e .")


def test_every_program_has_units():
    names = {p.name for p in UNITS}
    for stem in TIMED:
        assert f"autopkgtest-web-{stem}.service" in names
        assert f"autopkgtest-web-{stem}.timer" in names
    for stem in DAEMONS:
        assert f"autopkgtest-web-{stem}.service" in names
    assert "autopkgtest-web.target" in names


def runnable_copies(tmp_path: Path) -> Path:
    """Copies of every unit whose ExecStart points at this environment's console script.

    systemd-analyze refuses a missing executable, and the shipped path
    (/opt/autopkgtest-web/venv/bin) exists only on a deployed machine; nothing
    else in the copies changes.
    """
    for path in UNITS:  # timers and the target need their sibling units
        text = path.read_text()
        for program in re.findall(r"^ExecStart=" + re.escape(SHIPPED_BIN) + r"(\S+)", text, re.M):
            text = text.replace(SHIPPED_BIN + program, str(console_script(program)))
        (tmp_path / path.name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify(unit, tmp_path):
    """Any message (even an ignored unknown key) fails."""
    copies = runnable_copies(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copies / unit.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


# systemd-analyze security's exposure score (0-10, lower is safer) times ten. The shipped
# hardening scores 1.5; network access (needed for AMQP and Swift) is most of what remains.
MAX_EXPOSURE = 20


@pytest.mark.parametrize("unit", [p for p in UNITS if p.suffix == ".service"], ids=lambda p: p.name)
def test_exposure_stays_low(unit, tmp_path):
    copies = runnable_copies(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", "--no-pager"]
        + [str(copies / unit.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


@pytest.mark.parametrize("path", [p for p in UNITS if p.suffix == ".service"], ids=lambda p: p.name)
def test_service_runs_hardened_as_service_user(path):
    service = read_unit(path)["Service"]
    assert service["User"] == "autopkgtest-web" and service["Group"] == "autopkgtest-web"
    assert service["UMask"] == "0027"
    assert service["ProtectSystem"] == "strict"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/autopkgtest-web", "/run/autopkgtest-web"}
    for option in ("PrivateTmp", "NoNewPrivileges", "ProtectHome", "PrivateDevices", "RemoveIPC"):
        assert service[option] == "yes", option
    exec_start = service["ExecStart"].split()
    assert exec_start[0].startswith(SHIPPED_BIN)
    assert exec_start[1:] == ["--config", CONF]


@pytest.mark.parametrize("stem", DAEMONS)
def test_daemons_restart_within_a_minute(stem):
    parsed = read_unit(SYSTEMD_DIR / f"autopkgtest-web-{stem}.service")
    assert parsed["Service"]["ExecStart"].split()[0] == SHIPPED_BIN + DAEMONS[stem]
    assert parsed["Service"]["Restart"] == "always"
    assert seconds(parsed["Service"]["RestartSec"]) <= 60
    assert parsed["Unit"]["StartLimitIntervalSec"] == "0"
    assert parsed["Install"]["WantedBy"] == "autopkgtest-web.target"


@pytest.mark.parametrize("path", [p for p in UNITS if p.suffix == ".service"], ids=lambda p: p.name)
def test_stopping_the_target_stops_and_waits_for_every_service(path):
    """PartOf= makes the target's stop reach the unit (a timer's run in progress too); After= makes
    that stop job finish only once the unit is down. test_systemd_boot.py checks it under systemd."""
    parsed = read_unit(path)
    assert parsed["Unit"]["PartOf"] == "autopkgtest-web.target"
    assert "autopkgtest-web.target" in parsed["Unit"]["After"].split()
    if parsed["Service"]["Type"] == "oneshot":
        assert parsed["Service"]["SuccessExitStatus"] == "SIGTERM"


def next_elapses(spec: str, count: int) -> list[datetime.datetime]:
    result = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations", str(count), spec],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", result.stdout)
    assert len(stamps) == count, result.stdout
    return [datetime.datetime.fromisoformat(s) for s in stamps]


@pytest.mark.parametrize("stem", TIMED)
def test_timer_schedules_and_timeouts(stem):
    program, interval, timeout = TIMED[stem]
    service = read_unit(SYSTEMD_DIR / f"autopkgtest-web-{stem}.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].split()[0] == SHIPPED_BIN + program
    if timeout is not None:
        assert seconds(service["TimeoutStartSec"]) == timeout
    timer = read_unit(SYSTEMD_DIR / f"autopkgtest-web-{stem}.timer")
    assert timer["Install"]["WantedBy"] == "autopkgtest-web.target"
    elapses = next_elapses(timer["Timer"]["OnCalendar"], 4)
    gaps = {(b - a).total_seconds() for a, b in zip(elapses[:-1], elapses[1:], strict=True)}
    assert gaps == {interval}, f"{stem} fires every {gaps} s, expected {interval}"


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles must run as root to chown")
def test_sysusers_and_tmpfiles_make_user_group_and_folders(tmp_path):
    """Apply both shipped entries to an empty root folder, as systemd does at boot."""
    (tmp_path / "etc").mkdir()
    for argv in (
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD_DIR / "autopkgtest-web.sysusers")],
        ["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(SYSTEMD_DIR / "autopkgtest-web.tmpfiles")],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()}
    uid, gid = int(users["autopkgtest-web"][2]), int(groups["autopkgtest-web"][2])
    assert users["autopkgtest-web"][6] == "/usr/sbin/nologin"
    assert "www-data" in groups["autopkgtest-web"][3].split(","), "Apache's user must be in the service group"
    for folder in ("var/lib/autopkgtest-web", "var/lib/autopkgtest-web/public", "run/autopkgtest-web"):
        info = (tmp_path / folder).stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), folder
        assert info.st_mode & 0o777 == 0o750, folder  # group (Apache) may read, others nothing
