# SPDX-License-Identifier: GPL-3.0-or-later
"""WSGI entry of private-results (mod_wsgi); the config is read on the first request."""

from webcontrol.web.appbase import LazyApplication
from webcontrol.web.private import create_app

application = LazyApplication(create_app)
