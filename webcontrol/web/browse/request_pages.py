# SPDX-License-Identifier: GPL-3.0-or-later
"""Pages of browse.cgi for request.cgi's features.

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

import flask

from webcontrol import db, livestate
from webcontrol.web.appbase import ServiceUnavailable, form_token, session_token_subject, site_url
from webcontrol.web.browse import context

log = logging.getLogger(__name__)

bp = flask.Blueprint("request_pages", __name__)

#: csrf_token: the form's token, carried to request.cgi, which checks it against the login.
FORM_KEYS = ("release", "arch", "package", "trigger", "ppa", "all-proposed", "csrf_token")


def release_arches() -> dict[str, list[str]]:
    """``{release: [arches]}`` for the supported releases, newest release first."""
    config = context.config()
    try:
        conn = context.get_db()
    except ServiceUnavailable:
        return {}  # the form still works; get_db logged why
    releases = config.supported_releases() or config.supported_releases(db.releases_by_age(conn))
    arches: dict[str, list[str]] = {}
    for row in conn.execute("SELECT DISTINCT release, arch FROM test ORDER BY arch"):
        arches.setdefault(row[0], []).append(row[1])
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
    # Imported here: webcontrol.github loads requests, which no other browse page needs, and every
    # recycled mod_wsgi daemon would pay for it before its first page.
    from webcontrol import github

    config = context.config()
    queued = context.queued_raw()
    running = context.running_raw()
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
