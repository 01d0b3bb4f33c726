# SPDX-License-Identifier: GPL-3.0-or-later
"""Realistic result objects, written into a store as workers write them.

The demo, the tests and the benchmarks use this so that their data goes
through the real ingestion path (download-all-results or download-results)
instead of being inserted into the DB directly.
"""

from __future__ import annotations

import datetime
import gzip
import io
import random
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from webcontrol import resulttar
from webcontrol.messages import CompletionMessage, new_uuid
from webcontrol.results import PASSING_CODES, distro_container, env_string, ppa_container, result_name, run_dir
from webcontrol.store import ResultStore

DEMO_PACKAGES = (
    "hello",
    "glib2.0",
    "libpng1.6",
    "systemd",
    "python3-defaults",
    "coreutils",
    "openssl",
    "libxml2",
    "chrony",
    "six",
    "dpkg",
    "apt",
    "bash",
    "curl",
    "gzip",
    "librsvg",
    "nginx",
    "postgresql-16",
    "vim",
    "zlib",
)
DEMO_REQUESTERS = ("", "", "", "joe", "ana", "bryce", "ubuntu-archive-bot")
#: Behaviour of a test over time: the chance that a run passes.
PROFILES = {"steady": 0.97, "flaky": 0.6, "broken": 0.05, "regressed": None}
TESTS_PER_PACKAGE = ("upstream", "smoke", "command1", "build-and-run")


@dataclass(frozen=True)
class DemoRun:
    container: str
    release: str
    arch: str
    package: str
    run_id: str
    exitcode: int
    version: str
    triggers: str
    duration: int
    requester: str
    all_proposed: bool
    testname: str | None
    uuid: str
    #: What the failing test prints before failing; empty: a message chosen by failure_output().
    failure_lines: tuple[str, ...] = ()

    @property
    def swift_dir(self) -> str:
        return run_dir(self.release, self.arch, self.package, self.run_id)

    def completion_message(self) -> CompletionMessage:
        env = env_string(self.all_proposed, self.testname)
        return CompletionMessage(
            architecture=self.arch,
            container=self.container,
            exitcode=self.exitcode,
            package=self.package,
            release=self.release,
            swift_dir=self.swift_dir,
            duration=self.duration,
            testpkg_version=self.version,
            requester=self.requester,
            triggers=self.triggers,
            env=env,
            uuid=self.uuid,
        )


def _summary(run: DemoRun, tests: list[str]) -> list[tuple[str, str]]:
    name = result_name(run.exitcode)
    if name == "pass":
        return [(t, "PASS") for t in tests] + ([("optional", "SKIP")] if run.exitcode == 2 else [])
    if name == "neutral":
        return [(t, "SKIP") for t in tests]
    if name == "fail":
        return [(tests[0], "FAIL")] + [(t, "PASS") for t in tests[1:]]
    return []


