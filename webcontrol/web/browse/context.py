# SPDX-License-Identifier: GPL-3.0-or-later
"""What every browse page needs: the public DB, the release list, live state, parameters.

The public DB is replaced by publish-db every minute (rename over the old
file). Each web thread keeps its read-only connection while the file is the
same one (inode, mtime and size) and opens a new one for a new file: a new
connection parses the schema and starts with a cold page cache, most of
the time of a small page at 10M results. Between requests the connection is
put back as it was opened (attached indexes detached). The release/arch
catalogue, which needs a scan of ``test``, is cached per published file
(mtime and size).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass

import flask

from webcontrol import classindex, db, history, livestate, newest, results
from webcontrol.config import Config, ConfigError
from webcontrol.filecache import FileCache, identity
from webcontrol.web.appbase import BadRequest, ServiceUnavailable, app_config

log = logging.getLogger(__name__)

#: Every browse statement is interrupted after this long (a page must never hang).
STATEMENT_TIMEOUT_MS = 5000
HISTORY_LIMIT_DEFAULT = 100
HISTORY_LIMIT_MAX = 10000
ALERT_LEVELS = ("info", "warning", "danger")
SQL_INT_MAX = 2**62


def config() -> Config:
    return app_config()


def public_db_path() -> str:
    return config().need("web", "database_public")


def public_db_identity() -> tuple[str, int, int, int]:
    """The published file: path, inode, mtime and size (publish-db renames a new file over it). Raises ServiceUnavailable."""
    path = public_db_path()
    found = identity(path)
    if found is None:
        log.error("public DB %s does not exist (has publish-db run?)", path)
        raise ServiceUnavailable("The results database is not available yet; please try again later.")
    return (path, *found)


#: This thread's connection to the public DB between requests: ``(file identity, connection)``.
_kept = threading.local()


def get_db() -> sqlite3.Connection:
    """The request's read-only connection to the public DB. Raises ServiceUnavailable."""
    if "browse_db" not in flask.g:
        published = public_db_identity()
        path = published[0]
        kept = getattr(_kept, "db", None)
        if kept is not None and kept[0] == published:
            conn = kept[1]
        else:
            _kept.db = None
            if kept is not None:
                kept[1].close()
            try:
                conn = db.connect_ro(path, timeout_ms=STATEMENT_TIMEOUT_MS)
            except db.DatabaseError as err:
                log.error("%s", err)
                raise ServiceUnavailable("The results database is not available; please try again later.") from None
            _kept.db = (published, conn)
        flask.g.browse_db = conn
    return flask.g.browse_db


def detach_db() -> sqlite3.Connection | None:
    """Take the request's connection away from the end-of-request close (the caller closes it)."""
    conn = flask.g.pop("browse_db", None)
    if conn is not None and getattr(_kept, "db", None) is not None and _kept.db[1] is conn:
        _kept.db = None  # a streamed page reads it after the request: not for the next one
    return conn


def close_db(_exc: BaseException | None = None) -> None:
    """End of request: the kept connection goes back as it was opened, any other is closed."""
    conn = flask.g.pop("browse_db", None)
    if conn is None:
        return
    kept = getattr(_kept, "db", None)
    if kept is not None and kept[1] is conn:
        try:
            # Sidecar indexes (trigger, classification) are replaced on their own schedule: attach anew.
            for schema in [row[1] for row in conn.execute("PRAGMA database_list")]:
                if schema not in ("main", "temp"):
                    conn.execute(f"DETACH DATABASE {schema}")
            if not conn.in_transaction:
                return
        except sqlite3.Error as err:
            log.warning("dropping the public DB connection: %s", err)
        _kept.db = None
    conn.close()


#: The schema name the classification index is attached under on the request's connection.
CLASSINDEX_SCHEMA = "classidx"


