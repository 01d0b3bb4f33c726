# SPDX-License-Identifier: GPL-3.0-or-later
"""private-results: logs and artifacts of private runs, for the users their ACL names (docs/formats.rst, private-results).

``/private-results/<container>/<series>/<arch>/<prefix>/<src>/<run_id>/<file>``.
Only ``private-*`` containers; the caller must be logged in (same ``session``
cookie as every web app) and named in the run's ``readable-by`` object,
directly or through a Launchpad team (every page of its participants). A
missing ACL or any Launchpad failure denies, and so does Launchpad taking
more than 20 s or 20 calls for one request. Answers are not kept across
requests: leaving a team takes effect at once. Files are streamed from the store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import flask

from webcontrol import config as configmod
from webcontrol import results
from webcontrol.launchpad import Launchpad, LaunchpadUnavailable
from webcontrol.launchpad_limits import LaunchpadAnswers, RequestLaunchpad, warm
from webcontrol.store import ContainerNotFound, InvalidRequest, ObjectNotFound, StoreError, open_store
from webcontrol.web import login
from webcontrol.web.appbase import (
    Forbidden,
    FullPath,
    NotFound,
    ServiceUnavailable,
    create_flask_app,
    current_nick,
    site_url,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/private-results"
UNPRIVILEGED = "Unprivileged! You can't access these logs."
LAUNCHPAD_BUDGET_S = 20.0
MAX_TEAM_LOOKUPS = 20
CHUNK = 64 * 1024

bp = flask.Blueprint("private", __name__)


@bp.route(PREFIX)
@bp.route(PREFIX + "/")
def index():
    return flask.Response("Please provide the path to the private result.", mimetype="text/plain")


@bp.route(PREFIX + "/<container>/<path:name>")
def serve(container: str, name: str):
    if not results.is_private_container(container):
        raise Forbidden("Limited to private results only.")
    nick = current_nick()
    if not nick:
        query = flask.request.query_string.decode("utf-8", "replace")
        target = site_url() + flask.request.path + (f"?{query}" if query else "")
        return flask.make_response(flask.render_template("private_login.html", next=target), 403)
    parts = name.split("/")
    if len(parts) != 6 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise NotFound("Log not found.")
    series, arch, prefix, src, run_id, _file = parts
    if prefix != results.srchash(src) or not results.is_run_id(run_id):
        raise NotFound("Log not found.")
    store = flask.current_app.extensions["autopkgtest-store"]
    try:
        if not _allowed(store, container, f"{series}/{arch}/{prefix}/{src}/{run_id}", nick):
            raise Forbidden(UNPRIVILEGED)
        stream = store.open_object(container, name)
    except (ObjectNotFound, ContainerNotFound, InvalidRequest):
        raise NotFound("Log not found.") from None
    except StoreError as err:
        log.error("store error for %s/%s: %s", container, name, err)
        raise ServiceUnavailable("The result store is not responding, please try again later.") from None
    log.info("serving %s/%s to %s", container, name, nick)
    response = flask.Response(_chunks(stream), direct_passthrough=True)
    if name.endswith(".gz"):
        response.headers["Content-Type"] = "text/plain; charset=UTF-8"
        response.headers["Content-Encoding"] = "gzip"
    else:
        response.headers["Content-Type"] = "application/octet-stream"
    if stream.content_length is not None:
        response.headers["Content-Length"] = str(stream.content_length)
    return response


def _chunks(stream):
    try:
        yield from stream.chunks
    finally:
        stream.close()


def _allowed(store, container: str, run_dir: str, nick: str) -> bool:
    """Raises StoreError (other than a missing ACL, which denies)."""
    try:
        acl = store.get_object(container, f"{run_dir}/readable-by").decode("utf-8", "replace")
    except (ObjectNotFound, ContainerNotFound, InvalidRequest):
        log.info("no readable-by for %s/%s: denying %s", container, run_dir, nick)
        return False
    names = [line.strip() for line in acl.splitlines() if line.strip()]
    if nick in names:
        return True
    base, answers = flask.current_app.extensions["autopkgtest-launchpad"]
    launchpad = RequestLaunchpad(base, answers, MAX_TEAM_LOOKUPS, LAUNCHPAD_BUDGET_S)
    for team in names:
        try:
            if nick in launchpad.participants(team):
                return True
        except LaunchpadUnavailable as err:
            log.warning("denying %s for %s/%s: Launchpad failed for team %s: %s", nick, container, run_dir, team, err)
            return False
    return False


def create_app(config: configmod.Config, warm_launchpad: bool = True) -> flask.Flask:
    """The private-results Flask app. Raises ConfigError / OSError at start-up.

    ``warm_launchpad`` builds the Launchpad client in the background now (not in the demo).
    """
    app = create_flask_app("webcontrol.web.private", config, template_folder=TEMPLATES)
    answers = LaunchpadAnswers(positive_ttl_s=0, negative_ttl_s=0)
    launchpad = Launchpad.from_config(config)
    if warm_launchpad:
        warm(launchpad)
    app.extensions["autopkgtest-launchpad"] = (launchpad, answers)
    # One store per process: its connections and login serve every request (it is thread-safe).
    app.extensions["autopkgtest-store"] = open_store(config)
    app.register_blueprint(bp)
    app.register_blueprint(login.make_blueprint("login", PREFIX + "/login", PREFIX + "/logout"))
    app.wsgi_app = FullPath(app.wsgi_app)
    return app
