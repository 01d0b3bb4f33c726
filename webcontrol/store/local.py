# SPDX-License-Identifier: GPL-3.0-or-later
"""The local result store: ``<root>/<container>/<object path>`` on disk.

Listings follow Swift exactly (names in byte order, ``prefix``,
``delimiter`` roll-ups, ``marker`` strictly after, ``end_marker`` strictly
before, ``limit``), so callers cannot tell the two stores apart.

A listing never walks the whole container: the prefix pins down the first
directory to read, directories are visited in the order their names sort in
the flat namespace, and whole subtrees that lie before the marker (or inside
a delimiter roll-up already emitted) are skipped without being read. Sorted
directory entries are cached per directory and modification time, so paging
through a directory of 20 000 runs does not re-sort it for every page.
"""

from __future__ import annotations

import bisect
import datetime
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from webcontrol.store import (
    PAGE_LIMIT,
    ContainerNotFound,
    InvalidName,
    ObjectInfo,
    ObjectNotFound,
    ObjectStream,
    ResultStore,
    StoreError,
    check_limit,
    guess_content_headers,
)

log = logging.getLogger(__name__)

# Writes go to a hidden temp file in the target directory, then rename.
# Object path segments starting with this are reserved and never listed.
TEMP_PREFIX = ".~tmp."
CHUNK_SIZE = 64 * 1024
# A directory changed this recently may change again within the same
# timestamp tick, so its listing is not cached (the "racy git" problem).
RACY_SECONDS = 2.0
CACHE_DIRS = 2048


@dataclass(frozen=True)
class _Dir:
    """Sorted entries of one directory: key is the name, plus "/" for folders."""

    keys: list[str]


class _Bound:
    """The lowest name a listing may still return; raised while walking."""

    def __init__(self, value: str, inclusive: bool):
        self.value = value
        self.inclusive = inclusive

    def raise_to(self, value: str, inclusive: bool) -> None:
        if value > self.value or (value == self.value and not inclusive):
            self.value, self.inclusive = value, inclusive

    def admits(self, name: str) -> bool:
        return name > self.value or (self.inclusive and name == self.value)

    def passed(self, folder: str) -> bool:
        """True when every name under ``folder`` (ending in "/") is below the bound."""
        return folder < self.value and not self.value.startswith(folder)


