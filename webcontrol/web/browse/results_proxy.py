# SPDX-License-Identifier: GPL-3.0-or-later
"""``/results/<container>[/<object>]`` served from the local result store (docs/formats.rst, /results/ and Local result store).

Clients were written against Swift's public access, so this answers as
Swift does: plain (default) or JSON listings with prefix, delimiter,
marker, end_marker and limit; 204 for an empty plain listing; 401 for a
container that does not exist; objects as stored, ``log.gz`` with
``Content-Encoding: gzip``. With the Swift store the front end proxies
``/results/`` and this blueprint answers 404.
"""

from __future__ import annotations

import logging

import flask
from werkzeug.http import http_date

from webcontrol import results
from webcontrol.store import LISTING_MAX, ContainerNotFound, InvalidRequest, ObjectNotFound, StoreError
from webcontrol.web.appbase import BadRequest, NotFound, ServiceUnavailable
from webcontrol.web.browse import context

log = logging.getLogger(__name__)

bp = flask.Blueprint("results_proxy", __name__)

LOG_TYPE = "text/plain; charset=UTF-8"
OTHER_TYPE = "application/octet-stream"


def _plain(status: int, text: str, headers: dict | None = None) -> flask.Response:
    response = flask.Response(text, status=status, mimetype="text/plain")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _local_only() -> None:
    if context.config().results_store != "local":
        raise NotFound("results are served by the front end's proxy to Swift")


def _anonymous_readable(container: str) -> bool:
    """Private containers have no public read ACL in Swift: anonymous access gets 401 there too.

    They are served only by private-results, after its login and ``readable-by`` check (docs/formats.rst, private-results).
    """
    return not results.is_private_container(container)


@bp.route("/results/", strict_slashes=False)
def account():
    _local_only()
    # Anonymous Swift access cannot list the account.
    return _plain(401, "Unauthorized\n")


@bp.route("/results/<container>", strict_slashes=False)
def listing(container: str):
    _local_only()
    if not _anonymous_readable(container):
        return _plain(401, "Unauthorized\n")
    args = flask.request.args
    fmt = args.get("format", "plain").lower()
    if fmt not in ("plain", "json"):
        raise BadRequest("format must be plain or json")
    raw_limit = args.get("limit")
    limit = LISTING_MAX
    if raw_limit:
        try:
            limit = int(raw_limit)
        except ValueError:
            return _plain(412, "Value of limit must be a positive integer\n")
        if limit > LISTING_MAX:
            return _plain(412, f"Maximum limit is {LISTING_MAX}\n")
        if limit < 1:
            return _plain(412, "Value of limit must be a positive integer\n")
    try:
        rows = context.store().list_objects(
            container,
            prefix=args.get("prefix") or None,
            delimiter=args.get("delimiter") or None,
            marker=args.get("marker") or None,
            limit=limit,
            end_marker=args.get("end_marker") or None,
        )
    except ContainerNotFound:
        return _plain(401, "Unauthorized\n")
    except InvalidRequest as err:
        raise BadRequest(str(err)) from None
    except StoreError as err:
        log.error("listing %s failed: %s", container, err)
        raise ServiceUnavailable("The result store is not answering; please try again later.") from None
    if fmt == "json":
        out = []
        for row in rows:
            if row.subdir is not None:
                out.append({"subdir": row.subdir})
                continue
            out.append(
                {
                    "name": row.name,
                    "bytes": row.bytes,
                    "content_type": row.content_type,
                    "last_modified": row.last_modified.strftime("%Y-%m-%dT%H:%M:%S.%f") if row.last_modified else "",
                }
            )
        return flask.jsonify(out)
    if not rows:
        return flask.Response(status=204)
    return flask.Response("".join(f"{row.name}\n" for row in rows), mimetype="text/plain")


@bp.route("/results/<container>/<path:name>")
def get_object(container: str, name: str):
    _local_only()
    if not _anonymous_readable(container):
        return _plain(401, "Unauthorized\n")
    store = context.store()
    try:
        stream = store.open_object(container, name)
    except ContainerNotFound:
        return _plain(401, "Unauthorized\n")
    except ObjectNotFound:
        return _plain(404, "Not Found\n")
    except InvalidRequest:
        raise BadRequest(f"invalid object name {name!r}") from None
    except StoreError as err:
        log.error("reading %s/%s failed: %s", container, name, err)
        raise ServiceUnavailable("The result store is not answering; please try again later.") from None
    response = flask.Response(stream.chunks, direct_passthrough=True)
    response.call_on_close(stream.close)
    if name.rsplit("/", 1)[-1] == "log.gz":
        response.headers["Content-Type"] = LOG_TYPE
        response.headers["Content-Encoding"] = "gzip"
    else:
        response.headers["Content-Type"] = OTHER_TYPE
    if stream.content_length is not None:
        response.headers["Content-Length"] = str(stream.content_length)
    if stream.last_modified is not None:
        response.headers["Last-Modified"] = http_date(stream.last_modified)
    return response
