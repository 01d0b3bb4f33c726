# SPDX-License-Identifier: GPL-3.0-or-later
"""``/retry`` and ``/api/v1/retry`` (request.cgi): retry many tests in one POST.

The trigger page (all regressions preselected) and a test's history page
post a selection of items, each ``release arch package trigger…``, plus
optional extra triggers for every item and ``all-proposed=1``. Scripts post
the same as JSON with an API key::

    {"items": [{"release": "noble", "arch": "amd64", "package": "gtk3",
                "triggers": ["glib2.0/2.82.0-1"]}],
     "triggers": ["gtk3/1.0-2"], "all-proposed": true}

Every item goes through exactly the checks of a single request.cgi request
(validation.check_syntax, check_local, check_launchpad, then the rate
limit) and gets its own outcome: ``queued`` (with its uuid), ``skipped``
(the same test is already queued or running, or repeats an earlier item of
this POST) or ``refused`` with the reason and status a single request would
have got. The accepted items are published together with publisher
confirms; if the broker fails, all of them are refused with the same reason
as a single request, and nothing is reported as queued.

Trust rules are those of request.cgi: a browser POST authenticated by
cookie that arrives cross-site without this session's form token gets a
confirmation page listing the items (nothing is queued) whose one button
posts them again with the token; Bearer API keys and requests without
``Sec-Fetch-Site`` (scripts) are not asked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import flask

from webcontrol import amqp, messages, results
from webcontrol.web.appbase import (
    BadRequest,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    WebError,
    error_response,
    form_token,
    site_url,
)
from webcontrol.web.request.auth import Identity, form_token_matches, identify
from webcontrol.web.request.services import services
from webcontrol.web.request.validation import (
    LAUNCHPAD_DOWN,
    RequestArgs,
    check_launchpad,
    check_local,
    check_syntax,
    duplicate_message,
)
from webcontrol.web.request.views import BAD_TOKEN, DEMO_DISABLED, RABBIT_DOWN, full_url, needs_confirmation

log = logging.getLogger(__name__)

bp = flask.Blueprint("retry", __name__)

MAX_ITEMS = 100
TOKEN_FIELD = "csrf_token"


@dataclass
class Item:
    release: str
    arch: str
    package: str
    triggers: list[str]
    outcome: str = "pending"  # queued | skipped | refused
    reason: str = ""
    status: int = 200
    uuid: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    in_team: bool = False  # exempt from the rate limit

    def view(self) -> dict:
        out = {
            "release": self.release,
            "arch": self.arch,
            "package": self.package,
            "triggers": self.triggers,
            "outcome": self.outcome,
            "reason": self.reason,
            "status": self.status,
            "uuid": self.uuid,
        }
        if self.uuid:
            out["result_url"] = f"{site_url()}/run/{self.uuid}"
            out["history_url"] = f"{site_url()}/packages/{self.package}/{self.release}/{self.arch}"
        return out


def parse_form_item(value: str) -> Item:
    """``release arch package trigger…`` as the pages post it. Raises BadRequest."""
    words = value.split()
    if len(words) < 3:
        raise BadRequest(f"Invalid item {value!r}: expected 'release arch package trigger...'")
    return Item(words[0], words[1], words[2], words[3:])


def parse_json(body: Any) -> tuple[list[Item], list[str], bool]:
    """Items, extra triggers and all-proposed from a JSON body. Raises BadRequest."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise BadRequest('The body must be a JSON object with a list "items"')
    _check_count(body["items"])
    items = []
    for entry in body["items"]:
        fields = [entry.get(k) if isinstance(entry, dict) else None for k in ("release", "arch", "package")]
        triggers = entry.get("triggers", []) if isinstance(entry, dict) else None
        if not all(isinstance(f, str) for f in fields) or not isinstance(triggers, list):
            raise BadRequest("Each item needs release, arch and package strings and a list of triggers")
        items.append(Item(*fields, [str(t) for t in triggers]))
    extra = body.get("triggers", [])
    if not isinstance(extra, list):
        raise BadRequest('"triggers" must be a list')
    proposed = body.get("all-proposed", False)
    if proposed not in (True, False, "1", 1, None):
        raise BadRequest("Invalid all-proposed value")
    return items, [str(t) for t in extra], proposed in (True, "1", 1)


def _form_request() -> tuple[list[Item], list[str], bool]:
    form = flask.request.form if flask.request.method == "POST" else flask.request.args
    for key in form.keys():
        if key not in ("item", "trigger", "all-proposed", TOKEN_FIELD):
            raise BadRequest(f"Invalid argument {key}")
    proposed = form.getlist("all-proposed")
    if proposed not in ([], ["1"]):
        raise BadRequest("Invalid all-proposed value")
    extra = [t for value in form.getlist("trigger") for t in value.split()]
    _check_count(form.getlist("item"))
    return [parse_form_item(v) for v in form.getlist("item")], extra, bool(proposed)


def _has_token(identity: Identity) -> bool:
    """Whether this session's form token came with the POST. Raises Forbidden for a wrong one."""
    tokens = flask.request.form.getlist(TOKEN_FIELD) if flask.request.method == "POST" else []
    if not tokens:
        return False
    if len(tokens) != 1 or not form_token_matches(identity.token_subject, tokens[0]):
        raise Forbidden(BAD_TOKEN)
    return True


def _duplicate_key(item: Item, params: dict) -> tuple:
    return (item.release, item.arch, item.package, tuple(sorted(params["triggers"])), "all-proposed" in params)


