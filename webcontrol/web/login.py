# SPDX-License-Identifier: GPL-3.0-or-later
"""Ubuntu SSO login: an OpenID 2.0 consumer with python3-openid.

``checkid_setup`` with identifier select against ``[web] openid_provider``,
SReg 1.1 asking for ``nickname``, and Launchpad's teams extension asking
about ``allowed_requestors``.

Trust rules, each closing a way to log in as somebody else:

- The provider is pinned: its OP endpoint is discovered once per process
  from ``[web] openid_provider``; an answer naming another endpoint, or a
  claimed id on another host, is refused before the library sees it, so no
  ``/login`` query can make the server contact a host of the caller's
  choosing.
- A login is bound to the browser that started it: ``POST /login`` sets a
  short-lived signed ``HttpOnly`` state cookie holding a random nonce that
  also travels in ``return_to``; the answer must bring both.
- Anonymous visitors create no server-side state: the consumer state is
  rebuilt from the pinned endpoint, the cookie holds the rest. The
  library's file store under ``<state_dir>/openid`` only holds the one
  association with the pinned provider and the nonces of answers that
  provider signed (swept now and then), so a replayed answer is refused.
- Each login gets a random session id that ``/logout`` revokes.

The same blueprint factory serves request.cgi (``/login``, ``/logout``) and
private-results (``/private-results/login``, ``/private-results/logout``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
import urllib.parse

import flask
import itsdangerous
from openid import fetchers
from openid.consumer import consumer as oidconsumer
from openid.consumer import discover
from openid.extension import Extension
from openid.extensions import sreg
from openid.message import OPENID2_NS, Message
from openid.store.filestore import FileOpenIDStore

from webcontrol.web.appbase import (
    SESSION_LIFETIME,
    app_config,
    current_nick,
    error_response,
    revoked_sessions,
    safe_next,
    site_url,
)

log = logging.getLogger(__name__)

LP_TEAMS_NS = "http://ns.launchpad.net/2007/openid-teams"
#: Longer redirect URLs break some browsers; OpenID then uses an auto-submitting form.
MAX_REDIRECT_URL = 2000
CLEANUP_ONE_IN = 200
STATE_COOKIE = "openid_state"
STATE_MAX_AGE_S = 15 * 60
STATE_SALT = "openid-login-state"
NOT_VERIFIED = "Login failed: the login service's answer could not be verified."
NOT_THIS_BROWSER = "Login failed: this login was not started in this browser, or it took too long. Please log in again."
MALFORMED = "Login failed: the login service's answer is malformed."
PROVIDER_DOWN = "The login service is not responding, please try again later."

_endpoints: dict[str, discover.OpenIDServiceEndpoint] = {}
_endpoints_lock = threading.Lock()


class TeamsRequest(Extension):
    """Launchpad's teams extension: ``openid.lp.query_membership=a,b``."""

    ns_uri = LP_TEAMS_NS
    ns_alias = "lp"

    def __init__(self, teams: list[str]):
        super().__init__()
        self.teams = teams

    def getExtensionArgs(self) -> dict[str, str]:  # noqa: N802 (python-openid API)
        return {"query_membership": ",".join(self.teams)}


def teams_from_response(response) -> list[str]:
    """Teams in the *signed* ``openid.lp.is_member`` field (unsigned fields are ignored)."""
    args = response.getSignedNS(LP_TEAMS_NS)
    if not args:
        return []
    return [team for team in (args.get("is_member") or "").split(",") if team]


def provider_endpoint(provider: str) -> discover.OpenIDServiceEndpoint:
    """The provider's OP-identifier endpoint, discovered once per process. Raises DiscoveryFailure."""
    with _endpoints_lock:
        cached = _endpoints.get(provider)
    if cached is not None:
        return cached
    _claimed, services = discover.discover(provider)
    found = [service for service in services if service.isOPIdentifier()]
    if not found:
        raise discover.DiscoveryFailure(f"{provider} offers no OpenID 2.0 OP-identifier service", None)
    with _endpoints_lock:
        _endpoints.setdefault(provider, found[0])
        return _endpoints[provider]


