# SPDX-License-Identifier: GPL-3.0-or-later
import flask
from flask.testing import FlaskClient

pytest_plugins = ["pytester", "tests.services.amqp", "tests.services.swift", "tests.ci_skips"]


class ClosingClient(FlaskClient):
    """Flask's test client, reading each response whole and closing it as a WSGI server does.

    The stock client leaves a file response (static files, running.json, the
    public DB) open until the test closes it, and garbage collection then
    warns about the unclosed file. A test that wants the stream passes
    ``buffered=False`` and closes the response itself.
    """

    def open(self, *args, buffered: bool = True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


flask.Flask.test_client_class = ClosingClient
