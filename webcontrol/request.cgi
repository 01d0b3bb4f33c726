# SPDX-License-Identifier: GPL-3.0-or-later
"""WSGI entry of request.cgi (mod_wsgi ``WSGIScriptAlias``); the config is read on the first request."""

from webcontrol.web.appbase import LazyApplication
from webcontrol.web.request import create_app

application = LazyApplication(create_app)
