# SPDX-License-Identifier: GPL-3.0-or-later
"""Ubuntu SSO login: an OpenID 2.0 consumer with python3-openid (CONTRACT §8).

``checkid_setup`` with identifier select against ``[web] openid_provider``,
SReg 1.1 asking for ``nickname``, and Launchpad's teams extension asking
about ``allowed_requestors``. The consumer's per-login state holds objects
that do not fit a JSON cookie, so it lives server-side under
``<state_dir>/openid/consumer-sessions/<random id>`` (the cookie only
carries the id); associations and nonces use the library's file store in
``<state_dir>/openid`` so that a replayed response is refused.

The same blueprint factory serves request.cgi (``/login``, ``/logout``) and
private-results (``/private-results/login``, ``/private-results/logout``).
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import time
import urllib.parse
from pathlib import Path

import flask
from openid.consumer import consumer as oidconsumer
from openid.consumer.discover import DiscoveryFailure
from openid.extension import Extension
from openid.extensions import sreg
from openid.store.filestore import FileOpenIDStore

from webcontrol.web.appbase import app_config, current_nick, error_response, safe_next, site_url

log = logging.getLogger(__name__)

LP_TEAMS_NS = "http://ns.launchpad.net/2007/openid-teams"
SESSION_MAX_AGE_S = 3600
#: Longer redirect URLs break some browsers; OpenID then uses an auto-submitting form.
MAX_REDIRECT_URL = 2000
CLEANUP_ONE_IN = 200


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


class ConsumerSessions:
    """Server-side python-openid consumer sessions, one pickle file per login attempt."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, sid: str) -> Path:
        if not sid or not all(c in "0123456789abcdef" for c in sid):
            raise ValueError("bad session id")
        return self.directory / sid

    def load(self, sid: str | None) -> dict:
        if not sid:
            return {}
        try:
            with open(self._path(sid), "rb") as handle:
                data = pickle.load(handle)
        except (OSError, ValueError, pickle.UnpicklingError, EOFError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, sid: str, data: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.directory / f".{sid}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            pickle.dump(data, handle)
        os.replace(tmp, self._path(sid))
        self._prune()

    def delete(self, sid: str | None) -> None:
        if sid:
            try:
                self._path(sid).unlink()
            except (OSError, ValueError):
                pass

    def _prune(self) -> None:
        cutoff = time.time() - SESSION_MAX_AGE_S
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass


def _state_dir() -> Path:
    return app_config().state_dir / "openid"


def make_blueprint(name: str, login_path: str, logout_path: str) -> flask.Blueprint:
    """A blueprint with the login and logout routes at the given full paths."""
    bp = flask.Blueprint(name, __name__)

    @bp.route(login_path, methods=["GET", "POST"])
    def login():
        if "openid.mode" in flask.request.args:
            return _complete(login_path)
        target = flask.request.values.get("next")
        if flask.request.method == "GET" and not target:
            return flask.redirect("/")
        if current_nick():
            return flask.redirect(safe_next(target))
        return _begin(login_path, target or "/")

    @bp.route(logout_path, methods=["GET", "POST"])
    def logout():
        flask.session.clear()
        return flask.redirect(site_url() + "/")

    return bp


def _consumer(session_data: dict) -> oidconsumer.Consumer:
    store_dir = _state_dir()
    store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = FileOpenIDStore(str(store_dir))
    # Expired nonces and associations pile up as files; sweep them now and then.
    if secrets.randbelow(CLEANUP_ONE_IN) == 0:
        try:
            store.cleanup()
        except OSError as err:
            log.warning("cannot clean the OpenID store %s: %s", store_dir, err)
    return oidconsumer.Consumer(session_data, store)


def _begin(login_path: str, target: str):
    config = app_config()
    sid = secrets.token_hex(16)
    data: dict = {}
    consumer = _consumer(data)
    provider = config.get("web", "openid_provider")
    try:
        auth = consumer.begin(provider)
    except DiscoveryFailure as err:
        log.error("OpenID discovery of %s failed: %s", provider, err)
        return error_response(503, "The login service is not responding, please try again later.")
    auth.addExtension(sreg.SRegRequest(required=["nickname"]))
    teams = list(config.get("web", "allowed_requestors") or [])
    if teams:
        auth.addExtension(TeamsRequest(teams))
    sessions = ConsumerSessions(_state_dir() / "consumer-sessions")
    sessions.save(sid, data)
    flask.session["openid_sid"] = sid
    realm = site_url() + "/"
    return_to = site_url() + login_path + "?" + urllib.parse.urlencode({"next": target})
    url = auth.redirectURL(realm, return_to)
    if len(url) <= MAX_REDIRECT_URL:
        return flask.redirect(url)
    return flask.Response(auth.htmlMarkup(realm, return_to), mimetype="text/html")


def _complete(login_path: str):
    sessions = ConsumerSessions(_state_dir() / "consumer-sessions")
    sid = flask.session.pop("openid_sid", None)
    data = sessions.load(sid)
    sessions.delete(sid)
    query = flask.request.args.to_dict(flat=True)
    current = site_url() + login_path + "?" + flask.request.query_string.decode("utf-8", "replace")
    try:
        info = _consumer(data).complete(query, current)
    except (DiscoveryFailure, OSError) as err:
        log.warning("OpenID completion failed: %s", err)
        return error_response(503, "The login service is not responding, please try again later.")
    if info.status == oidconsumer.CANCEL:
        return error_response(403, "Login cancelled.")
    if info.status != oidconsumer.SUCCESS:
        log.warning("OpenID login refused (%s): %s", info.status, getattr(info, "message", ""))
        return error_response(403, "Login failed: the login service's answer could not be verified.")
    nickname = (sreg.SRegResponse.fromSuccessResponse(info, signed_only=True) or {}).get("nickname")
    if not nickname:
        return error_response(403, "Login failed: the login service did not give a nickname.")
    flask.session.clear()
    flask.session.permanent = True
    flask.session["nickname"] = nickname
    flask.session["identity_url"] = info.identity_url
    flask.session["teams"] = teams_from_response(info)
    flask.session["login_time"] = int(time.time())
    log.info("login of %s (%s)", nickname, info.identity_url)
    return flask.redirect(safe_next(flask.request.args.get("next")))
