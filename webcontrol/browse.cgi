# SPDX-License-Identifier: GPL-3.0-or-later
# browse.cgi: WSGI entry point of the results browser (mod_wsgi loads this file by path).
# The config path comes from the WSGI environ (Apache SetEnv AUTOPKGTEST_CLOUD_CONF) on the first request.
from webcontrol.web.appbase import LazyApplication
from webcontrol.web.browse import create_app

application = LazyApplication(create_app)
