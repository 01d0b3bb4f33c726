# SPDX-License-Identifier: GPL-3.0-or-later
"""The request.cgi endpoint: ``/request.cgi``, ``/request.cgi/`` and ``/github/webhook``.

A browser follows links and posts forms of other sites with its cookies.
So a request that arrives ``Sec-Fetch-Site: cross-site`` and is
authenticated by a cookie is not queued: it gets a page showing what would
be queued and one button that posts it back with a form token bound to the
login. Same-site links (britney's excuses page is another host of the same
site), scripts (no ``Sec-Fetch-Site``), ``Authorization: Bearer`` keys and
webhooks are not affected.
"""

from __future__ import annotations

import logging
import time

import flask

from webcontrol import amqp, messages, results
from webcontrol.web.appbase import (
    Forbidden,
    MethodNotAllowed,
    ServiceUnavailable,
    TooManyRequests,
    form_token,
    site_url,
)
from webcontrol.web.request import webhook
from webcontrol.web.request.auth import Identity, form_token_matches, identify
from webcontrol.web.request.services import services
from webcontrol.web.request.validation import (
    RequestArgs,
    check_launchpad,
    check_local,
    check_syntax,
    duplicate_message,
)

log = logging.getLogger(__name__)

bp = flask.Blueprint("request", __name__)

ALLOWED_METHODS = "GET, POST"
RABBIT_DOWN = "RabbitMQ is unresponsive, please try again later."
DEMO_DISABLED = "demo: submissions are disabled"
TOKEN_FIELD = "csrf_token"
BAD_TOKEN = "The form has expired or belongs to another login; please submit it again."


def refuse_other_methods():
    """HEAD (and anything but GET/POST) must never run the handler (docs/formats.rst, Parameters)."""
    if flask.request.method not in ("GET", "POST"):
        raise MethodNotAllowed(f"Method {flask.request.method} is not allowed", headers={"Allow": ALLOWED_METHODS})


def request_args() -> RequestArgs:
    request = flask.request
    items = list(request.args.items(multi=True))
    if request.method == "POST" and not webhook.is_webhook(request):
        items += list(request.form.items(multi=True))
    return RequestArgs(items)


def confirmed(args: RequestArgs, identity: Identity) -> tuple[RequestArgs, bool]:
    """The arguments without the form token, and whether a valid token came. Raises Forbidden."""
    tokens = args.getlist(TOKEN_FIELD)
    rest = RequestArgs([(k, v) for k, v in args.items if k != TOKEN_FIELD])
    if not tokens:
        return rest, False
    if len(tokens) != 1 or not form_token_matches(identity.token_subject, tokens[0]):
        raise Forbidden(BAD_TOKEN)
    return rest, True


def needs_confirmation(identity: Identity, has_token: bool) -> bool:
    return (
        services().config.get("web", "confirm_cross_site")
        and flask.request.headers.get("Sec-Fetch-Site") == "cross-site"
        and identity.by_cookie
        and not has_token
    )


def confirmation_page(args: RequestArgs, identity: Identity):
    log.info("cross-site request by %s shown for confirmation", identity.nick)
    token = form_token(identity.token_subject) if identity.token_subject else ""
    return flask.render_template("confirm.html", items=args.items, token=token, nick=identity.nick)


def full_url() -> str:
    query = flask.request.query_string.decode("utf-8", "replace")
    return site_url() + flask.request.path + (f"?{query}" if query else "")


@bp.route("/request.cgi", methods=["GET", "POST"])
@bp.route("/request.cgi/", methods=["GET", "POST"])
@bp.route("/github/webhook", methods=["GET", "POST"])
def submit():
    args = request_args()
    if webhook.is_webhook(flask.request):
        return webhook.handle(args)
    svc = services()
    now = time.time()
    identity = identify(svc.api_keys, svc.config.get("web", "team_cache_seconds"), now)
    if identity is None:
        response = flask.make_response(flask.render_template("login_required.html", next=full_url()), 403)
        return response
    if flask.request.query_string == b"/login":
        return flask.redirect("/")
    args, has_token = confirmed(args, identity)
    if needs_confirmation(identity, has_token):
        return confirmation_page(args, identity)
    if svc.publisher is None:
        # The demo runs without a broker (and without Launchpad): say so before validating.
        raise ServiceUnavailable(DEMO_DISABLED)
    plan = check_syntax(args, site_url(), svc.max_triggers)
    conn = svc.open_db()
    try:
        env = svc.environment(conn, site_url())
        check_local(plan, env)
        for arch in plan.arches:
            if svc.hidden.is_queued(env.queued, plan.queue_context, plan.package, plan.release, arch, plan.params):
                raise Forbidden(duplicate_message("queued", plan.release, plan.package, arch, plan.params["triggers"]))
        in_team = check_launchpad(plan, env, identity.nick, identity.teams)
    finally:
        conn.close()
    if not in_team:
        # Checked and recorded in one step: concurrent requests cannot all pass.
        wait = svc.rate_limiter.reserve(identity.nick, len(plan.arches), now)
        if wait:
            raise TooManyRequests(
                f"You, {identity.nick}, have requested too many tests. Please try again later.",
                headers={"Retry-After": str(wait)},
            )
    stamp = messages.submit_time()
    context = plan.queue_context
    outgoing = []
    for arch in plan.arches:
        params = dict(plan.params, requester=identity.nick, **{"submit-time": stamp, "uuid": messages.new_uuid()})
        queue = svc.queue_prefix + results.queue_name(context, plan.release, arch)
        outgoing.append((arch, queue, messages.TestRequest(plan.package, params)))
    try:
        svc.publisher.publish([(queue, req.serialise()) for _arch, queue, req in outgoing])
    except amqp.BrokerError as err:
        log.error("request by %s for %s not queued: %s", identity.nick, plan.package, err)
        if not in_team:
            svc.rate_limiter.cancel(identity.nick, len(plan.arches), now)
        raise ServiceUnavailable(RABBIT_DOWN) from None
    for arch in plan.arches:
        svc.hidden.remember(plan.package, plan.release, arch, plan.params)
    shown = []
    for arch, queue, req in outgoing:
        log.info("queued %s for %s on %s (requester %s)", req.params["uuid"], plan.package, queue, identity.nick)
        visible = {k: v for k, v in req.params.items() if k not in ("submit-time", "uuid")}
        visible.update(release=plan.release, arch=arch, package=plan.package)
        entry = {"params": visible, "ppa": context == "ppa", "uuid": req.params["uuid"]}
        entry["history"] = f"{site_url()}/packages/{plan.package}/{plan.release}/{arch}"
        entry["result_url"] = f"{site_url()}/run/{req.params['uuid']}"
        shown.append(entry)
    return flask.render_template("submitted.html", requests=shown)
