# SPDX-License-Identifier: GPL-3.0-or-later
"""Files and machine endpoints: static files, live-state JSON, the public DB pair, /health.

These are read by britney, ppa-dev-tools, ubuntu-dev-tools and monitoring;
their bytes and shapes follow docs/formats.rst, Publishing, Live-state files and /health exactly.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse

import flask
from werkzeug.http import http_date
from werkzeug.wsgi import wrap_file

from webcontrol import liveindex, livestate
from webcontrol.web.appbase import STATIC_DIR, NotFound
from webcontrol.web.browse import context

log = logging.getLogger(__name__)

bp = flask.Blueprint("files", __name__)

STATIC_MAX_AGE = 60
FILE_PIECE = 64 * 1024
#: Freshness targets of docs/formats.rst, /health (seconds).
FRESHNESS = {"public_db": 180, "running": 90, "queued": 120, "stats": 7200}
_PACKAGES_SLASH = re.compile(r"^(/api/v1)?/packages/.+/\Z")


@bp.before_app_request
def redirect_trailing_slash():
    """``/packages/…/`` redirects to the same path without the slash (docs/formats.rst, Routes)."""
    path = flask.request.path
    if _PACKAGES_SLASH.match(path):
        # Quoted: a decoded path may hold CR/LF or spaces, which a Location header must not carry.
        target = flask.request.script_root + urllib.parse.quote(path.rstrip("/"), safe="/@+:~!$&'()*,;=")
        if flask.request.query_string:
            target += "?" + flask.request.query_string.decode("latin-1")
        return flask.redirect(target, 301)
    return None


@bp.route("/favicon.ico")
def favicon():
    return flask.Response(status=204)


@bp.route("/running.shtml")
def running_shtml():
    return flask.redirect(flask.request.script_root + "/running", 301)


@bp.route("/robots.txt")
def robots():
    return static_file("robots.txt")


@bp.route("/static/<path:filename>")
def static_file(filename: str):
    return flask.send_from_directory(STATIC_DIR, filename, max_age=STATIC_MAX_AGE)


def _file_response(path: str | None, mimetype: str, missing: bytes | None = None) -> flask.Response:
    """A whole file with Content-Length and Last-Modified from one open descriptor.

    publish-db renames a new file over the old one; holding the descriptor
    means the length, date and bytes all belong to the same file.
    """
    try:
        handle = open(path, "rb") if path else None
    except OSError:
        handle = None
    if handle is None:
        if missing is None:
            raise NotFound("file not found")
        response = flask.Response(missing, mimetype=mimetype)
        response.headers["Cache-Control"] = f"max-age={STATIC_MAX_AGE}"
        return response
    return _handle_response(handle, mimetype)


def _handle_response(handle, mimetype: str) -> flask.Response:
    stat = os.fstat(handle.fileno())
    # Pieces of 64 kB, not werkzeug's 8 kB: a 10 MB file in 160 steps of Python, not 1,300 (mod_wsgi's
    # own file wrapper, where it applies, ignores the size and sends the file from the descriptor).
    body = wrap_file(flask.request.environ, handle, buffer_size=FILE_PIECE)
    response = flask.Response(body, mimetype=mimetype, direct_passthrough=True)
    response.headers["Content-Length"] = str(stat.st_size)
    response.headers["Last-Modified"] = http_date(stat.st_mtime)
    response.headers["Cache-Control"] = f"max-age={STATIC_MAX_AGE}"
    return response


@bp.route("/static/running.json")
def running_json():
    return _file_response(context.config().get("web", "running_cache"), "application/json", missing=b"{}")


@bp.route("/static/autopkgtest.db")
def public_db():
    return _file_response(context.config().get("web", "database_public"), "application/x-sqlite3")


@bp.route("/static/autopkgtest.db.sha256")
def public_db_sha256():
    path = context.config().get("web", "database_public")
    return _file_response(f"{path}.sha256" if path else None, "text/plain")


@bp.route("/queued.json")
def queued_json():
    empty = b'{"releases": [], "arches": [], "queues": {}}'
    return _file_response(context.config().get("web", "amqp_queue_cache"), "application/json", missing=empty)


def _queue_listing(name: str) -> flask.Response:
    """/queues.json or /queue_size.json: the file cache-amqp wrote next to queued.json.

    Without it (an older cache-amqp, or one written for another version of
    queued.json) the same text is derived from the parsed queued.json.
    """
    path = context.config().get("web", "amqp_queue_cache")
    with liveindex.open_queued(path) as index:
        handle = index.listing(name) if index is not None else None
    if handle is not None:
        return _handle_response(handle, "application/json")
    return flask.Response(liveindex.listing_text(context.queued_raw(), name), mimetype="application/json")


@bp.route("/queues.json")
def queues_json():
    return _queue_listing(liveindex.QUEUES_JSON)


@bp.route("/queue_size.json")
def queue_size_json():
    return _queue_listing(liveindex.QUEUE_SIZE_JSON)


@bp.route("/health")
def health():
    cfg = context.config()
    paths = {
        "public_db": cfg.get("web", "database_public"),
        "running": cfg.get("web", "running_cache"),
        "queued": cfg.get("web", "amqp_queue_cache"),
        "stats": context.stats_path(),
    }
    files = {}
    for name, path in paths.items():
        age = livestate.file_age(path)
        files[name] = {
            "age_seconds": round(age) if age is not None else None,
            "max_age_seconds": FRESHNESS[name],
            "ok": age is not None and age <= FRESHNESS[name],
        }
    ok = all(entry["ok"] for entry in files.values())
    response = flask.jsonify({"ok": ok, "files": files})
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response
