# SPDX-License-Identifier: GPL-3.0-or-later
"""Who is asking: the login cookie, or an API key (docs/formats.rst, Login).

API keys come as the cookie ``X-Api-Key=<lpuser>:<key>`` (what existing
scripts send) or the header ``Authorization: Bearer <lpuser>:<key>``. A key
that is present but wrong is a 401, never a fall-back to anonymous.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field

import flask

from webcontrol.filecache import FileCache
from webcontrol.web import sessions
from webcontrol.web.appbase import Unauthorized, current_nick, session_token_subject

log = logging.getLogger(__name__)

AUTH_FAILURE = "Authorization failure"


@dataclass
class Identity:
    nick: str
    teams: list[str] = field(default_factory=list)  # from the OpenID teams extension, while fresh
    #: "session" (login cookie), "api-key-cookie" or "bearer": a browser sends cookies on its own.
    via: str = "session"
    #: What the form token is bound to: the login's session id, or the API-key user.
    token_subject: str = ""

    @property
    def by_cookie(self) -> bool:
        return self.via != "bearer"


def _load_api_keys(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        log.error("cannot read API keys %s: %s", path, err)
        data = {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class ApiKeys:
    """The ``[web] api_keys`` JSON file, re-read when it changes."""

    def __init__(self, path: str | None):
        self.path = path
        self._cache: FileCache[dict[str, str]] = FileCache(_load_api_keys, missing={})

    def keys(self) -> dict[str, str]:
        return self._cache.get(self.path)

    def check(self, credential: str) -> str:
        """The user of a ``<lpuser>:<key>`` credential. Raises Unauthorized."""
        user, sep, key = credential.partition(":")
        expected = self.keys().get(user, "") if sep else ""
        # Compare even for unknown users so timing tells nothing about who has a key.
        ok = hmac.compare_digest(key.encode("utf-8"), (expected or "\0" * 32).encode("utf-8"))
        if not (ok and expected and user):
            log.warning("API key refused for %r", user)
            raise Unauthorized(AUTH_FAILURE)
        return user


def api_credential() -> tuple[str, str] | None:
    """``(credential, "bearer" | "api-key-cookie")``, or None."""
    header = flask.request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), "bearer"
    cookie = flask.request.cookies.get("X-Api-Key")
    return (cookie, "api-key-cookie") if cookie is not None else None


def form_token_matches(subject: str, token: str) -> bool:
    return bool(subject) and sessions.token_matches(flask.current_app.secret_key, subject, token)


def identify(api_keys: ApiKeys, team_lifetime_s: int, now: float) -> Identity | None:
    """The requester, or None when anonymous. Raises Unauthorized for a wrong API key."""
    found = api_credential()
    if found is not None:
        user = api_keys.check(found[0])
        return Identity(user, via=found[1], token_subject=f"api-key:{user}")
    nick = current_nick()
    if not nick:
        return None
    teams = flask.session.get("teams") or []
    login_time = flask.session.get("login_time") or 0
    fresh = isinstance(login_time, (int, float)) and 0 <= now - login_time < team_lifetime_s
    teams = [t for t in teams if isinstance(t, str)] if fresh else []
    return Identity(nick, teams, via="session", token_subject=session_token_subject() or "")