class LocalStore(ResultStore):
    """Result containers as directories under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._cache: OrderedDict[str, tuple[int, _Dir]] = OrderedDict()
        self._cache_lock = threading.Lock()  # web apps share one store between threads

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # Names and paths

    def _container_dir(self, container: str, must_exist: bool = True) -> Path:
        check_container_name(container)
        path = self.root / container
        if must_exist and not path.is_dir():
            if not self.root.is_dir():
                raise StoreError(f"local result store {self.root} does not exist")
            raise ContainerNotFound(f"container {container} does not exist")
        return path

    def _object_path(self, container: str, name: str, must_exist: bool = True) -> Path:
        check_object_name(name)
        base = self._container_dir(container)
        path = base / name
        # Symlinks inside a container must not lead out of it.
        real_base = os.path.realpath(base)
        real = os.path.realpath(path)
        if not real.startswith(real_base + os.sep):
            raise InvalidName(f"object {name!r} resolves outside container {container}")
        if must_exist and not os.path.isfile(real):
            raise ObjectNotFound(f"object {container}/{name} does not exist")
        return path

    def local_file(self, container: str, name: str) -> Path:
        check_container_name(container)
        check_object_name(name)
        return self.root / container / name

    # Listings

    def list_containers(self, prefix: str | None = None) -> list[str]:
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            raise StoreError(f"local result store {self.root} does not exist") from None
        except OSError as err:
            raise StoreError(f"cannot list local result store {self.root}: {err.strerror}") from None
        names = [
            name
            for name in entries
            if not name.startswith(".") and (self.root / name).is_dir() and name.startswith(prefix or "")
        ]
        return sorted(names)

    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int = PAGE_LIMIT,
        end_marker: str | None = None,
    ) -> list[ObjectInfo]:
        check_limit(limit)
        base = self._container_dir(container)
        prefix = prefix or ""
        bound = _Bound(prefix, True)
        if marker:
            bound.raise_to(marker, False)
        rows: list[ObjectInfo] = []
        for name in self._walk(base, prefix, bound):
            if end_marker and name >= end_marker:
                break
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    subdir = name[: cut + len(delimiter)]
                    # Skip everything else under this roll-up: names up to subdir + max char.
                    bound.raise_to(subdir[:-1] + chr(ord(subdir[-1]) + 1), True)
                    if subdir != marker:
                        rows.append(ObjectInfo(name=subdir, subdir=subdir))
                        if len(rows) >= limit:
                            break
                    continue
            rows.append(self._info(base, name))
            if len(rows) >= limit:
                break
        return rows

    def _info(self, base: Path, name: str) -> ObjectInfo:
        try:
            st = os.stat(base / name)
        except OSError:
            # Deleted while listing: report it with what the listing saw.
            return ObjectInfo(name=name, content_type=guess_content_headers(name)[0])
        return ObjectInfo(
            name=name,
            bytes=st.st_size,
            last_modified=_mtime(st),
            content_type=guess_content_headers(name)[0],
        )

    def _walk(self, base: Path, prefix: str, bound: _Bound) -> Iterator[str]:
        """Object names starting with ``prefix`` that the bound admits, in byte order."""
        head, slash, leaf = prefix.rpartition("/")
        folder = head + slash
        if folder and _has_bad_segment(folder):
            return
        yield from self._walk_dir(base, folder, leaf, bound)

    def _walk_dir(self, base: Path, folder: str, leaf: str, bound: _Bound) -> Iterator[str]:
        """Names under ``folder`` (relative, "" or ending in "/") whose next segment starts with ``leaf``."""
        if folder and bound.passed(folder):
            return
        listing = self._read_dir(base / folder if folder else base)
        if listing is None:
            return
        keys = listing.keys
        start = bisect.bisect_left(keys, leaf)
        if bound.value.startswith(folder):
            # The bound may lie inside this folder: begin at its neighbourhood.
            start = max(start, bisect.bisect_left(keys, bound.value[len(folder) :]) - 1)
        for key in keys[start:]:
            if not key.startswith(leaf):
                if key > leaf:
                    return
                continue
            full = folder + key
            if key.endswith("/"):
                if bound.passed(full):
                    continue
                yield from self._walk_dir(base, full, "", bound)
            elif bound.admits(full):
                yield full

    def _read_dir(self, path: Path) -> _Dir | None:
        key = str(path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == st.st_mtime_ns:
                self._cache.move_to_end(key)
                return cached[1]
        keys = []
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name.startswith(TEMP_PREFIX) or entry.is_symlink():
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        keys.append(entry.name + "/")
                    elif entry.is_file(follow_symlinks=False):
                        keys.append(entry.name)
        except OSError as err:
            raise StoreError(f"cannot list {path}: {err.strerror}") from None
        listing = _Dir(sorted(keys))
        if st.st_mtime < time.time() - RACY_SECONDS:
            with self._cache_lock:
                self._cache[key] = (st.st_mtime_ns, listing)
                if len(self._cache) > CACHE_DIRS:
                    self._cache.popitem(last=False)
        return listing

    # Objects

    def head_object(self, container: str, name: str) -> ObjectInfo:
        path = self._object_path(container, name)
        return self._info(path.parent, path.name)

    def get_object(self, container: str, name: str) -> bytes:
        path = self._object_path(container, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {container}/{name} does not exist") from None
        except OSError as err:
            raise StoreError(f"cannot read {container}/{name}: {err.strerror}") from None

    def open_object(self, container: str, name: str) -> ObjectStream:
        path = self._object_path(container, name)
        try:
            handle = open(path, "rb")
            st = os.fstat(handle.fileno())
        except FileNotFoundError:
            raise ObjectNotFound(f"object {container}/{name} does not exist") from None
        except OSError as err:
            raise StoreError(f"cannot read {container}/{name}: {err.strerror}") from None
        content_type, encoding = guess_content_headers(name)
        return ObjectStream(
            content_type=content_type,
            content_encoding=encoding,
            content_length=st.st_size,
            last_modified=_mtime(st),
            chunks=_FileChunks(handle),
        )

    def put_object(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        # Content headers are not stored: they follow from the name (docs/formats.rst, Local result store).
        self._write(container, name, lambda handle: handle.write(data))

    def put_object_file(self, container: str, name: str, path: str | os.PathLike) -> None:
        with open(path, "rb") as source:
            self._write(container, name, lambda handle: shutil.copyfileobj(source, handle, CHUNK_SIZE))

    def _write(self, container: str, name: str, fill) -> None:
        """Create or replace an object atomically: hidden temp file in the same folder, then rename."""
        check_object_name(name)
        self._container_dir(container, must_exist=False).mkdir(parents=True, exist_ok=True)
        path = self._object_path(container, name, must_exist=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.parent / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}"
            try:
                with open(temp, "wb") as handle:
                    fill(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temp, 0o644)
                os.replace(temp, path)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        except OSError as err:
            raise StoreError(f"cannot write {container}/{name}: {err.strerror or err}") from None

    def delete_object(self, container: str, name: str) -> None:
        path = self._object_path(container, name)
        base = self.root / container
        try:
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {container}/{name} does not exist") from None
        except OSError as err:
            raise StoreError(f"cannot delete {container}/{name}: {err.strerror}") from None
        # Swift has no folders: drop the ones this delete left empty.
        parent = path.parent
        while parent != base:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class _FileChunks:
    """Iterator over a file's bytes that closes the file when done."""

    def __init__(self, handle):
        self._handle = handle

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        chunk = self._handle.read(CHUNK_SIZE)
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._handle.close()


#: Swift's limits on name lengths (bytes); a path segment is also bounded by the filesystem's NAME_MAX.
MAX_OBJECT_NAME_BYTES = 1024
NAME_MAX = 255


def _too_long(value: str, limit: int) -> bool:
    return len(value.encode("utf-8", "surrogatepass")) > limit


def check_container_name(container: str) -> None:
    """Raise InvalidName unless ``container`` is one plain directory name."""
    if (
        not isinstance(container, str)
        or not container
        or "/" in container
        or "\0" in container
        or container.startswith(".")
        or _too_long(container, NAME_MAX)
    ):
        raise InvalidName(f"invalid container name {container!r:.300}")


def check_object_name(name: str) -> None:
    """Raise InvalidName for names that could leave the container, are not files, or are too long."""
    if (
        not isinstance(name, str)
        or not name
        or "\0" in name
        or name.startswith("/")
        or _has_bad_segment(name)
        or _too_long(name, MAX_OBJECT_NAME_BYTES)
        or any(_too_long(segment, NAME_MAX) for segment in name.split("/"))
    ):
        raise InvalidName(f"invalid object name {name!r:.300}")


def _has_bad_segment(path: str) -> bool:
    segments = path.split("/")
    if path.endswith("/"):
        segments.pop()
    return any(seg in ("", ".", "..") or seg.startswith(TEMP_PREFIX) for seg in segments)


def _mtime(st: os.stat_result) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(st.st_mtime, tz=datetime.timezone.utc)
