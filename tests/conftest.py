# SPDX-License-Identifier: GPL-3.0-or-later
import flask
import pytest
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


@pytest.fixture(autouse=True)
def _close_request_publishers(monkeypatch):
    """Close the broker connection of every request.cgi app a test made.

    request.cgi keeps one publishing connection for the app's lifetime, which
    deployed is the process's; a test's app would leave its socket to garbage
    collection, which warns about it.
    """
    from webcontrol.web.request.publisher import Publisher

    made: list[Publisher] = []
    original = Publisher.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Publisher, "__init__", init)
    yield
    for publisher in made:
        publisher.close()