def process(items: list[Item], extra: list[str], all_proposed: bool, identity: Identity) -> list[Item]:
    """Validate each item as request.cgi validates one request, then publish the accepted ones together."""
    svc = services()
    now = time.time()
    site = site_url()
    accepted: list[Item] = []
    seen: set[tuple] = set()
    launchpad_down = False
    conn = svc.open_db()
    try:
        for item in items:
            pairs = [("release", item.release), ("arch", item.arch), ("package", item.package)]
            pairs += [("trigger", t) for t in item.triggers + extra]
            pairs += [("all-proposed", "1")] if all_proposed else []
            try:
                plan = check_syntax(RequestArgs(pairs), site, svc.max_triggers)
                if _duplicate_key(item, plan.params) in seen:
                    item.outcome, item.reason = "skipped", "Repeats an earlier item of this request"
                    continue
                seen.add(_duplicate_key(item, plan.params))
                # Each item is one request: its own environment and Launchpad budget.
                env = svc.environment(conn, site)
                check_local(plan, env)
                if svc.hidden.is_queued(
                    env.queued, plan.queue_context, plan.package, plan.release, item.arch, plan.params
                ):
                    raise Forbidden(
                        duplicate_message("queued", plan.release, plan.package, item.arch, plan.params["triggers"])
                    )
                if launchpad_down:  # one timeout is enough: do not wait again for every item
                    raise ServiceUnavailable(LAUNCHPAD_DOWN)
                in_team = check_launchpad(plan, env, identity.nick, identity.teams)
                # Checked and recorded in one step, as for a single request.
                if not in_team and svc.rate_limiter.reserve(identity.nick, 1, now):
                    raise TooManyRequests(
                        f"You, {identity.nick}, have requested too many tests. Please try again later."
                    )
            except WebError as err:
                # The same test already queued or running is not an error of this retry: it is skipped.
                duplicate = isinstance(err, Forbidden) and err.message.startswith("Test already")
                launchpad_down = launchpad_down or err.message == LAUNCHPAD_DOWN
                item.outcome = "skipped" if duplicate else "refused"
                item.reason, item.status = err.message, 200 if duplicate else err.status
                continue
            item.triggers, item.params, item.in_team = plan.params["triggers"], plan.params, in_team
            accepted.append(item)
    finally:
        conn.close()
    _publish(accepted, identity, now)
    return items


def _publish(accepted: list[Item], identity: Identity, now: float) -> None:
    svc = services()
    stamp = messages.submit_time()
    outgoing = []
    for item in accepted:
        params = dict(item.params, requester=identity.nick, **{"submit-time": stamp, "uuid": messages.new_uuid()})
        queue = svc.queue_prefix + results.queue_name("ubuntu", item.release, item.arch)
        outgoing.append((item, queue, messages.TestRequest(item.package, params)))
    if not outgoing:
        return
    try:
        svc.publisher.publish([(queue, request.serialise()) for _item, queue, request in outgoing])
    except amqp.BrokerError as err:
        log.error("retry by %s: %d requests not queued: %s", identity.nick, len(outgoing), err)
        counted = sum(1 for item in accepted if not item.in_team)
        if counted:
            svc.rate_limiter.cancel(identity.nick, counted, now)
        for item, _queue, _request in outgoing:
            item.outcome, item.reason, item.status = "refused", RABBIT_DOWN, 503
        return
    for item, queue, request in outgoing:
        item.outcome, item.uuid = "queued", request.params["uuid"]
        svc.hidden.remember(item.package, item.release, item.arch, item.params)
        log.info("retry: queued %s for %s on %s (requester %s)", item.uuid, item.package, queue, identity.nick)


@bp.errorhandler(WebError)
def _error(err: WebError):
    """Errors of the JSON endpoint are JSON; the form's are request.cgi's error page."""
    if flask.request.path.startswith("/api/"):
        return error_response(err.status, err.message, headers=err.headers)
    from webcontrol.web.request import render_invalid

    return render_invalid(err)


def _summary(items: list[Item]) -> dict:
    counts = {name: sum(1 for i in items if i.outcome == name) for name in ("queued", "skipped", "refused")}
    return {**counts, "items": [i.view() for i in items]}


def _start(as_json: bool) -> Identity | flask.Response:
    svc = services()
    identity = identify(svc.api_keys, svc.config.get("web", "team_cache_seconds"), time.time())
    if identity is None:
        if as_json:
            raise Forbidden("Log in or send an API key (Authorization: Bearer <lpuser>:<key>) to retry tests")
        return flask.make_response(flask.render_template("login_required.html", next=full_url()), 403)
    if svc.publisher is None:
        raise ServiceUnavailable(DEMO_DISABLED)
    return identity


def _check_count(items: list) -> None:
    if not items:
        raise BadRequest("Nothing to retry: select at least one test")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"Too many tests in one retry (at most {MAX_ITEMS})")


@bp.route("/retry", methods=["GET", "POST"])
def retry_page():
    identity = _start(as_json=False)
    if isinstance(identity, flask.Response):
        return identity
    items, extra, all_proposed = _form_request()
    if flask.request.method == "GET" or needs_confirmation(identity, _has_token(identity)):
        # A link (or another site's form) only ever gets the list and one confirming button.
        token = form_token(identity.token_subject) if identity.token_subject else ""
        return flask.render_template(
            "retry_confirm.html", items=items, extra=extra, all_proposed=all_proposed, token=token
        )
    done = process(items, extra, all_proposed, identity)
    return flask.render_template("retried.html", **_summary(done))


@bp.route("/api/v1/retry", methods=["POST"])
def retry_json():
    identity = _start(as_json=True)
    if not flask.request.is_json:
        raise BadRequest("Send the items as JSON (Content-Type: application/json)")
    if identity.by_cookie and flask.request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden("Cross-site requests must use the /retry form")
    items, extra, all_proposed = parse_json(flask.request.get_json(silent=True))
    return flask.jsonify(_summary(process(items, extra, all_proposed, identity)))
