# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub pull-request webhooks on request.cgi (CONTRACT §10).

Order: signature (before anything is parsed), event and action, payload
fields, then validation of the query parameters. An accepted delivery is
published to ``debci-upstream-<rel>-<arch>``, recorded as a pending job and
announced to GitHub with a ``pending`` status (whose failure is only logged).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import flask

from webcontrol import amqp, github, livestate, messages, results
from webcontrol.launchpad import LaunchpadUnavailable
from webcontrol.web.appbase import BadRequest, Forbidden, NotFound, ServiceUnavailable, site_url
from webcontrol.web.request.services import services
from webcontrol.web.request.validation import LAUNCHPAD_DOWN, RequestArgs, check_ppas, duplicate_message

log = logging.getLogger(__name__)

ENV_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+=[a-zA-Z0-9.:~/ -=]*")
BUILD_GIT_RE = re.compile(r"https?://[a-zA-Z0-9._/~+-]+(#[a-zA-Z0-9._/-]+)?")
TESTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
ACTIONS = ("opened", "synchronize", "reopened")
KNOWN_KEYS = ("release", "arch", "package", "ppa", "env", "build-git", "testname")
RABBIT_DOWN = "RabbitMQ is unresponsive, please try again later."


def is_webhook(request: flask.Request) -> bool:
    headers = request.headers
    if any(h in headers for h in ("X-GitHub-Event", "X-Hub-Signature-256", "X-Hub-Signature")):
        return True
    return request.method == "POST" and b"api.github.com" in request.get_data(cache=True)


def _field(data: Any, *path: str) -> Any:
    value = data
    for key in path:
        if not isinstance(value, dict) or key not in value or value[key] is None:
            raise BadRequest(f"Missing field in JSON data: '{key}'")
        value = value[key]
    return value


def handle(args: RequestArgs):
    """Answer one delivery; returns a Flask response. Raises WebError subclasses."""
    request = flask.request
    body = request.get_data(cache=True)
    package = args.first("package") or ""
    try:
        secret = github.load_secrets(services().config.get("github", "secrets")).get(package)
        github.verify_signature(secret, request.headers, body)
    except github.SignatureError as err:
        log.warning("webhook for %r refused: %s", package, err)
        raise Forbidden(github.SIGNATURE_FAILED) from None

    if request.headers.get("X-GitHub-Event") == "ping":
        return plain("OK")
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("Invalid JSON data") from None
    action = payload.get("action") if isinstance(payload, dict) else None
    if action not in ACTIONS:
        return plain(f"GitHub PR action {action if action is not None else '<none>'} is not relevant for testing")
    number = _field(payload, "number")
    statuses_url = _field(payload, "pull_request", "statuses_url")
    build_git = args.first("build-git")
    if not build_git:
        clone_url = _field(payload, "pull_request", "base", "repo", "clone_url")
        build_git = f"{clone_url}#refs/pull/{number}/head"
    if isinstance(number, bool) or not (isinstance(number, int) or (isinstance(number, str) and number.isdigit())):
        raise BadRequest("Invalid field in JSON data: 'number'")
    if not isinstance(statuses_url, str):
        raise BadRequest("Invalid field in JSON data: 'statuses_url'")

    if services().publisher is None:
        raise ServiceUnavailable("demo: submissions are disabled")
    env = [item for value in args.getlist("env") for item in value.split(";") if item]
    env += [f"UPSTREAM_PULL_REQUEST={number}", f"GITHUB_STATUSES_URL={statuses_url}"]
    plans = _validate(args, package, env, build_git)
    return _submit(plans, args.first("release") or "", package, number, statuses_url)