def _same_host(url: str, reference: str) -> bool:
    one, two = urllib.parse.urlsplit(url), urllib.parse.urlsplit(reference)
    return one.scheme in ("http", "https") and (one.scheme, one.netloc) == (two.scheme, two.netloc)


def _store() -> FileOpenIDStore:
    store_dir = app_config().state_dir / "openid"
    store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = FileOpenIDStore(str(store_dir))
    # Expired nonces and associations pile up as files; sweep them now and then.
    if secrets.randbelow(CLEANUP_ONE_IN) == 0:
        try:
            store.cleanup()
        except OSError as err:
            log.warning("cannot clean the OpenID store %s: %s", store_dir, err)
    return store


def _state_serializer() -> itsdangerous.URLSafeTimedSerializer:
    return itsdangerous.URLSafeTimedSerializer(flask.current_app.secret_key, salt=STATE_SALT)


def make_blueprint(name: str, login_path: str, logout_path: str) -> flask.Blueprint:
    """A blueprint with the login and logout routes at the given full paths."""
    bp = flask.Blueprint(name, __name__)

    @bp.route(login_path, methods=["GET", "POST"])
    def login():
        if any(key.startswith("openid.") for key in flask.request.args):
            return _complete(login_path)
        target = flask.request.values.get("next")
        if flask.request.method == "GET" and not target:
            return flask.redirect("/")
        if current_nick():
            return flask.redirect(safe_next(target))
        return _begin(login_path, target or "/")

    @bp.route(logout_path, methods=["GET", "POST"])
    def logout():
        sid = flask.session.get("sid")
        if current_nick() and isinstance(sid, str):
            login_time = flask.session.get("login_time")
            start = login_time if isinstance(login_time, (int, float)) else time.time()
            try:
                revoked_sessions().revoke(sid, start + SESSION_LIFETIME.total_seconds() + 3600)
            except OSError as err:
                log.error("cannot revoke session of %s: %s", flask.session.get("nickname"), err)
            log.info("logout of %s", flask.session.get("nickname"))
        flask.session.clear()
        return flask.redirect(site_url() + "/")

    return bp


def _begin(login_path: str, target: str):
    config = app_config()
    provider = config.get("web", "openid_provider")
    try:
        endpoint = provider_endpoint(provider)
        auth = oidconsumer.Consumer({}, _store()).beginWithoutDiscovery(endpoint)
    except (discover.DiscoveryFailure, fetchers.HTTPFetchingError, OSError) as err:
        log.error("OpenID discovery of %s failed: %s", provider, err)
        return error_response(503, PROVIDER_DOWN)
    auth.addExtension(sreg.SRegRequest(required=["nickname"]))
    teams = list(config.get("web", "allowed_requestors") or [])
    if teams:
        auth.addExtension(TeamsRequest(teams))
    nonce = secrets.token_urlsafe(24)
    realm = site_url() + "/"
    return_to = site_url() + login_path + "?" + urllib.parse.urlencode({"next": target, "state": nonce})
    url = auth.redirectURL(realm, return_to)
    if len(url) <= MAX_REDIRECT_URL:
        response = flask.redirect(url)
    else:
        response = flask.Response(auth.htmlMarkup(realm, return_to), mimetype="text/html")
    response.set_cookie(
        STATE_COOKIE,
        _state_serializer().dumps({"nonce": nonce}),
        max_age=STATE_MAX_AGE_S,
        path=login_path,
        httponly=True,
        secure=flask.request.scheme == "https",
        # Lax: the provider sends the browser back with a top-level GET from its own site.
        samesite="Lax",
    )
    return response


def _refuse(status: int, message: str, login_path: str):
    response = error_response(status, message)
    response.delete_cookie(STATE_COOKIE, path=login_path)
    return response


