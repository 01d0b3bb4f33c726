# SPDX-License-Identifier: GPL-3.0-or-later
"""The lines of a failing run's ``log.gz`` that explain the failure.

One streaming pass over the log (which can be hundreds of megabytes; only
bounded tails are kept) collects, with the ``NNNs`` elapsed prefix of newer
logs removed:

1. the summary: every ``<test> FAIL <reason>`` (or ``BROKEN``) line after the
   ``@@@@ summary`` marker; the reason is often all one needs
   (``ramdiskluns.sh FAIL non-zero exit status 1``);
2. for each failing test, the ``stderr`` block autopkgtest prints after the
   test's results (six on s390x: ``[Errno 20] Not a directory:
   '/sys/kernel/config/target/iscsi/cpus_allowed_list'``), at most
   :data:`STDERR_LINES`;
3. for each failing test, the last :data:`TAIL_LINES` lines of its output,
   between ``test <name>: [-----`` and ``test <name>: -----]``: test suites
   print their verdict last (chrony's ``FAILED 4 (008-ntpera 115-cmdmontime
   139-nts 145-rtc)``);
4. autopkgtest's own error lines wherever they are: ``autopkgtest [...]:
   ERROR: ...``, ``<VirtSubproc>: failure: ...``, ``blame:`` and ``badpkg:``
   (rabbitmq-server on armhf never started a test: ``Error: Failed
   pre-start check for device "eth0": Network "lxdbr0" unavailable``);
5. when none of this exists (a log cut short, an unknown shape), the last
   :data:`LAST_LINES` lines of the log.

Repeated lines are kept once. The excerpt is capped at ``max_bytes`` of
UTF-8 (lines cut at :data:`LINE_MAX` characters), so one run's entry in the
index is bounded whatever its log.
"""

from __future__ import annotations

import collections
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

TAIL_LINES = 15
STDERR_LINES = 15
LAST_LINES = 20
ERROR_LINES = 10
LINE_MAX = 400
DEFAULT_MAX_BYTES = 4096
#: Decompressed bytes read at most per log (a runaway log still costs bounded CPU).
READ_MAX_BYTES = 512 * 1024 * 1024

_ELAPSED = re.compile(r"^\s*\d+s(?: |$)")
_AUTOPKGTEST = re.compile(r"^autopkgtest \[\d\d:\d\d:\d\d\]: (?P<message>.*)\Z")
_TEST_START = re.compile(r"^test (?P<name>[^\s:]+): \[-+\Z")
_TEST_END = re.compile(r"^test (?P<name>[^\s:]+): -+\]\Z")
_TEST_BLOCK = re.compile(r"^test (?P<name>[^\s:]+):\s+(?:- )+-? *(?P<kind>results|stderr)(?: -)+ *-?\Z")
_SUMMARY_MARKER = re.compile(r"^@{20} summary\s*\Z")
_SUMMARY_LINE = re.compile(r"^(?P<test>\S+)\s+(?P<result>PASS|FAIL|SKIP|FLAKY|NEUTRAL|BROKEN)\b\s*(?P<reason>.*)\Z")
_OWN_ERROR = re.compile(r"^(?:<VirtSubproc>: failure:|blame: |badpkg: |ERROR: )")
_FAILING = ("FAIL", "BROKEN")


@dataclass
class _State:
    mode: str | None = None  # output | stderr | results | summary
    test: str | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    tails: dict[str, list[str]] = field(default_factory=dict)
    stderr: dict[str, collections.deque] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)  # from the per-test results blocks
    summary: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LAST_LINES))


def strip(line: str) -> str:
    """A log line without the elapsed-seconds prefix of newer logs."""
    return _ELAPSED.sub("", line.rstrip(), count=1)


def _feed(state: _State, raw: str) -> None:
    line = strip(raw)
    own = _AUTOPKGTEST.match(line)
    if own:
        message = own.group("message")
        if _SUMMARY_MARKER.match(message):
            state.mode = "summary"
            return
        if _OWN_ERROR.match(message):
            state.errors.append(f"autopkgtest: {message}")
        if state.mode == "summary":
            return
        start, end, block = _TEST_START.match(message), _TEST_END.match(message), _TEST_BLOCK.match(message)
        if start:
            state.mode, state.test = "output", start.group("name")
            state.tail = collections.deque(maxlen=TAIL_LINES)
        elif end and state.mode == "output":
            state.tails[end.group("name")] = list(state.tail)
            state.mode = None
        elif block:
            state.test = block.group("name")
            state.mode = block.group("kind")
            if state.mode == "stderr":
                state.stderr[state.test] = collections.deque(maxlen=STDERR_LINES)
        elif state.mode != "output":
            state.mode = None
        state.last.append(line)
        return
    if _OWN_ERROR.match(line):
        state.errors.append(line)
    if state.mode == "summary":
        found = _SUMMARY_LINE.match(line)
        if found:
            state.summary.append((found.group("test"), found.group("result"), found.group("reason")))
        return
    state.last.append(line)
    if state.mode == "output":
        state.tail.append(line)
    elif state.mode == "stderr" and state.test is not None:
        state.stderr[state.test].append(line)
    elif state.mode == "results":
        found = _SUMMARY_LINE.match(line)
        if found:
            state.results[found.group("test")] = f"{found.group('result')} {found.group('reason')}".strip()


def excerpt_lines(lines: Iterable[str]) -> list[str]:
    """The explaining lines of a log, in the order of the rules above (no cap applied)."""
    state = _State()
    for raw in lines:
        _feed(state, raw)
    if state.mode == "output" and state.test is not None:  # log cut inside a test
        state.tails[state.test] = list(state.tail)
    failing = [(test, f"{result} {reason}".strip()) for test, result, reason in state.summary if result in _FAILING]
    if not failing:
        failing = [(test, verdict) for test, verdict in state.results.items() if verdict.split()[0] in _FAILING]
    out: list[str] = []
    for test, verdict in failing:
        out.append(f"test {test}: {verdict}")
        out.extend(state.stderr.get(test, ()))
        out.extend(state.tails.get(test, ()))
    out.extend(state.errors[:ERROR_LINES])
    if not failing and not state.errors:
        out.extend(state.last)
    seen: set[str] = set()
    unique = []
    for line in out:
        if line.strip() and line not in seen:
            seen.add(line)
            unique.append(line)
    return unique


def cap(lines: Iterable[str], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Lines joined with newlines, each cut at LINE_MAX characters, in at most ``max_bytes`` of UTF-8."""
    out: list[str] = []
    used = 0
    for line in lines:
        line = line[:LINE_MAX]
        size = len(line.encode("utf-8")) + 1
        if used + size > max_bytes:
            break
        out.append(line)
        used += size
    return "\n".join(out)


class LogError(Exception):
    """The object is not a readable gzip log."""


def gzip_lines(chunks: Iterable[bytes], limit: int = READ_MAX_BYTES) -> Iterator[str]:
    """Decode a gzip log chunk by chunk into lines (UTF-8, invalid bytes replaced). Raises LogError."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = b""
    total = 0
    try:
        for chunk in chunks:
            data = decoder.decompress(chunk)
            total += len(data)
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", errors="replace")
            if total > limit:
                break
            if decoder.eof:
                break
    except zlib.error as err:
        raise LogError(f"not a gzip file: {err}") from None
    if pending:
        yield pending.decode("utf-8", errors="replace")


def extract(chunks: Iterable[bytes], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The capped failure excerpt of a ``log.gz`` given as chunks. Raises LogError."""
    return cap(excerpt_lines(gzip_lines(chunks)), max_bytes)
