# SPDX-License-Identifier: GPL-3.0-or-later
"""Flask setup shared by browse.cgi, request.cgi and private-results.

- Config is resolved on the first request (``AUTOPKGTEST_CLOUD_CONF`` from
  the WSGI environ, where Apache's ``SetEnv`` puts it), never at import.
- One secret key in ``<state_dir>/secret_key``, created once atomically and
  shared, so a login made through request.cgi is valid on browse pages.
- The ``session`` cookie: HttpOnly, SameSite=Lax, Secure over https, 31 days;
  it authenticates only while its session id has not been logged out.
- Every response says ``nosniff`` and refuses framing; HTML pages get a
  Content-Security-Policy that allows only the site's own scripts and styles.
- Errors: :class:`WebError` subclasses carry their HTTP status; one handler
  renders them; anything unexpected becomes a 500 page with an incident id
  (the traceback goes to the log only).
- :class:`FullPath` lets request.cgi and private-results route their whole
  paths however Apache mounts them.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import flask
import jinja2
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from webcontrol import config as configmod
from webcontrol.web import sessions

log = logging.getLogger(__name__)

SECRET_KEY_BYTES = 24
SECRET_KEY_WAIT_S = 5.0
SESSION_LIFETIME = datetime.timedelta(days=31)
#: Only the site's own scripts and styles; no framing. Images may be inline SVG/data (badges, charts).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
SHARED_TEMPLATES = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


# Errors ---------------------------------------------------------------------------


class WebError(Exception):
    """An error page with a status and a user-facing message (plain text, escaped when shown)."""

    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(WebError):
    status = 400


class Unauthorized(WebError):
    status = 401


class Forbidden(WebError):
    status = 403


class NotFound(WebError):
    status = 404


class MethodNotAllowed(WebError):
    status = 405


class TooManyRequests(WebError):
    status = 429


class ServiceUnavailable(WebError):
    status = 503


# Secret key -----------------------------------------------------------------------


def load_secret_key(state_dir: Path) -> bytes:
    """The shared session key, created on first use. Raises OSError.

    Created by writing a private temp file and hard-linking it into place:
    the link is atomic and fails if another process won, so nobody ever
    reads a partial key and a key is never regenerated.
    """
    path = Path(state_dir) / "secret_key"
    deadline = time.monotonic() + SECRET_KEY_WAIT_S
    while True:
        try:
            key = path.read_bytes()
            if len(key) >= SECRET_KEY_BYTES:
                return key
        except FileNotFoundError:
            _create_secret_key(path)
            continue
        if time.monotonic() > deadline:
            raise OSError(f"{path} is shorter than {SECRET_KEY_BYTES} bytes; remove it to make a new key")
        time.sleep(0.05)


def _create_secret_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret_key.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(SECRET_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


# Session cookie ---------------------------------------------------------------------


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, Secure whenever the request came over https."""

    def get_cookie_secure(self, app: flask.Flask) -> bool:
        return flask.request.scheme == "https" if flask.has_request_context() else True

    def open_session(self, app: flask.Flask, request: flask.Request):
        # Most requests carry no session cookie: they need no signing serializer (built anew per call).
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: flask.Flask, session, response: flask.Response) -> None:
        if not session and not session.modified:
            # No cookie to set or delete (most requests): only say when the answer depended on it.
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def current_nick() -> str | None:
    """The logged-in Launchpad nickname, if any: a session whose id was logged out is anonymous."""
    nick = flask.session.get("nickname")
    sid = flask.session.get("sid")
    if not (isinstance(nick, str) and nick and isinstance(sid, str) and sid):
        return None
    if "autopkgtest_sid_ok" not in flask.g:
        flask.g.autopkgtest_sid_ok = not revoked_sessions().is_revoked(sid)
    return nick if flask.g.autopkgtest_sid_ok else None


def session_token_subject() -> str | None:
    """What a form token is bound to for this request's login (its session id), or None."""
    sid = flask.session.get("sid")
    return f"session:{sid}" if current_nick() and isinstance(sid, str) else None


def form_token(subject: str) -> str:
    """The form token for ``subject`` (a session or an API-key user) under the shared secret key."""
    return sessions.form_token(flask.current_app.secret_key, subject)


def revoked_sessions() -> sessions.RevokedSessions:
    return flask.current_app.extensions["autopkgtest-revoked-sessions"]


def site_url() -> str:
    """``<site>`` without trailing slash: ``[web] site_url``, else from the request."""
    configured = app_config().get("web", "site_url")
    if configured:
        return configured.rstrip("/")
    return flask.request.host_url.rstrip("/")


