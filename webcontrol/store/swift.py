# SPDX-License-Identifier: GPL-3.0-or-later
"""The Swift result store, over python-swiftclient.

Each operation runs on a connection of the store's
:class:`~webcontrol.store.swiftpool.ConnectionPool` (an object body keeps
its connection until it is closed), so threads of a web process never wait
for each other's requests, retries or back-off, and all of them share one
login. swiftclient re-authenticates on 401 and retries each operation up
to five times with back-off. Errors become the store's exceptions with a
message that names the operation, so programs can log one clear line.
``close()`` closes the pool's connections.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from swiftclient.client import Connection
from swiftclient.exceptions import ClientException

from webcontrol.store import (
    PAGE_LIMIT,
    ContainerNotFound,
    ObjectInfo,
    ObjectNotFound,
    ObjectStream,
    ResultStore,
    StoreError,
    check_limit,
    guess_content_headers,
)
from webcontrol.store.swifthttp import StorageReader
from webcontrol.store.swiftpool import ConnectionPool

log = logging.getLogger(__name__)

RETRIES = 5
# Back-off between retries doubles from STARTING_BACKOFF up to MAX_BACKOFF (1+2+4+8+16 s at most).
STARTING_BACKOFF = 1.0
MAX_BACKOFF = 16.0
CHUNK_SIZE = 64 * 1024
TIMEOUT = 60.0
T = TypeVar("T")


class SwiftStore(ResultStore):
    """Result containers in one Swift account."""

    def __init__(
        self,
        auth_url: str,
        user: str,
        key: str,
        auth_version: str = "3",
        os_options: dict[str, str] | None = None,
        retries: int = RETRIES,
        starting_backoff: float | None = None,
        max_backoff: float | None = None,
        timeout: float = TIMEOUT,
    ):
        self.auth_url = auth_url
        self.user = user
        self._pool = ConnectionPool(
            authurl=auth_url,
            user=user,
            key=key,
            auth_version=auth_version,
            os_options=os_options or {},
            retries=retries,
            starting_backoff=STARTING_BACKOFF if starting_backoff is None else starting_backoff,
            max_backoff=MAX_BACKOFF if max_backoff is None else max_backoff,
            timeout=timeout,
        )
        self._reader = StorageReader(
            self._credentials,
            user,
            auth_url,
            retries=retries,
            starting_backoff=STARTING_BACKOFF if starting_backoff is None else starting_backoff,
            max_backoff=MAX_BACKOFF if max_backoff is None else max_backoff,
            timeout=timeout,
        )

    @classmethod
    def from_config(cls, config, **kwargs: Any) -> SwiftStore:
        """A store from ``[swift]``: Keystone v3, or tempauth when os_identity_api_version = 1.

        Raises ConfigError when a required key is missing.
        """
        auth_url = config.need("swift", "os_auth_url")
        user = config.need("swift", "os_username")
        key = config.need("swift", "os_password")
        version = str(config.get("swift", "os_identity_api_version") or "3").strip()
        if version in ("1", "1.0"):
            return cls(auth_url, user, key, auth_version="1", **kwargs)
        options = {
            "project_name": config.need("swift", "os_project_name"),
            "project_domain_name": config.get("swift", "os_project_domain_name"),
            "user_domain_name": config.get("swift", "os_user_domain_name"),
        }
        region = config.get("swift", "os_region_name")
        if region:
            options["region_name"] = region
        return cls(auth_url, user, key, auth_version=version, os_options=options, **kwargs)

    def __repr__(self) -> str:
        return f"SwiftStore({self.auth_url!r}, user={self.user!r})"

    def _call(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(connection, *args, **kwargs)`` on a pooled connection, given back afterwards."""
        conn = self._pool.take()
        try:
            return self._run(conn, what, func, *args, **kwargs)
        finally:
            self._pool.give_back(conn)

    def _run(self, conn: Connection, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one swiftclient operation: 404 → _NotFound (the caller knows what is missing), failures → StoreError."""
        try:
            return func(conn, *args, **kwargs)
        except ClientException as err:
            auth = (err.msg or "").startswith("Auth")
            if err.http_status == 404 and not auth:
                raise _NotFound() from None
            if auth or err.http_status == 401:
                raise StoreError(
                    f"Swift authentication as {self.user} failed at {self.auth_url}: {_status(err)}"
                ) from None
            raise StoreError(f"Swift {what} failed at {self.auth_url}: {_status(err)}") from None
        except (requests.RequestException, OSError) as err:
            # The storage URL (once known) may be another host than the auth service.
            where = conn.url or self.auth_url
            raise StoreError(f"Swift {what} failed: cannot reach {where}: {_reason(err)}") from None

    def _credentials(self, refused: str | None) -> tuple[str, str]:
        """The pool's storage URL and token for the reader. Raises StoreError, or OSError (retried)."""
        try:
            return self._pool.credentials(refused)
        except ClientException as err:
            raise StoreError(f"Swift authentication as {self.user} failed at {self.auth_url}: {_status(err)}") from None
        except requests.RequestException as err:
            raise ConnectionError(_reason(err)) from None

    def _read(self, what: str, container: str, name: str = "", query: dict[str, str] | None = None) -> bytes | None:
        """The body of a GET through the reader, or None on 404. Raises StoreError."""
        answer = self._reader.get(what, f"{container}/{name}" if name else container, query)
        if answer.status == 404:
            return None
        if answer.status == 401 or answer.status == 403:
            raise StoreError(f"Swift {what} refused at {self.auth_url}: HTTP {answer.status} {answer.reason}")
        if not 200 <= answer.status < 300:
            raise StoreError(f"Swift {what} failed at {self.auth_url}: HTTP {answer.status} {answer.reason}")
        return answer.body

    # Listings

    def list_containers(self, prefix: str | None = None) -> list[str]:
        names: list[str] = []
        marker = None
        while True:
            try:
                _, page = self._call(
                    "account listing", Connection.get_account, marker=marker, prefix=prefix, limit=PAGE_LIMIT
                )
            except _NotFound:
                raise StoreError(f"Swift account listing failed at {self.auth_url}: account not found") from None
            names.extend(row["name"] for row in page)
            if len(page) < PAGE_LIMIT:
                return sorted(names)
            marker = page[-1]["name"]

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
        query = {"format": "json", "limit": str(limit)}
        for key, value in (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("marker", marker),
            ("end_marker", end_marker),
        ):
            if value:
                query[key] = value
        body = self._read(f"listing of {container}", container, query=query)
        if body is None:
            raise ContainerNotFound(f"container {container} does not exist")
        try:
            rows = json.loads(body) if body else []
        except ValueError:
            raise StoreError(f"Swift listing of {container} at {self.auth_url}: not JSON") from None
        return [_row_info(row) for row in rows]

    # Objects

    def _not_found(self, container: str, name: str) -> StoreError:
        """ObjectNotFound, or ContainerNotFound when the whole container is missing."""
        try:
            self._call(f"HEAD of {container}", Connection.head_container, container)
        except _NotFound:
            return ContainerNotFound(f"container {container} does not exist")
        return ObjectNotFound(f"object {container}/{name} does not exist")

    def head_object(self, container: str, name: str) -> ObjectInfo:
        try:
            headers = self._call(f"HEAD of {container}/{name}", Connection.head_object, container, name)
        except _NotFound:
            raise self._not_found(container, name) from None
        return ObjectInfo(
            name=name,
            bytes=int(headers.get("content-length") or 0),
            last_modified=_http_date(headers.get("last-modified")),
            content_type=headers.get("content-type", ""),
        )

    def get_object(self, container: str, name: str) -> bytes:
        body = self._read(f"GET of {container}/{name}", container, name)
        if body is None:
            raise self._not_found(container, name)
        return body

    def open_object(self, container: str, name: str) -> ObjectStream:
        # The body streams on the connection's HTTP session: it is given back once the body is closed.
        conn = self._pool.take()
        try:
            headers, body = self._run(
                conn, f"GET of {container}/{name}", Connection.get_object, container, name, resp_chunk_size=CHUNK_SIZE
            )
        except BaseException as err:
            self._pool.give_back(conn)
            if isinstance(err, _NotFound):
                raise self._not_found(container, name) from None
            raise
        length = headers.get("content-length")
        return ObjectStream(
            content_type=headers.get("content-type", "application/octet-stream"),
            content_encoding=headers.get("content-encoding"),
            content_length=int(length) if length is not None else None,
            last_modified=_http_date(headers.get("last-modified")),
            chunks=_Chunks(body, f"{container}/{name}", lambda broken: self._pool.give_back(conn, reusable=not broken)),
        )

    def put_object(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        self._put(container, name, data, content_type, content_encoding)

    def _put(self, container, name, contents, content_type=None, content_encoding=None, content_length=None) -> None:
        if content_type is None:
            content_type, guessed_encoding = guess_content_headers(name)
            content_encoding = content_encoding or guessed_encoding
        headers = {"Content-Encoding": content_encoding} if content_encoding else {}

        def put() -> None:
            if hasattr(contents, "seek"):
                contents.seek(0)
            self._call(
                f"PUT of {container}/{name}",
                Connection.put_object,
                container,
                name,
                contents,
                content_length=content_length,
                content_type=content_type,
                headers=headers,
            )

        try:
            put()
        except _NotFound:
            # Only tests, the demo and db-backup write: they may create their container.
            log.info("creating Swift container %s", container)
            self._call(f"PUT of container {container}", Connection.put_container, container)
            try:
                put()
            except _NotFound:
                raise StoreError(f"Swift PUT of {container}/{name} failed: container vanished") from None

    def put_object_file(self, container: str, name: str, path: str | os.PathLike) -> None:
        # swiftclient rewinds the file itself before each retry.
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self._put(container, name, handle, content_length=size)

    def delete_object(self, container: str, name: str) -> None:
        try:
            self._call(f"DELETE of {container}/{name}", Connection.delete_object, container, name)
        except _NotFound:
            raise self._not_found(container, name) from None

    def close(self) -> None:
        """Close the idle connections; one still streaming a body is closed with the body."""
        self._reader.close()
        self._pool.close()


class _NotFound(Exception):
    """Internal: Swift answered 404; the caller knows which kind of thing is missing."""


class _Chunks:
    """Streams a swiftclient object body, turning transport errors into StoreError."""

    def __init__(self, body, label: str, done: Callable[[bool], None]):
        self._body = body
        self._iter = iter(body)
        self._label = label
        self._done: Callable[[bool], None] | None = done  # called once, with True if the stream broke

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iter)
        except StopIteration:
            self.close()
            raise
        except (ClientException, requests.RequestException, OSError) as err:
            self.close(broken=True)
            raise StoreError(f"Swift GET of {self._label} broke off: {_reason(err)}") from None

    def close(self, broken: bool = False) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            try:
                close()
            except Exception as err:  # noqa: BLE001
                log.debug("closing %s: %s", self._label, err)
        done, self._done = self._done, None
        if done is not None:
            done(broken)


def _row_info(row: dict) -> ObjectInfo:
    if "subdir" in row:
        return ObjectInfo(name=row["subdir"], subdir=row["subdir"])
    return ObjectInfo(
        name=row["name"],
        bytes=int(row.get("bytes") or 0),
        last_modified=_listing_date(row.get("last_modified")),
        content_type=row.get("content_type", ""),
    )


def _listing_date(value: str | None) -> datetime.datetime | None:
    # Listings give naive UTC ISO times such as 2024-02-21T11:00:51.123450.
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def _http_date(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def _status(err: ClientException) -> str:
    if err.http_status:
        return f"HTTP {err.http_status} {err.http_reason or ''}".strip()
    return str(err)[:200]


def _reason(err: BaseException) -> str:
    # requests nests the socket error several levels deep; the innermost says most.
    text = str(err)
    for marker in ("Connection refused", "timed out", "Name or service not known", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text[:200] or type(err).__name__