def classification_index() -> classindex.Freshness | None:
    """The classification index, attached to the request's connection, when it describes the published DB.

    None (logged) when it is missing, unreadable or does not match the
    DB closely enough (see :func:`webcontrol.classindex.freshness`);
    pages then classify their rows live. Looked at once per request.
    """
    if "browse_classindex" not in flask.g:
        conn = get_db()
        path = classindex.index_path(public_db_path(), config().get("web", "classification_index"))
        fresh = None
        if not classindex.attach(conn, path, CLASSINDEX_SCHEMA):
            _warn_once(f"classification index {path} is missing or unreadable; classifying results live")
        else:
            fresh = classindex.freshness(conn, CLASSINDEX_SCHEMA)
            if fresh is None:
                _warn_once(f"classification index {path} does not match the published DB; classifying results live")
        flask.g.browse_classindex = fresh
    return flask.g.browse_classindex


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning the first time in this process, then at debug level: most pages ask, every request."""
    log.log(logging.DEBUG if message in _warned else logging.WARNING, "%s", message)
    _warned.add(message)


# Release and arch catalogue ------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    releases: list[str]  # supported releases, oldest first
    arches: dict[str, list[str]]  # release -> arches with results
    requester_run_index: bool = False  # the DB has result(requester, run_id)

    def all_arches(self) -> list[str]:
        return sorted({arch for arches in self.arches.values() for arch in arches})


def catalogue() -> Catalogue:
    """Releases (config order, or fallbacks of docs/operating.rst, Configuration) and their arches, cached per DB file."""
    # Per app: the release list also depends on the app's config.
    extensions = flask.current_app.extensions
    cache = extensions.get("browse_catalogue") or extensions.setdefault("browse_catalogue", FileCache(_catalogue))
    return cache.get(public_db_path())


def _catalogue(_path: str) -> Catalogue:
    conn = get_db()
    arches = history.release_arches(conn)
    cfg = config()
    if cfg.get("web", "releases"):
        releases = list(cfg.get("web", "releases"))
    else:
        releases = cfg.supported_releases(()) or history.release_first_runs(conn, arches)
    return Catalogue(releases=releases, arches=arches, requester_run_index=history.has_requester_run_index(conn))


# Live state ---------------------------------------------------------------------------------


def running_raw() -> dict:
    return livestate.running_cache.get(config().get("web", "running_cache"))


def queued_raw() -> dict:
    return livestate.queued_cache.get(config().get("web", "amqp_queue_cache"))


def file_ages() -> dict[str, int | None]:
    cfg = config()
    return livestate.file_ages(cfg.get("web", "amqp_queue_cache"), cfg.get("web", "running_cache"))


def stats_path(cfg: Config | None = None) -> str | None:
    folder = (cfg or config()).get("web", "stats_cache_dir")
    return os.path.join(folder, "stats.json") if folder else None


def alert() -> dict | None:
    """The ``[web] alert`` banner as ``{"level", "message"}``, or None."""
    path = config().get("web", "alert")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    level, sep, message = text.partition(":")
    if not sep or level.strip() not in ALERT_LEVELS:
        return {"level": "info", "message": text}
    return {"level": level.strip(), "message": message.strip()}


# Query parameters -----------------------------------------------------------------------------


def int_param(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer query parameter within bounds. Raises BadRequest."""
    raw = flask.request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None
    if maximum is None:
        maximum = SQL_INT_MAX  # SQLite integers are 64-bit; beyond that a bind would fail
    if value < minimum or value > maximum:
        # Without a stated maximum, only a value past SQLite's range needs the upper bound spelled out.
        upper = f"..{maximum}" if maximum < SQL_INT_MAX or value > maximum else " or more"
        raise BadRequest(f"{name} must be {minimum}{upper}, not {value}")
    return value


def limit_param(default: int = HISTORY_LIMIT_DEFAULT) -> int:
    return int_param("limit", default, 1, HISTORY_LIMIT_MAX)


def offset_param() -> int:
    """``offset`` of old links: honoured up to newest.OFFSET_MAX (deeper pages page with ``before``)."""
    return int_param("offset", 0, 0, newest.OFFSET_MAX)


def before_param() -> str | None:
    """``before``: a run id (``20240221_110051_a1b2c@``, or without its ``@``) for keyset paging."""
    before = flask.request.args.get("before") or None
    if before is not None and not results.is_run_id(before) and not results.RUN_ID_RE.match(before + "@"):
        raise BadRequest(f"before must be a run id such as 20240221_110051_a1b2c@, not {before!r}")
    return before


def flag_param(name: str) -> bool:
    """``show-*`` style flags: ``false`` hides, anything else (or absence) shows."""
    return flask.request.args.get(name, "").lower() != "false"


# Result store ---------------------------------------------------------------------------------


def store():
    """The app's result store (one per process; LocalStore or SwiftStore). Raises ServiceUnavailable."""
    from webcontrol.store import StoreError, open_store

    app = flask.current_app
    cached = app.extensions.get("browse_store")
    if cached is None:
        try:
            cached = open_store(config())
        except (StoreError, OSError, ConfigError) as err:
            log.error("cannot open the result store: %s", err)
            raise ServiceUnavailable("The result store is not available; please try again later.") from None
        app.extensions["browse_store"] = cached
    return cached
