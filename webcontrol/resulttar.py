# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a worker's ``result.tar`` (docs/formats.rst, result.tar).

Optional members may be missing and ``testinfo.json`` may be absent or
invalid: readers tolerate all of that. A tar that cannot be read at all
raises :class:`DamagedResult`, which callers log with the object name and
skip.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

MAX_MEMBER_BYTES = 16 * 1024 * 1024


class DamagedResult(Exception):
    """The tar is truncated, corrupt, or lacks a usable exit code."""


@dataclass
class ResultTar:
    exitcode: int
    package: str | None
    version: str | None
    duration: int | None
    requester: str
    testinfo: dict[str, Any] = field(default_factory=dict)
    testbed_packages: str | None = None
    summary: str | None = None

    @property
    def custom_environment(self) -> list[str]:
        env = self.testinfo.get("custom_environment")
        return [item for item in env if isinstance(item, str)] if isinstance(env, list) else []

    def env_value(self, name: str) -> str | None:
        """The value of ``NAME=value`` in custom_environment, if present."""
        prefix = name + "="
        for item in self.custom_environment:
            if item.startswith(prefix):
                return item[len(prefix) :]
        return None

    @property
    def triggers(self) -> str:
        return " ".join((self.env_value("ADT_TEST_TRIGGERS") or "").split())

    @property
    def uuid(self) -> str | None:
        value = self.testinfo.get("uuid")
        return value if isinstance(value, str) and value else None

    @property
    def all_proposed(self) -> bool:
        value = self.testinfo.get("all-proposed")
        return value not in (None, False, 0, "", "0")

    @property
    def testname(self) -> str | None:
        value = self.testinfo.get("testname")
        return value if isinstance(value, str) and value else None


MEMBERS = ("exitcode", "testpkg-version", "duration", "requester", "testinfo.json", "testbed-packages", "summary")
BLOCK = 512


def _text(tar: tarfile.TarFile, name: str) -> str | None:
    try:
        member = tar.getmember(name)
    except KeyError:
        return None
    if not member.isfile() or member.size > MAX_MEMBER_BYTES:
        return None
    handle = tar.extractfile(member)
    if handle is None:
        return None
    return handle.read().decode("utf-8", errors="replace")


def _plain_members(data: bytes) -> dict[str, bytes] | None:
    """The files of a tar made only of plain headers and regular files, or None for anything else.

    Workers write exactly such tars, and download-all-results reads one per
    result: this walk costs a tenth of ``tarfile``'s. Anything it does not
    know (long names, pax or GNU extension headers, links, base-256 sizes,
    a bad checksum, a truncated member) is left to ``tarfile``.
    """
    if not data:
        return None
    members: dict[str, bytes] = {}
    offset, end = 0, len(data)
    while offset + BLOCK <= end:
        header = data[offset : offset + BLOCK]
        if not header.strip(b"\0"):
            return members  # end-of-archive block
        if header[156:157] not in (b"0", b"\0") or header[124] & 0x80 or header[345:346].strip(b"\0"):
            return None
        try:
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            checksum = int(header[148:156].strip(b"\0 "), 8)
        except ValueError:
            return None
        if checksum != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            return None
        offset += BLOCK
        if offset + size > end:
            return None
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", errors="surrogateescape")
        members[name] = data[offset : offset + size]
        offset += -(-size // BLOCK) * BLOCK
    return members if offset == end else None


def _texts(data: bytes) -> dict[str, str | None]:
    """The text of each member of MEMBERS (None if absent or not a regular file). Raises DamagedResult."""
    members = _plain_members(data)
    if members is not None:
        return {
            name: members[name].decode("utf-8", errors="replace")
            if name in members and len(members[name]) <= MAX_MEMBER_BYTES
            else None
            for name in MEMBERS
        }
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return {name: _text(tar, name) for name in MEMBERS}
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DamagedResult(f"unreadable tar: {err}") from None


def parse(data: bytes) -> ResultTar:
    """Parse a result.tar. Raises DamagedResult."""
    texts = _texts(data)
    exitcode_text = texts["exitcode"]
    version_text = texts["testpkg-version"]
    duration_text = texts["duration"]
    requester_text = texts["requester"]
    testinfo_text = texts["testinfo.json"]
    testbed_packages = texts["testbed-packages"]
    summary = texts["summary"]
    try:
        exitcode = int((exitcode_text or "").strip())
    except ValueError:
        raise DamagedResult(f"no valid exitcode member ({exitcode_text!r})") from None
    package = version = None
    words = (version_text or "").split()
    if len(words) >= 2:
        package, version = words[0], words[-1]
    elif len(words) == 1:
        version = words[0]
    try:
        duration = int((duration_text or "").strip())
    except ValueError:
        duration = None
    try:
        testinfo = json.loads(testinfo_text) if testinfo_text else {}
    except ValueError:
        testinfo = {}
    if not isinstance(testinfo, dict):
        testinfo = {}
    return ResultTar(
        exitcode=exitcode,
        package=package,
        version=version,
        duration=duration,
        requester=(requester_text or "").strip(),
        testinfo=testinfo,
        testbed_packages=testbed_packages,
        summary=summary,
    )


def build(
    exitcode: int,
    package: str,
    version: str | None,
    duration: int | None,
    testinfo: dict[str, Any] | None,
    requester: str | None = None,
    testbed_packages: str | None = None,
    summary: str | None = None,
) -> bytes:
    """A result.tar as a worker writes it (demo data, tests, benchmarks)."""
    members = {"exitcode": f"{exitcode}\n", "testpkg-version": f"{package} {version or 'unknown'}\n"}
    if duration is not None:
        members["duration"] = f"{duration}\n"
    if testinfo is not None:
        members["testinfo.json"] = json.dumps(testinfo)
    if requester:
        members["requester"] = f"{requester}\n"
    if testbed_packages is not None:
        members["testbed-packages"] = testbed_packages
    if summary is not None:
        members["summary"] = summary
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, text in members.items():
            payload = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()
