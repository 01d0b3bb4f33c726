# SPDX-License-Identifier: GPL-3.0-or-later
"""browse.cgi: the results browser (docs/formats.rst, Pages and API).

:func:`create_app` builds the Flask app from a :class:`~webcontrol.config.Config`:
the shared base (session, errors) and every blueprint of the site, each
registered by name, so a module that cannot be imported stops the app at
start-up instead of silently removing its pages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import flask
import jinja2
import werkzeug.routing

from webcontrol.config import Config
from webcontrol.web.appbase import create_flask_app

# The page modules are imported with the package, not by create_app(): the shipped Apache site loads
# browse.cgi when a daemon starts, so their imports are done before the daemon's first request.
from webcontrol.web.browse import (
    api,
    context,
    files,
    insight,
    live,
    live_cache,
    live_data,
    live_views,
    packages,
    page_cache,
    pages,
    request_pages,
    results_proxy,
    rows,
    search,
    triggers,
    users,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


class _LazyBuilderRule(werkzeug.routing.Rule):
    """A URL rule whose URL builder is compiled when a URL is first built from it.

    Werkzeug compiles two builders per rule (Python source, then compile())
    when the rule is added: ~100 ms of CPU for our ~160 rules in every new
    daemon process, though a process builds URLs from a handful of them.
    """

    def _compile_builder(self, append_unknown: bool = True):
        compiled = None

        def build(rule, **values):
            nonlocal compiled
            if compiled is None:
                compiled = werkzeug.routing.Rule._compile_builder(rule, append_unknown)
            return compiled(rule, **values)

        return build


def create_app(config: Config) -> flask.Flask:
    """The browse.cgi WSGI app. Raises ConfigError, OSError (secret key)."""
    app = create_flask_app("webcontrol.web.browse", config, template_folder=TEMPLATES)
    app.url_rule_class = _LazyBuilderRule
    # Apache recycles daemon processes: compiling the templates again in each one costs
    # ~100 ms of its first request; the compiled code is kept in a private per-user folder.
    app.jinja_env.bytecode_cache = jinja2.FileSystemBytecodeCache()
    app.teardown_appcontext(context.close_db)
    app.jinja_env.globals.update(
        page_alert=context.alert,
        trigger_url=triggers.trigger_url,
        retry_token=triggers.retry_token,
        table_rows=rows.table_rows,
        live_rows=rows.live_rows,
        running_job_block=live_data.running_job_block,
        queued_list_html=live_views.queued_list_html,
        kept_html=live_views.kept_html,
    )
    app.url_map.strict_slashes = True
    blueprints = (
        files.bp,
        api.bp,
        pages.bp,
        packages.bp,
        users.bp,
        results_proxy.bp,
        live.bp,
        request_pages.bp,
        insight.bp,
        triggers.bp,
        search.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    # Anonymous requests for the pages page_cache lists (home, run, statistics, legacy recent.json) are answered
    # from their kept bytes.
    page_cache.install(app)
    # Live pages rebuild new versions of the live files in background threads that give way to these.
    app.wsgi_app = live_cache.RequestsInFlight(app.wsgi_app)
    return app