def _validate(args: RequestArgs, package: str, env: list[str], build_git: str) -> list[tuple[str, dict]]:
    svc = services()
    release = args.first("release") or ""
    arches = list(dict.fromkeys(args.getlist("arch")))
    conn = svc.open_db()
    try:
        if release not in svc.releases(conn):
            raise NotFound(f"release {release} not found")
        known = svc.arches(conn, release)
    finally:
        conn.close()
    if not arches:
        raise NotFound("arch  not found")
    for arch in arches:
        if arch not in known:
            raise NotFound(f"arch {arch} not found")
    if not results.PACKAGE_RE.match(package):
        raise NotFound(f"package {package} not found")
    ppas = args.getlist("ppa")
    if not ppas:
        raise BadRequest("Must specify at least one PPA (to associate results with)")
    try:
        check_ppas(svc.launchpad, ppas)
    except LaunchpadUnavailable:
        raise ServiceUnavailable(LAUNCHPAD_DOWN) from None
    for item in env:
        if not ENV_RE.fullmatch(item):
            raise BadRequest(f'Invalid environment variable format "{item}"')
    if not BUILD_GIT_RE.fullmatch(build_git):
        raise BadRequest("Malformed build-git")
    testname = args.first("testname")
    if testname is not None and not TESTNAME_RE.fullmatch(testname):
        raise BadRequest("Malformed testname")
    unknown = [key for key in args.keys() if key not in KNOWN_KEYS]
    if unknown:
        raise BadRequest(f"Unsupported arguments: {' '.join(unknown)}")
    params: dict[str, Any] = {"build-git": build_git, "env": env, "ppas": ppas}
    if testname:
        params["testname"] = testname
    return [(arch, params) for arch in arches]


def _submit(plans: list[tuple[str, dict]], release: str, package: str, number, statuses_url: str):
    svc = services()
    config = svc.config
    pending = github.PendingJobs(config.pending_dir)
    first = plans[0][1]
    testname = first.get("testname")
    fresh = [
        (arch, params)
        for arch, params in plans
        if not pending.exists(github.record_name(release, arch, package, testname, number, statuses_url))
    ]
    if not fresh:
        log.info("redelivered webhook for %s PR %s: already queued", package, number)
        return plain("already queued")
    running = livestate.running_cache.get(config.get("web", "running_cache"))
    queued = livestate.queued_cache.get(config.get("web", "amqp_queue_cache"))
    for arch, params in fresh:
        triggers = [
            v
            for item in params["env"]
            if "trigger" in item.split("=", 1)[0].lower()
            for v in item.split("=", 1)[1].split(",")
        ]
        if livestate.is_running(running, package, release, arch, params):
            raise Forbidden(duplicate_message("running", release, package, arch, triggers))
        if livestate.is_queued(queued, package, release, arch, params):
            raise Forbidden(duplicate_message("queued", release, package, arch, triggers))
    outgoing = []
    for arch, params in fresh:
        body = dict(params, **{"submit-time": messages.submit_time(), "uuid": messages.new_uuid()})
        outgoing.append((arch, svc.queue_prefix + results.queue_name("upstream", release, arch), body))
    try:
        svc.publisher.publish(
            [(queue, messages.TestRequest(package, body).serialise()) for _a, queue, body in outgoing]
        )
    except amqp.BrokerError as err:
        log.error("webhook for %s PR %s not queued: %s", package, number, err)
        raise ServiceUnavailable(RABBIT_DOWN) from None
    shown = []
    for arch, queue, body in outgoing:
        log.info("queued GitHub request %s for %s PR %s on %s", body["uuid"], package, number, queue)
        record = dict(body, release=release, arch=arch, package=package, created=time.time())
        name = github.record_name(release, arch, package, testname, number, statuses_url)
        try:
            pending.write(name, record)
        except OSError as err:
            log.error("cannot write pending GitHub job %s: %s", name, err)
        status = {
            "state": "pending",
            "context": github.status_context(release, arch, testname),
            "description": "autopkgtest running",
            "target_url": f"{site_url()}/running#pkg-{package}",
        }
        svc.status_poster.post(package, statuses_url, status)
        visible = {k: v for k, v in body.items() if k not in ("submit-time", "uuid")}
        shown.append(dict(visible, release=release, arch=arch, package=package))
    return flask.render_template("submitted.html", requests=[{"params": p, "ppa": True} for p in shown])


def plain(text: str, status: int = 200):
    return flask.Response(text, status=status, mimetype="text/plain")