def safe_next(target: str | None) -> str:
    """``target`` if it is a relative path or a URL on this site, else ``/`` (docs/formats.rst, Login)."""
    if not target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parsed = urllib.parse.urlsplit(target)
    if not parsed.scheme and not parsed.netloc:
        if target.startswith("/") and not target.startswith("//") and "\\" not in target:
            return target
        return "/"
    site = urllib.parse.urlsplit(site_url())
    if (parsed.scheme, parsed.netloc) == (site.scheme, site.netloc):
        return target
    return "/"


def app_config() -> configmod.Config:
    return flask.current_app.config["AUTOPKGTEST"]


# App factory support -----------------------------------------------------------------


def create_flask_app(name: str, config: configmod.Config, template_folder: str | Path | None = None) -> flask.Flask:
    """A Flask app with the shared settings; each web app adds its blueprints."""
    app = flask.Flask(name, template_folder=None, static_folder=None)
    loaders = [jinja2.FileSystemLoader(str(template_folder))] if template_folder else []
    loaders.append(jinja2.FileSystemLoader(str(SHARED_TEMPLATES)))
    app.jinja_loader = jinja2.ChoiceLoader(loaders)
    app.config["AUTOPKGTEST"] = config
    app.config.update(
        SESSION_COOKIE_NAME="session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
    )
    app.session_interface = SessionInterface()
    app.secret_key = load_secret_key(config.state_dir)
    app.extensions["autopkgtest-revoked-sessions"] = sessions.RevokedSessions(config.state_dir / sessions.REVOKED_FILE)
    app.after_request(_security_headers)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=0)
    app.jinja_env.globals.update(current_nick=current_nick, site_url=site_url)
    app.register_error_handler(WebError, _render_web_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)
    return app


def _security_headers(response: flask.Response) -> flask.Response:
    """Each header unless the view set it; one pass over the headers, not one lookup per header (every request)."""
    present = {key.lower() for key, _value in response.headers.items()}
    headers = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY")]
    if response.mimetype == "text/html":
        headers.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
    for key, value in headers:
        if key.lower() not in present:
            response.headers.add(key, value)
    return response


def wants_json() -> bool:
    return flask.request.path.startswith("/api/") or flask.request.path.endswith(".json")


def error_response(status: int, message: str, incident: str | None = None, headers: dict | None = None):
    if wants_json():
        body = {"error": message, "status": status}
        if incident:
            body["incident"] = incident
        response = flask.jsonify(body)
    else:
        response = flask.make_response(
            flask.render_template("error.html", status=status, message=message, incident=incident)
        )
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _render_web_error(err: WebError):
    return error_response(err.status, err.message, headers=err.headers)


def _render_http_exception(err: HTTPException):
    headers = {}
    if err.code == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    if err.code and 300 <= err.code < 400:
        return err.get_response()
    return error_response(err.code or 500, err.description or err.name, headers=headers)


def _render_unexpected(err: Exception):
    incident = secrets.token_hex(6)
    log.exception("incident %s: unexpected error on %s %s", incident, flask.request.method, flask.request.path)
    return error_response(500, "A server error has occurred; please try again later.", incident=incident)


class LazyApplication:
    """The WSGI ``application`` of a ``.cgi`` file: builds the app on the first request.

    The config path comes from the WSGI environ (Apache ``SetEnv``), then
    the process environment, then the search path. A broken config gives a
    plain 500 and a log line, never a traceback to the client.
    """

    def __init__(self, factory: Callable[[configmod.Config], flask.Flask]):
        self.factory = factory
        self.app: flask.Flask | None = None
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self.app is None:
            with self.lock:
                if self.app is None:
                    try:
                        self.app = self.factory(configmod.load(environ=environ))
                    except (configmod.ConfigError, OSError) as err:
                        log.error("cannot start web app: %s", err)
                        start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                        return [b"Error 500: the service is misconfigured; details are in the server log.\n"]
        return self.app(environ, start_response)


class FullPath:
    """Move ``SCRIPT_NAME`` into ``PATH_INFO`` so routes always see the whole path.

    Apache may mount an app as ``WSGIScriptAlias /request.cgi …`` (path split)
    or at ``/`` (whole path in PATH_INFO); links are built from ``site_url``.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        script = environ.get("SCRIPT_NAME", "")
        if script and script != "/":
            environ = dict(environ)
            environ["PATH_INFO"] = script.rstrip("/") + environ.get("PATH_INFO", "")
            environ["SCRIPT_NAME"] = ""
        return self.app(environ, start_response)
