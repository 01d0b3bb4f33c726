# SPDX-License-Identifier: GPL-3.0-or-later
"""Typed AMQP messages: test requests, completion and running-status messages.

Each class parses the bytes of a delivery (raising :class:`MalformedMessage`
with a reason that consumers log) and serialises back to the wire form of
docs/formats.rst, Queues and messages.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from webcontrol import results

#: Larger bodies are never legitimate (a status log tail is ~2 kB).
MAX_BODY_BYTES = 1024 * 1024


class MalformedMessage(ValueError):
    """A delivery that cannot be understood; rejected without requeue."""


def _decode(body: bytes) -> str:
    if len(body) > MAX_BODY_BYTES:
        raise MalformedMessage(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedMessage(f"body is not UTF-8: {err}") from None


#: SQLite stores 64-bit integers; a bigger one would fail at insert time, after parsing.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise MalformedMessage(f"{name} is not a number")


def _finite_float(text: str) -> float:
    """``1e400`` is valid JSON but parses to infinity, which no integer field or JSON writer takes."""
    value = float(text)
    if not math.isfinite(value):
        raise MalformedMessage(f"{text[:40]} is out of range")
    return value


#: One decoder for every message: json.loads with these hooks builds a new one per call, which costs
#: more than parsing a small request (a queue page parses a thousand).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def json_object(text: str) -> dict[str, Any]:
    """Raises MalformedMessage for anything a consumer could not store or write back.

    Deeply nested input (RecursionError), NaN/Infinity (literal or overflowing, ``1e400``) and ``\\ud800``-style
    lone surrogates (valid JSON escapes that no UTF-8 writer, SQLite
    included, accepts) would otherwise crash the consumer after parsing, and
    the broker would redeliver the message for ever.
    """
    try:
        value = _DECODER.decode(text)
        # Only a \uD800-\uDFFF escape can produce a lone surrogate; the round trip that
        # finds one costs more than the parse, so it runs only when such an escape is present.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as err:
        # UnicodeEncodeError is a ValueError.
        raise MalformedMessage(f"invalid JSON: {str(err)[:200]}") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"JSON is a {type(value).__name__}, not an object")
    return value


def _in_range(key: str, value: int | None) -> int | None:
    if value is not None and not _INT_MIN <= value <= _INT_MAX:
        raise MalformedMessage(f"{key!r} is out of range")
    return value


def _field(data: dict, key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
    if key not in data or data[key] is None:
        if optional:
            return None
        raise MalformedMessage(f"missing key {key!r}")
    value = data[key]
    # bool is an int subclass; a boolean exit code or duration is malformed.
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise MalformedMessage(f"{key!r} has type bool")
    if not isinstance(value, kinds):
        raise MalformedMessage(f"{key!r} has type {type(value).__name__}")
    return value


def submit_time(now: datetime.datetime | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS+0000`` in UTC, no fraction (docs/formats.rst, Test request)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+0000")


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@dataclass
class TestRequest:
    """``<srcpkg>\\n<JSON object>`` on a ``debci-*`` queue."""

    __test__ = False  # not a pytest test class

    package: str
    params: dict[str, Any] = field(default_factory=dict)
    bare: bool = False  # the body had no JSON part

    @classmethod
    def parse(cls, body: bytes) -> TestRequest:
        """Split on the first whitespace; a bare package is accepted. Raises MalformedMessage."""
        text = _decode(body)
        parts = text.strip().split(None, 1)
        if not parts:
            raise MalformedMessage("empty request")
        if len(parts) == 1:
            return cls(parts[0], {}, bare=True)
        return cls(parts[0], json_object(parts[1]))

    def serialise(self) -> bytes:
        return (self.package + "\n" + json.dumps(self.params, sort_keys=True)).encode("utf-8")

    @property
    def is_private(self) -> bool:
        return results.is_private_request(self.params)


@dataclass
class CompletionMessage:
    """One finished run on ``testcomplete.fanout`` (docs/formats.rst, Completion message)."""

    architecture: str
    container: str
    exitcode: int
    package: str
    release: str
    swift_dir: str
    duration: int | None
    testpkg_version: str | None
    requester: str
    triggers: str
    env: str
    uuid: str | None

    @property
    def run_id(self) -> str:
        parts = self.swift_dir.split("/")
        return parts[4] if len(parts) > 4 else ""

    @classmethod
    def parse(cls, body: bytes) -> CompletionMessage:
        """Raises MalformedMessage."""
        data = json_object(_decode(body))
        duration_raw = _field(data, "duration", (str, int), optional=True)
        try:
            duration = int(str(duration_raw).strip()) if duration_raw not in (None, "") else None
        except ValueError:
            raise MalformedMessage(f"duration {duration_raw!r} is not a number") from None
        version_raw = _field(data, "testpkg_version", str, optional=True)
        version = version_raw.split()[-1] if version_raw and version_raw.split() else None
        message = cls(
            architecture=_field(data, "architecture", str),
            container=_field(data, "container", str),
            exitcode=_field(data, "exitcode", int),
            package=_field(data, "package", str),
            release=_field(data, "release", str),
            swift_dir=_field(data, "swift_dir", str),
            duration=duration,
            testpkg_version=version,
            requester=(_field(data, "requester", str, optional=True) or "").strip(),
            triggers=" ".join((_field(data, "triggers", str, optional=True) or "").split()),
            env=_field(data, "env", str, optional=True) or "",
            uuid=_field(data, "uuid", str, optional=True) or None,
        )
        _in_range("exitcode", message.exitcode)
        _in_range("duration", message.duration)
        if not results.is_run_id(message.run_id):
            raise MalformedMessage(f"swift_dir {message.swift_dir!r} holds no run id")
        return message

    def serialise(self) -> bytes:
        """The wire form a worker sends (tests, benchmarks, demo)."""
        data = {
            "architecture": self.architecture,
            "container": self.container,
            "duration": None if self.duration is None else f"{self.duration}\n",
            "exitcode": self.exitcode,
            "package": self.package,
            "testpkg_version": self.testpkg_version,
            "release": self.release,
            "requester": f"{self.requester}\n" if self.requester else None,
            "swift_dir": self.swift_dir,
            "triggers": self.triggers or None,
            "env": self.env,
        }
        if self.uuid:
            data["uuid"] = self.uuid
        return json.dumps(data).encode("utf-8")


@dataclass
class StatusMessage:
    """A running-status update on ``teststatus.fanout`` (docs/formats.rst, Status message)."""

    release: str
    architecture: str
    package: str
    running: bool
    params: dict[str, Any]
    duration: int
    logtail: str
    uuid: str | None = None

    @classmethod
    def parse(cls, body: bytes) -> StatusMessage:
        """Raises MalformedMessage."""
        data = json_object(_decode(body))
        running = _field(data, "running", bool)
        duration = _field(data, "duration", (int, float), optional=True)
        return cls(
            release=_field(data, "release", str),
            architecture=_field(data, "architecture", str),
            package=_field(data, "package", str),
            running=running,
            params=_field(data, "params", dict, optional=True) or {},
            duration=_in_range("duration", int(duration or 0)),
            logtail=_field(data, "logtail", str, optional=True) or "",
            uuid=_field(data, "uuid", str, optional=True),
        )

    def serialise(self) -> bytes:
        data = {
            "release": self.release,
            "architecture": self.architecture,
            "package": self.package,
            "running": self.running,
            "params": self.params,
            "duration": self.duration,
            "logtail": self.logtail,
        }
        if self.uuid:
            data["uuid"] = self.uuid
        return json.dumps(data).encode("utf-8")