def make_log(run: DemoRun, tests: list[str]) -> bytes:
    """A gzip log in the newer ``NNNs``-prefixed format of real workers."""
    end = datetime.datetime.strptime(run.run_id[:15], "%Y%m%d_%H%M%S")
    start = end - datetime.timedelta(seconds=run.duration)
    lines: list[tuple[int, str]] = []

    def say(offset: int, text: str, stamp: bool = True) -> None:
        when = (start + datetime.timedelta(seconds=offset)).strftime("%H:%M:%S")
        lines.append((offset, f"autopkgtest [{when}]: {text}" if stamp else text))

    say(0, f"starting date and time: {start:%Y-%m-%d %H:%M:%S}+0000")
    say(0, "git checkout: 4f1c2e9a demo: generated log")
    options = f"--apt-upgrade {run.package} --timeout-short=300 '--env=ADT_TEST_TRIGGERS={run.triggers}'"
    if run.all_proposed:
        options = "--apt-pocket=proposed " + options
    say(
        0,
        f"host demo-worker; command line: /usr/bin/autopkgtest {options} -- lxd autopkgtest/ubuntu/{run.release}/{run.arch}",
    )
    say(5, "@@@@@@@@@@@@@@@@@@@@ test bed setup")
    lines.append((6, "Reading package lists..."))
    say(20, f"@@@@@@@@@@@@@@@@@@@@ apt-source {run.package}")
    lines.append((21, f"Get:1 http://archive.ubuntu.com/ubuntu {run.release}/main {run.package} {run.version} (dsc)"))
    results = _summary(run, tests)
    if not results:
        lines.append((run.duration, "<VirtSubproc>: failure: testbed went away"))
        say(run.duration, "ERROR: testbed failure: unexpected eof from the testbed")
    step = max(1, (run.duration - 30) // max(1, len(results)))
    for index, (test, outcome) in enumerate(results):
        at = 30 + index * step
        say(at, f"test {test}: preparing testbed")
        say(at + 1, f"test {test}: [-----------------------")
        lines.append((at + 2, f"running {test} for {run.package} {run.version}"))
        if outcome == "FAIL":
            for extra in failure_output(run):
                lines.append((at + 2, extra))
        say(at + 3, f"test {test}: -----------------------]")
        say(at + 3, f"test {test}:  - - - - - - - - - - results - - - - - - - - - -")
        reason = " non-zero exit status 1" if outcome == "FAIL" else ""
        lines.append((at + 3, f"{test:<20} {outcome}{reason}"))
    if results:
        say(run.duration, "@@@@@@@@@@@@@@@@@@@@ summary")
        for test, outcome in results:
            reason = " non-zero exit status 1" if outcome == "FAIL" else ""
            lines.append((run.duration, f"{test:<20} {outcome}{reason}"))
    text = "".join(f"{offset:>3}s {line}\n" for offset, line in lines)
    return gzip.compress(text.encode("utf-8"), mtime=0)


def _artifacts(run: DemoRun) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        payload = f"artifacts of {run.package} {run.run_id}\n".encode()
        info = tarfile.TarInfo("artifacts/notes.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def _testbed_packages(run: DemoRun, rng: random.Random) -> str:
    base = {
        "libc6": "2.39-0ubuntu8",
        "python3": "3.12.3-0ubuntu2",
        "systemd": "255.4-1ubuntu8",
        "zlib1g": "1:1.3.dfsg-3.1",
    }
    base[run.package] = run.version
    if run.exitcode not in PASSING_CODES:
        base["libfoo1"] = f"1.{rng.randint(0, 9)}-1"
    return "".join(f"{name}\t{version}\n" for name, version in sorted(base.items()))


def write_run(store: ResultStore, run: DemoRun, rng: random.Random, tests: list[str] | None = None) -> None:
    """Write one run's objects in the order a worker does (result.tar last)."""
    tests = tests or ["upstream", "smoke"]
    prefix = run.swift_dir
    store.put_object(run.container, f"{prefix}/log.gz", make_log(run, tests), "text/plain; charset=UTF-8", "gzip")
    # Every result row links its artifacts, so every run has them (a tmpfail's hold the testbed notes).
    store.put_object(run.container, f"{prefix}/artifacts.tar.gz", _artifacts(run), "application/gzip")
    testinfo = {
        "virt_server": "lxd",
        "nproc": "4",
        "cpu_model": "Demo CPU",
        "custom_environment": [f"ADT_TEST_TRIGGERS={run.triggers}"],
        "uuid": run.uuid,
        "testname": run.testname,
    }
    if run.all_proposed:
        testinfo["all-proposed"] = "1"
    summary = "".join(f"{t} {o}\n" for t, o in _summary(run, tests))
    tar = resulttar.build(
        run.exitcode,
        run.package,
        run.version,
        run.duration,
        testinfo,
        run.requester or None,
        _testbed_packages(run, rng),
        summary,
    )
    store.put_object(run.container, f"{prefix}/result.tar", tar, "application/x-tar")


def _exitcode(rng: random.Random, profile: str, index: int, count: int) -> int:
    if profile == "regressed":
        return 0 if index < count * 0.7 else rng.choice((4, 4, 6))
    if rng.random() < 0.02:
        return 16
    if rng.random() < PROFILES[profile]:
        return rng.choice((0, 0, 0, 2, 8)) if profile == "steady" else 0
    return rng.choice((4, 4, 6, 12, 20))


def plan_runs(
    releases: Iterable[str],
    arches: Iterable[str],
    packages: Iterable[str] = DEMO_PACKAGES,
    runs_per_test: int = 8,
    seed: int = 1,
    end: datetime.datetime | None = None,
) -> Iterator[DemoRun]:
    """Distro runs with realistic histories (deterministic for a seed)."""
    rng = random.Random(seed)
    end = end or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for release in releases:
        for pkg_index, package in enumerate(packages):
            profile = list(PROFILES)[pkg_index % len(PROFILES)]
            for arch in arches:
                for index in range(runs_per_test):
                    age = (runs_per_test - index) * 6 * 3600 + rng.randint(0, 3000)
                    when = end - datetime.timedelta(seconds=age)
                    exitcode = (
                        99
                        if package == "librsvg" and arch == "s390x"
                        else _exitcode(rng, profile, index, runs_per_test)
                    )
                    version = f"{1 + index // 3}.{pkg_index}-{1 + index % 3}ubuntu1"
                    trigger = f"{package}/{version}" if index % 4 else "migration-reference/0"
                    if index % 5 == 3:
                        trigger += f" glib2.0/2.80.{index}-1"
                    yield DemoRun(
                        container=distro_container(release),
                        release=release,
                        arch=arch,
                        package=package,
                        run_id=f"{when:%Y%m%d_%H%M%S}_{rng.getrandbits(20):05x}@",
                        exitcode=exitcode,
                        version=version,
                        triggers=trigger,
                        duration=rng.randint(60, 3600),
                        requester=rng.choice(DEMO_REQUESTERS),
                        all_proposed=index % 7 == 6,
                        testname=None,
                        uuid=new_uuid(),
                    )


def plan_ppa_runs(
    release: str, arch: str, owner: str, ppa: str, packages: Iterable[str], seed: int = 2
) -> Iterator[DemoRun]:
    rng = random.Random(seed)
    end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for index, package in enumerate(packages):
        when = end - datetime.timedelta(hours=index + 1)
        version = f"2.0-0ubuntu1~ppa{index}"
        yield DemoRun(
            container=ppa_container(release, f"{owner}/{ppa}"),
            release=release,
            arch=arch,
            package=package,
            run_id=f"{when:%Y%m%d_%H%M%S}_{rng.getrandbits(20):05x}@",
            exitcode=rng.choice((0, 4)),
            version=version,
            triggers=f"{package}/{version}",
            duration=rng.randint(60, 900),
            requester=owner,
            all_proposed=False,
            testname=None,
            uuid=new_uuid(),
        )


def write_runs(store: ResultStore, runs: Iterable[DemoRun], seed: int = 3) -> list[DemoRun]:
    rng = random.Random(seed)
    written = []
    for run in runs:
        write_run(store, run, rng)
        written.append(run)
    return written


def write_archive(root: Path, versions: dict[str, dict[str, str]], component: str = "main") -> str:
    """A minimal ``file://`` archive with ``dists/<pocket>/<component>/source/Sources.gz``.

    ``versions`` is ``{pocket: {package: version}}``, all in ``component``;
    the other components of each pocket get empty indexes, as a real mirror
    has them. Returns the archive URL.
    """
    for pocket, packages in versions.items():
        for each in ("main", "restricted", "universe", "multiverse"):
            stanzas = (
                "\n".join(
                    f"Package: {package}\nVersion: {version}\nSection: misc\n"
                    for package, version in sorted(packages.items())
                )
                if each == component
                else ""
            )
            target = root / "dists" / pocket / each / "source"
            target.mkdir(parents=True, exist_ok=True)
            (target / "Sources.gz").write_bytes(gzip.compress(stanzas.encode("utf-8"), mtime=0))
    return root.resolve().as_uri()


#: Error messages failing demo tests print: a few recur across packages, as real ones do.
DEMO_ERRORS = (
    (
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3/dist-packages/tests/test_api.py", line 42',
        "ImportError: cannot import name 'Mapping' from 'collections' (/usr/lib/python3.12/collections/__init__.py)",
    ),
    ("FAIL: test_roundtrip (tests.test_codec.CodecTest.test_roundtrip)", "AssertionError: b'\\x00\\x01' != b'\\x01'"),
    ('./debian/tests/smoke: line 12:  4242 Segmentation fault      (core dumped) "$BIN" --selftest',),
    ("E: Unable to locate package python3-nose",),
    ("ERROR: Connection timed out after 300 seconds waiting for the service to start",),
)
#: The demo's broken upload: the packages it breaks print this.
BREAKING_TRIGGER = "glib2.0/2.84.0-1ubuntu1"
BREAKING_ERROR = (
    "/usr/bin/gtk-demo: symbol lookup error: /lib/x86_64-linux-gnu/libgtk-3.so.0:"
    " undefined symbol: g_once_init_leave_pointer",
)


def failure_output(run: DemoRun) -> tuple[str, ...]:
    """The lines a failing demo test prints: its own, or one of DEMO_ERRORS chosen by package."""
    if run.failure_lines:
        return run.failure_lines
    return DEMO_ERRORS[sum(run.package.encode()) % len(DEMO_ERRORS)]


def plan_trigger_breakage(
    release: str, arches: Iterable[str], seed: int = 4, end: datetime.datetime | None = None
) -> Iterator[DemoRun]:
    """The runs one upload (BREAKING_TRIGGER) triggered in the last hour: it breaks a few packages.

    chrony and nginx fail everywhere with the same undefined symbol; bash
    fails on arm64 only; the other reverse dependencies pass.
    """
    rng = random.Random(seed)
    end = end or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    breaks = {"chrony": None, "nginx": None, "bash": "arm64"}
    for index, package in enumerate(("hello", "python3-defaults", "chrony", "bash", "nginx", "libxml2", "curl")):
        pkg_index = DEMO_PACKAGES.index(package)
        for arch in arches:
            broken = package in breaks and breaks[package] in (None, arch)
            when = end - datetime.timedelta(minutes=50 - index * 5, seconds=rng.randint(0, 200))
            yield DemoRun(
                container=distro_container(release),
                release=release,
                arch=arch,
                package=package,
                run_id=f"{when:%Y%m%d_%H%M%S}_{rng.getrandbits(20):05x}@",
                exitcode=4 if broken else 0,
                version=f"4.{pkg_index}-1ubuntu1",
                triggers=f"{BREAKING_TRIGGER} {package}/4.{pkg_index}-1ubuntu1",
                duration=rng.randint(60, 900),
                requester="",
                all_proposed=False,
                testname=None,
                uuid=new_uuid(),
                failure_lines=BREAKING_ERROR,
            )
