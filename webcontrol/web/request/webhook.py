# SPDX-License-Identifier: GPL-3.0-or-later
"""GitHub pull-request webhooks on request.cgi.

Order: signature (before anything is parsed), event and action, payload
fields, then validation of the query parameters. Only the body is signed,
so the rest is held to it:

- statuses go to ``<[github] api_url>repos/<base repo>/statuses/<head sha>``
  and a payload naming any other ``statuses_url`` is refused;
- a delivery (``X-GitHub-Delivery``, else the body's sha256) is used for one
  query string only, and each pending-job record is created exclusively
  *before* publishing, so replays and concurrent copies queue nothing more.

An accepted delivery is published to ``debci-upstream-<rel>-<arch>``; its
``pending`` status is posted off the request path (GitHub waits 10 s at
most), and Launchpad gets 5 s in all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from typing import Any

import flask

from webcontrol import amqp, github, livestate, messages, results
from webcontrol.launchpad import LaunchpadUnavailable
from webcontrol.web.appbase import BadRequest, Forbidden, NotFound, ServiceUnavailable, site_url
from webcontrol.web.request.services import WEBHOOK_LAUNCHPAD_BUDGET_S, services
from webcontrol.web.request.validation import LAUNCHPAD_DOWN, RequestArgs, check_ppas, duplicate_message

log = logging.getLogger(__name__)

#: The value class lists literal characters only (a ``-`` between two of them would make a range).
ENV_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+=[a-zA-Z0-9.:~/ =_+,-]*")
FULL_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
BUILD_GIT_RE = re.compile(r"https?://[a-zA-Z0-9._/~+-]+(#[a-zA-Z0-9._/-]+)?")
TESTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
ACTIONS = ("opened", "synchronize", "reopened")
KNOWN_KEYS = ("release", "arch", "package", "ppa", "env", "build-git", "testname")
SWEEP_ONE_IN = 100
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
    full_name = _field(payload, "pull_request", "base", "repo", "full_name")
    head_sha = _field(payload, "pull_request", "head", "sha")
    build_git = args.first("build-git")
    if not build_git:
        clone_url = _field(payload, "pull_request", "base", "repo", "clone_url")
        build_git = f"{clone_url}#refs/pull/{number}/head"
    if isinstance(number, bool) or not (isinstance(number, int) or (isinstance(number, str) and number.isdigit())):
        raise BadRequest("Invalid field in JSON data: 'number'")
    if not isinstance(full_name, str) or not FULL_NAME_RE.fullmatch(full_name):
        raise BadRequest("Invalid field in JSON data: 'full_name'")
    if not isinstance(head_sha, str) or not SHA_RE.fullmatch(head_sha):
        raise BadRequest("Invalid field in JSON data: 'sha'")
    expected = github.status_url(services().config.get("github", "api_url"), full_name, head_sha)
    if statuses_url != expected:
        log.warning("webhook for %r names statuses_url %r, not %r", package, statuses_url, expected)
        raise BadRequest("Unexpected statuses_url")

    if services().publisher is None:
        raise ServiceUnavailable("demo: submissions are disabled")
    env = [item for value in args.getlist("env") for item in value.split(";") if item]
    env += [f"UPSTREAM_PULL_REQUEST={number}", f"GITHUB_STATUSES_URL={statuses_url}"]
    plans = _validate(args, package, env, build_git)
    delivery = request.headers.get("X-GitHub-Delivery") or hashlib.sha256(body).hexdigest()
    query = request.query_string.decode("utf-8", "replace")
    return _submit(plans, args.first("release") or "", package, number, statuses_url, delivery, query)


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
        check_ppas(svc.request_launchpad(WEBHOOK_LAUNCHPAD_BUDGET_S), ppas)
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


def _submit(
    plans: list[tuple[str, dict]], release: str, package: str, number, statuses_url: str, delivery: str, query: str
):
    svc = services()
    config = svc.config
    deliveries = github.Deliveries(config.pending_dir)
    if secrets.randbelow(SWEEP_ONE_IN) == 0:
        deliveries.sweep()
    try:
        first_query = deliveries.claim(delivery, query)
    except OSError as err:
        log.error("cannot record GitHub delivery %s: %s", delivery, err)
        raise ServiceUnavailable("Cannot record the delivery, please try again later.") from None
    if first_query is not None:
        if first_query != query:
            log.warning("delivery %s replayed with another query (%r, first %r)", delivery, query, first_query)
            raise Forbidden("Delivery already used for another request")
        log.info("redelivered webhook %s for %s PR %s: already queued", delivery, package, number)
        return plain("already queued")
    try:
        return _queue(plans, release, package, number, statuses_url, delivery, query)
    except BaseException:
        deliveries.release(delivery)
        raise


def _queue(plans, release: str, package: str, number, statuses_url: str, delivery: str, query: str):
    svc = services()
    config = svc.config
    pending = github.PendingJobs(config.pending_dir)
    testname = plans[0][1].get("testname")
    created = []
    try:
        for arch, params in plans:
            body = dict(params, **{"submit-time": messages.submit_time(), "uuid": messages.new_uuid()})
            status = {
                "state": "pending",
                "context": github.status_context(release, arch, testname),
                "description": "autopkgtest running",
                "target_url": f"{site_url()}/running#pkg-{package}",
            }
            record = dict(body, release=release, arch=arch, package=package, created=time.time())
            record.update({"delivery": delivery, "query": query, "pending-status": status})
            name = github.record_name(release, arch, package, testname, number, statuses_url)
            # Exclusive: of concurrent copies of one request, exactly one creates the record and publishes.
            if pending.create(name, record):
                created.append((arch, name, body, status))
    except OSError as err:
        for _arch, name, _body, _status in created:
            pending.remove(name)
        log.error("cannot write pending GitHub job for %s PR %s: %s", package, number, err)
        raise ServiceUnavailable("Cannot record the request, please try again later.") from None
    if not created:
        log.info("webhook for %s PR %s: already queued", package, number)
        return plain("already queued")
    try:
        _check_duplicates(created, release, package)
        outgoing = [
            (svc.queue_prefix + results.queue_name("upstream", release, arch), body) for arch, _n, body, _s in created
        ]
        svc.publisher.publish([(queue, messages.TestRequest(package, body).serialise()) for queue, body in outgoing])
    except BaseException as err:
        for _arch, name, _body, _status in created:
            pending.remove(name)
        if isinstance(err, amqp.BrokerError):
            log.error("webhook for %s PR %s not queued: %s", package, number, err)
            raise ServiceUnavailable(RABBIT_DOWN) from None
        raise
    shown = []
    for arch, name, body, status in created:
        log.info("queued GitHub request %s for %s PR %s (delivery %s)", body["uuid"], package, number, delivery)
        svc.outbox.send(name, package, statuses_url, status)
        visible = {k: v for k, v in body.items() if k not in ("submit-time", "uuid")}
        shown.append(dict(visible, release=release, arch=arch, package=package))
    return flask.render_template("submitted.html", requests=[{"params": p, "ppa": True} for p in shown])


def _check_duplicates(created, release: str, package: str) -> None:
    """Raises Forbidden when one of the requests is already running or queued."""
    config = services().config
    running = livestate.running_cache.get(config.get("web", "running_cache"))
    queued = livestate.queued_cache.get(config.get("web", "amqp_queue_cache"))
    for arch, _name, params, _status in created:
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


def plain(text: str, status: int = 200):
    return flask.Response(text, status=status, mimetype="text/plain")
