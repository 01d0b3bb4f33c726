# SPDX-License-Identifier: GPL-3.0-or-later
"""Split an autopkgtest ``log.gz`` into sections for the log viewer (docs/formats.rst, Logs).

Two line formats exist: newer logs prefix every line with the elapsed
seconds (``1581s autopkgtest [18:47:58]: ...``), older ones do not. The
viewer shows "Preparation", one "test <name>" section per test and
"Summary"; logs that do not follow the shape (testbed failures have no
summary, some logs are truncated or not autopkgtest logs at all) still get
their text shown, never an error.
"""

from __future__ import annotations

import re
import shlex
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Bigger logs are cut here for display; the full file stays downloadable. Rendering
#: costs several times the text (HTML, JSON escapes), so this bounds a request's memory.
MAX_LOG_BYTES = 8 * 1024 * 1024

_ELAPSED = re.compile(r"^\s*\d+s (?=.)")
_AUTOPKGTEST = re.compile(r"^autopkgtest \[\d\d:\d\d:\d\d\]: (?P<message>.*)\Z")
_TEST_LINE = re.compile(r"^test (?P<name>[^\s:]+): ")
_MARKER = "@@@@@@@@@@@@@@@@@@@@ "
_SUMMARY_LINE = re.compile(r"^(?P<test>\S+)\s+(?P<result>PASS|FAIL|SKIP|FLAKY|NEUTRAL|BROKEN)\b\s*(?P<reason>.*)\Z")
_TRIGGERS_FALLBACK = re.compile(r"ADT_TEST_TRIGGERS=(?P<value>[^'\" ]+(?: [^'\" -][^'\" ]*)*)")


class LogError(Exception):
    """The object is not a readable gzip file."""


@dataclass
class Section:
    title: str
    kind: str  # preparation | test | summary
    lines: list[str] = field(default_factory=list)
    result: str | None = None  # PASS/FAIL/SKIP/... for test sections


@dataclass
class ParsedLog:
    triggers: list[str]
    sections: list[Section]
    summary: list[tuple[str, str, str]]  # (test, result, reason)
    has_summary: bool
    truncated: bool
    structured: bool  # False: show the raw text only

    def to_json(self) -> dict:
        return {
            "triggers": self.triggers,
            "has_summary": self.has_summary,
            "truncated": self.truncated,
            "structured": self.structured,
            "summary": [{"test": t, "result": r, "reason": why} for t, r, why in self.summary],
            "sections": [
                {"title": s.title, "kind": s.kind, "result": s.result, "lines": s.lines} for s in self.sections
            ],
        }


def decompress(data: bytes, limit: int = MAX_LOG_BYTES) -> tuple[str, bool]:
    """Text of a gzip log, at most ``limit`` bytes; (text, truncated). Raises LogError."""
    return decompress_chunks([data], limit)


def decompress_chunks(chunks: Iterable[bytes], limit: int = MAX_LOG_BYTES) -> tuple[str, bool]:
    """Text of a gzip log read chunk by chunk, stopping at ``limit`` bytes of text.

    Neither the compressed object nor more than ``limit`` bytes of text is
    held in memory, whatever the object's size. Raises LogError.
    """
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    truncated = False
    try:
        for chunk in chunks:
            out += decoder.decompress(chunk, limit - len(out))
            if decoder.unconsumed_tail or len(out) >= limit:
                truncated = True
                break
    except zlib.error as err:
        raise LogError(f"not a gzip file: {err}") from None
    return out.decode("utf-8", errors="replace"), truncated


def _strip(line: str) -> str:
    return _ELAPSED.sub("", line, count=1)


def find_triggers(lines: list[str]) -> list[str]:
    """The ``ADT_TEST_TRIGGERS`` of the header's command line (shell-quoted or not)."""
    for line in lines[:50]:
        if "command line:" not in line or "ADT_TEST_TRIGGERS=" not in line:
            continue
        command = line.split("command line:", 1)[1]
        command = command.split(" -- ", 1)[0]
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        for word in words:
            if word.startswith("--env=ADT_TEST_TRIGGERS="):
                return word.split("=", 2)[2].split()
        found = _TRIGGERS_FALLBACK.search(command)
        if found:
            return found.group("value").split()
    return []


def parse(text: str, truncated: bool = False) -> ParsedLog:
    """Sections of a log text; never raises (unknown shapes give one raw section)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    triggers = find_triggers(lines)
    preparation = Section("Preparation", "preparation")
    sections: list[Section] = [preparation]
    tests: dict[str, Section] = {}
    summary_section: Section | None = None
    current = preparation
    for line in lines:
        body = _strip(line)
        match = _AUTOPKGTEST.match(body)
        if match and summary_section is None:
            message = match.group("message")
            if message.startswith(_MARKER) and message[len(_MARKER) :].strip() == "summary":
                summary_section = Section("Summary", "summary")
                sections.append(summary_section)
                current = summary_section
                current.lines.append(line)
                continue
            test = _TEST_LINE.match(message)
            if test:
                name = test.group("name")
                if name not in tests:
                    tests[name] = Section(f"test {name}", "test")
                    sections.append(tests[name])
                current = tests[name]
        current.lines.append(line)
    summary = []
    if summary_section is not None:
        for line in summary_section.lines[1:]:
            found = _SUMMARY_LINE.match(_strip(line))
            if found:
                summary.append((found.group("test"), found.group("result"), found.group("reason")))
    for name, result, _reason in summary:
        if name in tests and tests[name].result in (None, "PASS", "SKIP"):
            tests[name].result = result
    structured = bool(triggers or tests or summary_section)
    if not structured:
        sections = [Section("Log", "raw", lines)]
    return ParsedLog(
        triggers=triggers,
        sections=[s for s in sections if s.lines],
        summary=summary,
        has_summary=summary_section is not None,
        truncated=truncated,
        structured=structured,
    )


def parse_gzip(data: bytes | Iterable[bytes]) -> ParsedLog:
    """Parse a ``log.gz`` object (bytes, or its chunks). Raises LogError when it is not gzip."""
    text, truncated = decompress_chunks([data] if isinstance(data, bytes) else data)
    return parse(text, truncated)
