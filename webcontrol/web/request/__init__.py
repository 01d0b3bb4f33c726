# SPDX-License-Identifier: GPL-3.0-or-later
"""request.cgi: authenticated, validated test requests and GitHub webhooks (docs/formats.rst, Login, request.cgi and GitHub webhook).

``create_app(config)`` is the factory; ``webcontrol/request.cgi`` wraps it
in a LazyApplication. The app routes its full paths (``/request.cgi``,
``/request.cgi/``, ``/github/webhook``, ``/login``, ``/logout``) and works
both mounted at ``/`` and with the path split into ``SCRIPT_NAME``.
"""

from __future__ import annotations

from pathlib import Path

import flask
import markupsafe

from webcontrol import config as configmod
from webcontrol import launchpad_limits
from webcontrol.web import login, promstats
from webcontrol.web.appbase import FullPath, WebError, create_flask_app

# Imported with the package, not by create_app(): the shipped Apache site loads request.cgi when a
# daemon starts, so these imports are done before the daemon's first request.
from webcontrol.web.request import retry
from webcontrol.web.request.services import RequestServices
from webcontrol.web.request.views import bp, refuse_other_methods

TEMPLATES = Path(__file__).parent / "templates"


def render_invalid(err: WebError):
    """``<p>You submitted an invalid request: <first line></p>`` + one <p> per further line (docs/formats.rst, Replies)."""
    lines = err.message.split("\n")
    response = flask.make_response(flask.render_template("invalid.html", first=lines[0], rest=lines[1:]))
    response.status_code = err.status
    for key, value in err.headers.items():
        response.headers[key] = value
    return response


def element_text(value) -> markupsafe.Markup:
    """A value as element content: lists Python-style, ``&<>`` escaped once.

    Quotes need no escaping outside attributes, and clients compare the
    ``<dd>['hello/1.0']</dd>`` text of docs/formats.rst, Replies literally.
    """
    text = value if isinstance(value, str) else str(value)
    return markupsafe.Markup(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def create_app(config: configmod.Config, warm_launchpad: bool = True) -> flask.Flask:
    """The request.cgi Flask app. Raises ConfigError / OSError at start-up.

    ``warm_launchpad`` builds the Launchpad client in the background now
    (the demo, which answers for Launchpad itself, does not).
    """
    # Fail at start (plain 500 + log line from LazyApplication), not on every request.
    config.need("web", "database_public")
    app = create_flask_app("webcontrol.web.request", config, template_folder=TEMPLATES)
    app.jinja_env.filters["pyrepr"] = element_text
    services = app.extensions["autopkgtest-request"] = RequestServices.from_config(config)
    if warm_launchpad:
        launchpad_limits.warm(services.launchpad)
    app.before_request(refuse_other_methods)
    app.register_error_handler(WebError, render_invalid)
    app.register_blueprint(bp)
    app.register_blueprint(retry.bp)
    app.register_blueprint(login.make_blueprint("login", "/login", "/logout"))
    answers = promstats.for_config(config).request_outcomes

    @app.after_request
    def count_outcome(response: flask.Response) -> flask.Response:
        # Test requests and webhooks only; login pages are not request outcomes.
        if flask.request.blueprint in (bp.name, retry.bp.name):
            answers.labels(status=str(response.status_code)).inc()
        return response

    app.wsgi_app = FullPath(app.wsgi_app)
    return app
