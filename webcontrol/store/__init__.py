# SPDX-License-Identifier: GPL-3.0-or-later
"""Result stores: OpenStack Swift, or a local directory with the same layout.

Every program that lists or reads results goes through a :class:`ResultStore`.
The interface is deliberately the small subset of Swift that we use, so the
local directory store (demo, small sites, tests of the web layer) behaves
like Swift for every caller, including the listing semantics of
``prefix``/``delimiter``/``marker``/``limit``.
"""

from __future__ import annotations

import abc
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webcontrol.config import Config


class StoreError(Exception):
    """The store could not be reached or answered with an unexpected error."""


class ContainerNotFound(StoreError):
    """The container does not exist."""


class ObjectNotFound(StoreError):
    """The object does not exist."""


class InvalidRequest(StoreError, ValueError):
    """A name or listing parameter the store refuses (e.g. path traversal, limit out of range)."""


class InvalidName(InvalidRequest):
    """A container or object name that is not allowed (``..`` segments, absolute paths, NUL, ...)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One row of a container listing.

    For a delimiter roll-up row, ``subdir`` holds the common prefix (ending
    in the delimiter), ``name`` repeats it (so a plain listing can print
    ``name`` for every row, as Swift's ``format=plain`` does) and the other
    fields are empty.
    """

    name: str
    bytes: int = 0
    last_modified: datetime.datetime | None = None
    content_type: str = ""
    subdir: str | None = None


@dataclass
class ObjectStream:
    """An object being read: its headers and an iterator over its bytes.

    ``close()`` must be called (or the iterator exhausted) so that a Swift
    connection is returned.
    """

    content_type: str
    content_encoding: str | None
    content_length: int | None
    last_modified: datetime.datetime | None
    chunks: Iterator[bytes]

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


PAGE_LIMIT = 1000
# Swift refuses listings of more than this many rows per request.
LISTING_MAX = 10000


def check_limit(limit: int) -> None:
    """Raise InvalidRequest unless ``limit`` is a page size Swift accepts."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= LISTING_MAX:
        raise InvalidRequest(f"listing limit must be between 1 and {LISTING_MAX}, not {limit!r}")


class ResultStore(abc.ABC):
    """Read access to result containers, plus writes for demo, tests and backups."""

    @abc.abstractmethod
    def list_containers(self, prefix: str | None = None) -> list[str]:
        """All container names (every page), sorted. Raises StoreError."""

    @abc.abstractmethod
    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int = PAGE_LIMIT,
        end_marker: str | None = None,
    ) -> list[ObjectInfo]:
        """One page of a listing, in name order, names strictly after ``marker``.

        Only names starting with ``prefix`` and (if given) strictly before
        ``end_marker``; with ``delimiter``, names that contain it after the
        prefix are rolled up into one ``subdir`` row each (counted in
        ``limit``; a roll-up equal to ``marker`` is not repeated, so paging
        by the last row's name works). ``limit`` is 1..LISTING_MAX.

        Raises ContainerNotFound, InvalidRequest, StoreError.
        """

    def iter_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        page_size: int = PAGE_LIMIT,
        end_marker: str | None = None,
    ) -> Iterator[ObjectInfo]:
        """Every object of a listing, paging by the last name of each page."""
        while True:
            page = self.list_objects(container, prefix, delimiter, marker, page_size, end_marker=end_marker)
            yield from page
            if len(page) < page_size:
                return
            last = page[-1]
            marker = last.subdir if last.subdir is not None else last.name

    def head_object(self, container: str, name: str) -> ObjectInfo:
        """Size, time and type of one object. Raises ObjectNotFound, ContainerNotFound, StoreError."""
        stream = self.open_object(container, name)
        stream.close()
        return ObjectInfo(
            name=name,
            bytes=stream.content_length or 0,
            last_modified=stream.last_modified,
            content_type=stream.content_type,
        )

    def local_file(self, container: str, name: str) -> Path | None:
        """Where the object is or would be on this machine's disk; None for a remote store.

        Lets a web page that found an object missing look again with one stat. Raises InvalidName.
        """
        return None

    @abc.abstractmethod
    def get_object(self, container: str, name: str) -> bytes:
        """The whole object. Raises ObjectNotFound, ContainerNotFound, StoreError."""

    @abc.abstractmethod
    def open_object(self, container: str, name: str) -> ObjectStream:
        """Stream an object. Raises ObjectNotFound, ContainerNotFound, StoreError."""

    @abc.abstractmethod
    def put_object(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        """Write an object, creating the container if needed. Raises StoreError."""

    def put_object_file(self, container: str, name: str, path: str | os.PathLike) -> None:
        """Write an object from a file (large backups), creating the container if needed.

        Stores override this to stream; this fallback reads the file whole. Raises StoreError, OSError.
        """
        with open(path, "rb") as handle:
            self.put_object(container, name, handle.read())

    @abc.abstractmethod
    def delete_object(self, container: str, name: str) -> None:
        """Delete an object. Raises ObjectNotFound, StoreError."""

    def close(self) -> None:  # noqa: B027 - stores without connections need not override it
        """Release connections."""

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOG_CONTENT_TYPE = "text/plain; charset=UTF-8"
OTHER_CONTENT_TYPE = "application/octet-stream"


def guess_content_headers(name: str) -> tuple[str, str | None]:
    """Content type and encoding of an object, as workers store it in Swift (docs/formats.rst, Containers and object names and Local result store).

    Only ``log.gz`` is text with ``Content-Encoding: gzip`` (browsers and
    clients gunzip it); everything else, ``artifacts.tar.gz`` included, is
    opaque bytes.
    """
    if name.rsplit("/", 1)[-1] == "log.gz":
        return LOG_CONTENT_TYPE, "gzip"
    return OTHER_CONTENT_TYPE, None


def open_store(config: Config) -> ResultStore:
    """The store selected by ``[web] results_store``. Raises ConfigError."""
    kind = config.results_store
    if kind == "local":
        from webcontrol.store.local import LocalStore

        return LocalStore(config.need("web", "results_dir"))
    from webcontrol.store.swift import SwiftStore

    return SwiftStore.from_config(config)
