# SPDX-License-Identifier: GPL-3.0-or-later
"""browse.cgi: the results browser (docs/formats.rst, Pages and API).

:func:`create_app` builds the Flask app from a :class:`~webcontrol.config.Config`:
the shared base (session, errors), our blueprints, and the optional
blueprints of other features (:data:`EXTRA_BLUEPRINTS`), which are skipped
with a log line while their module does not exist.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import flask

from webcontrol.config import Config
from webcontrol.web.appbase import create_flask_app

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: ``module:attribute`` of blueprints owned by other features.
EXTRA_BLUEPRINTS = [
    "webcontrol.web.browse.live:bp",
    "webcontrol.web.request.pages:bp",
    "webcontrol.web.insight:bp",
]


def _optional_blueprint(spec: str) -> flask.Blueprint | None:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            log.info("optional blueprint %s not installed (%s); skipping", spec, err)
            return None
        log.exception("optional blueprint %s cannot be imported; the site runs without it", spec)
        return None
    except ImportError:
        # A broken feature must not take the whole site down; the traceback is in the log.
        log.exception("optional blueprint %s cannot be imported; the site runs without it", spec)
        return None
    return getattr(module, attribute)


def create_app(config: Config) -> flask.Flask:
    """The browse.cgi WSGI app. Raises ConfigError, OSError (secret key)."""
    from webcontrol.web.browse import api, context, files, packages, pages, results_proxy, users

    app = create_flask_app("webcontrol.web.browse", config, template_folder=TEMPLATES)
    app.teardown_appcontext(context.close_db)
    app.jinja_env.globals.update(page_alert=context.alert)
    app.url_map.strict_slashes = True
    for blueprint in (files.bp, api.bp, pages.bp, packages.bp, users.bp, results_proxy.bp):
        app.register_blueprint(blueprint)
    for spec in EXTRA_BLUEPRINTS:
        blueprint = _optional_blueprint(spec)
        if blueprint is not None:
            app.register_blueprint(blueprint)
    return app
