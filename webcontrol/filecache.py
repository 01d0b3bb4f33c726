# SPDX-License-Identifier: GPL-3.0-or-later
"""What a process made from a file, made again only when the file changes.

Web workers answer many requests from one version of a file: a parse of a
multi-megabyte queued.json, the API keys, the revoked sessions, numbers read
from the public DB that publish-db replaces every minute. A version is the
file's ``(mtime_ns, size)``: writers replace these files by renaming a new
one over them, which changes the mtime even when the size stays the same.

:class:`FileCache` is the one place that does this; its values are shared
between threads and callers must not mutate them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A file's version: ``(st_mtime_ns, st_size)``.
Stamp = tuple[int, int]

#: ``missing`` left out: a file that cannot be stat'ed is handed to the loader, uncached.
LOAD = object()


def stamp(path: str | os.PathLike | None) -> Stamp | None:
    """The version of a file, or None when there is no path or the file cannot be stat'ed."""
    found = identity(path)
    return None if found is None else found[1:]


def identity(path: str | os.PathLike | None) -> tuple[int, int, int] | None:
    """A file's inode, mtime and size, or None: unlike :func:`stamp`, it tells apart a new file renamed into place
    with the same size within one mtime tick."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class FileCache(Generic[T]):
    """``load(path, *args)``, kept until the file at ``path`` gets another version.

    One value is kept per ``(path, *args)``, at most ``max_entries`` of them
    (least recently used first out). When there is no path or the file
    cannot be stat'ed, ``missing`` is returned (an error other than "no such
    file" is logged); without ``missing`` the loader is called anyway and
    its answer is not kept, so it reports the failure itself. One thread
    loads a version while the others asking for it wait: a multi-megabyte
    file parsed by 8 threads at once would cost a web process 8 times the
    memory, which it keeps.
    """

    def __init__(self, load: Callable[..., T], missing: Any = LOAD, max_entries: int = 64):
        self._load = load
        self._missing = missing
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[Stamp, T]] = OrderedDict()
        #: key -> lock held by the thread loading it
        self._loading: dict[tuple, threading.Lock] = {}

    def get(self, path: str | os.PathLike | None, *args: Hashable) -> T:
        return self.get_with_stamp(path, *args)[1]

    def get_with_stamp(self, path: str | os.PathLike | None, *args: Hashable) -> tuple[Stamp | None, T]:
        """``(stamp, value)``: the stamp lets callers key what they derive from the value."""
        try:
            if not path:
                raise FileNotFoundError("no file configured")
            stat = os.stat(path)
        except OSError as err:
            if self._missing is LOAD:
                return None, self._load(path, *args)
            if not isinstance(err, FileNotFoundError):
                log.error("cannot read %s: %s", path, err)
            return None, self._missing
        version = (stat.st_mtime_ns, stat.st_size)
        key = (os.fspath(path), *args)
        found = self._cached(key, version)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            found = self._cached(key, version)  # loaded meanwhile by the thread we waited for
            if found is not None:
                return found
            try:
                value = self._load(path, *args)
                with self._lock:
                    self._entries[key] = (version, value)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max_entries:
                        self._entries.popitem(last=False)
            finally:
                with self._lock:
                    if self._loading.get(key) is loading:
                        del self._loading[key]
        return version, value

    def _cached(self, key: tuple, version: Stamp) -> tuple[Stamp, T] | None:
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] == version:
                self._entries.move_to_end(key)
                return version, cached[1]
        return None
