# SPDX-License-Identifier: GPL-3.0-or-later
"""Files other programs read are replaced whole: temp file, fsync, rename.

A reader (Apache, browse.cgi, ubuntu-dev-tools) therefore sees either the
old or the new content, never a half-written file (docs/formats.rst, Live-state files).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Group-readable: the web server's user shares the service group (docs/operating.rst, Layout).
PUBLIC_MODE = 0o644


def write_atomic(
    path: str | os.PathLike,
    data: bytes | str,
    mode: int = PUBLIC_MODE,
    before_replace: Callable[[str], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically. Raises OSError.

    ``before_replace(tmp_path)`` runs once the complete file is written and
    just before it is renamed into place: files derived from it (an index
    that names its mtime and size) can be put in place first.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: str | os.PathLike, value: Any, mode: int = PUBLIC_MODE) -> None:
    """Serialise ``value`` as JSON and replace ``path`` atomically. Raises OSError."""
    write_atomic(path, json.dumps(value, ensure_ascii=False), mode)


def read_json(path: str | os.PathLike | None, default: Any) -> Any:
    """A JSON file's content, or ``default`` when it is missing or unreadable.

    Every reader treats a missing or broken cache file as empty (docs/formats.rst, Live-state files).
    """
    if not path:
        return default
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


@contextmanager
def file_lock(path: str | os.PathLike, exclusive: bool = True) -> Iterator[bool]:
    """Hold an flock on ``path`` (created if needed) for a cache shared by processes.

    Yields whether the lock is held: when the file cannot be opened or
    locked, callers go on unlocked (a throwaway cache, logged here).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = open(target, "a")
    except OSError as err:
        log.warning("cannot lock %s: %s", target, err)
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as err:
            log.warning("cannot lock %s: %s", target, err)
            yield False
            return
        yield True
