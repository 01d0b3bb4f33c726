# SPDX-License-Identifier: GPL-3.0-or-later
"""Pages served by browse.cgi for request.cgi's features (registered by the browse app).

- ``/request``: a form for a test request. It submits to request.cgi (inline
  through a small script when JavaScript runs, else by a redirect to the
  equivalent ``/request.cgi?…`` URL, which also drops empty fields), so the
  outcome is request.cgi's own answer. It carries the login's form token.
- ``/github-jobs``: the pending GitHub jobs and where each one is.
"""

from __future__ import annotations

import datetime
import logging
import urllib.parse
from pathlib import Path

import flask

from webcontrol import db, github, livestate
from webcontrol.web.appbase import app_config, site_url
from webcontrol.web.request.auth import form_token, session_token_subject

log = logging.getLogger(__name__)

bp = flask.Blueprint("request_pages", __name__, template_folder=str(Path(__file__).parent / "templates"))

#: csrf_token: the form's token, carried to request.cgi, which checks it against the login.
FORM_KEYS = ("release", "arch", "package", "trigger", "ppa", "all-proposed", "csrf_token")


def release_arches() -> dict[str, list[str]]:
    """``{release: [arches]}`` for the supported releases, newest release first."""
    config = app_config()
    try:
        conn = db.connect_ro(config.need("web", "database_public"), timeout_ms=5000)
    except db.DatabaseError as err:
        log.error("request form: %s", err)
        return {}
    try:
        releases = config.supported_releases() or config.supported_releases(db.releases_by_age(conn))
        arches: dict[str, list[str]] = {}
        for row in conn.execute("SELECT DISTINCT release, arch FROM test ORDER BY arch"):
            arches.setdefault(row[0], []).append(row[1])
    finally:
        conn.close()
    return {release: arches.get(release, []) for release in reversed(releases) if release in arches}


@bp.route("/request", methods=["GET", "POST"])
def request_form():
    if flask.request.method == "POST":
        items = [
            (key, value.strip())
            for key in FORM_KEYS
            for raw in flask.request.form.getlist(key)
            for value in ([raw] if key != "ppa" else raw.split())
            if value.strip()
        ]
        return flask.redirect(f"{site_url()}/request.cgi?{urllib.parse.urlencode(items)}", 303)
    subject = session_token_subject()
    return flask.render_template(
        "request_form.html",
        releases=release_arches(),
        values=flask.request.args,
        form_token=form_token(subject) if subject else "",
    )


def _when(stamp) -> str:
    if not isinstance(stamp, (int, float)):
        return ""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.route("/github-jobs")
def github_jobs():
    config = app_config()
    queued = livestate.queued_cache.get(config.get("web", "amqp_queue_cache"))
    running = livestate.running_cache.get(config.get("web", "running_cache"))
    queued_items = {str(e) for r in livestate.queued_requests(queued) for e in (r.params.get("env") or [])}
    running_items = {str(e) for j in livestate.running_jobs(running) for e in (j.params.get("env") or [])}
    jobs = []
    for job in github.PendingJobs(config.pending_dir):
        if job.statuses_item in queued_items:
            state = "queued"
        elif job.statuses_item in running_items:
            state = "running"
        else:
            state = "waiting for result"
        jobs.append(
            {
                "package": job.package,
                "release": job.release,
                "arch": job.arch,
                "testname": job.testname or "",
                "pr": job.env_value("UPSTREAM_PULL_REQUEST") or "",
                "commit": job.statuses_url.rstrip("/").rsplit("/", 1)[-1],
                "submitted": _when(job.params.get("created")),
                "left_queue": _when(job.params.get("left-queue")),
                "state": state,
            }
        )
    return flask.render_template("github_jobs.html", jobs=jobs)