def _complete(login_path: str):
    query = flask.request.args.to_dict(flat=True)
    provider = app_config().get("web", "openid_provider")
    # Parse first: a malformed answer is the caller's error (400), whoever sent it.
    try:
        message = Message.fromPostArgs(query)
        mode = message.getArg(OPENID2_NS, "mode")
        op_endpoint = message.getArg(OPENID2_NS, "op_endpoint")
        claimed_id = message.getArg(OPENID2_NS, "claimed_id")
        is_openid2 = message.isOpenID2()
    except Exception as err:  # python-openid raises many unrelated types for bad input
        log.info("malformed OpenID answer: %r", err)
        return _refuse(400, MALFORMED, login_path)
    if not is_openid2:
        return _refuse(400, MALFORMED, login_path)
    if not _state_matches(flask.request.args.get("state")):
        log.warning("OpenID answer without this browser's login state")
        return _refuse(403, NOT_THIS_BROWSER, login_path)
    if mode == "cancel":
        return _refuse(403, "Login cancelled.", login_path)
    try:
        endpoint = provider_endpoint(provider)
    except (discover.DiscoveryFailure, fetchers.HTTPFetchingError) as err:
        log.error("OpenID discovery of %s failed: %s", provider, err)
        return _refuse(503, PROVIDER_DOWN, login_path)
    if mode == "id_res" and (
        op_endpoint != endpoint.server_url or not (isinstance(claimed_id, str) and _same_host(claimed_id, provider))
    ):
        log.warning(
            "OpenID answer from another provider refused: op_endpoint %r claimed_id %r", op_endpoint, claimed_id
        )
        return _refuse(403, NOT_VERIFIED, login_path)
    current = site_url() + login_path + "?" + flask.request.query_string.decode("utf-8", "replace")
    # The consumer state of an identifier-select login is just the pinned endpoint.
    token_key = oidconsumer.Consumer.session_key_prefix + oidconsumer.Consumer._token
    consumer = oidconsumer.Consumer({token_key: endpoint}, _store())
    try:
        info = consumer.complete(query, current)
    except Exception as err:  # python-openid raises many unrelated types for bad input
        log.warning("OpenID completion failed: %r", err)
        return _refuse(400, MALFORMED, login_path)
    if info.status == oidconsumer.CANCEL:
        return _refuse(403, "Login cancelled.", login_path)
    if (
        info.status != oidconsumer.SUCCESS
        or info.endpoint.server_url != endpoint.server_url
        or not _same_host(info.identity_url or "", provider)
    ):
        log.warning("OpenID login refused (%s): %s", info.status, getattr(info, "message", ""))
        return _refuse(403, NOT_VERIFIED, login_path)
    nickname = (sreg.SRegResponse.fromSuccessResponse(info, signed_only=True) or {}).get("nickname")
    if not nickname:
        return _refuse(403, "Login failed: the login service did not give a nickname.", login_path)
    flask.session.clear()
    flask.session.permanent = True
    flask.session["sid"] = secrets.token_hex(16)
    flask.session["nickname"] = nickname
    flask.session["identity_url"] = info.identity_url
    flask.session["teams"] = teams_from_response(info)
    flask.session["login_time"] = int(time.time())
    log.info("login of %s (%s)", nickname, info.identity_url)
    response = flask.redirect(safe_next(flask.request.args.get("next")))
    response.delete_cookie(STATE_COOKIE, path=login_path)
    return response


def _state_matches(nonce: str | None) -> bool:
    cookie = flask.request.cookies.get(STATE_COOKIE)
    if not cookie or not nonce:
        return False
    try:
        state = _state_serializer().loads(cookie, max_age=STATE_MAX_AGE_S)
    except itsdangerous.BadData:
        return False
    expected = state.get("nonce") if isinstance(state, dict) else None
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), nonce.encode("utf-8", "replace"))
