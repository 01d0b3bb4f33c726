# SPDX-License-Identifier: GPL-3.0-or-later
"""autopkgtest-web: results DB, result stores, AMQP services and web apps."""

__version__ = "0.1.0"
