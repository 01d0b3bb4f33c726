# SPDX-License-Identifier: GPL-3.0-or-later
"""Fakes of the services we do not own (Launchpad, GitHub, the OpenID provider).

Each one is a small WSGI app served by a real HTTP server on 127.0.0.1 in
a thread, so the code under test talks real HTTP to it.
"""
