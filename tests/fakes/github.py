# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake GitHub statuses API over real HTTP: records every status it receives.

``POST /repos/<owner>/<repo>/statuses/<sha>`` answers 201 when the request
carries Basic auth, a User-Agent and a JSON body, as GitHub requires;
``fail_next`` makes the next N posts answer 502 (to exercise retries);
``delay`` makes every answer wait (GitHub hanging). ``received`` lists every
request that arrived, valid or not, as ``(method, path, Authorization)``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from tests.fakes.server import ThreadedServer


@dataclass
class ReceivedStatus:
    path: str
    user: str
    token: str
    user_agent: str
    accept: str
    body: dict

    @property
    def sha(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class FakeGitHub:
    def __init__(self):
        self.statuses: list[ReceivedStatus] = []
        self.refused: list[str] = []
        self.fail_next = 0
        self.delay = 0.0
        self.received: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadedServer(self.app)
        self.url = self.server.url

    def start(self) -> FakeGitHub:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def statuses_url(self, owner: str, repo: str, sha: str) -> str:
        return f"{self.url}/repos/{owner}/{repo}/statuses/{sha}"

    def states(self, sha: str | None = None) -> list[str]:
        return [s.body.get("state") for s in self.statuses if sha is None or s.sha == sha]

    def app(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.received.append((request.method, request.path, request.headers.get("Authorization", "")))
        if self.delay:
            time.sleep(self.delay)
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 5 or parts[0] != "repos" or parts[3] != "statuses":
            return Response('{"message": "Not Found"}', 404, mimetype="application/json")(environ, start_response)
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return Response('{"message": "Server Error"}', 502)(environ, start_response)
        auth = request.headers.get("Authorization", "")
        agent = request.headers.get("User-Agent", "")
        if not auth.startswith("Basic ") or not agent:
            self.refused.append(request.path)
            return Response('{"message": "Requires authentication"}', 401)(environ, start_response)
        user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return Response('{"message": "Problems parsing JSON"}', 400)(environ, start_response)
        if request.headers.get("Content-Type") != "application/json":
            return Response('{"message": "bad content type"}', 415)(environ, start_response)
        with self.lock:
            self.statuses.append(
                ReceivedStatus(request.path, user, token, agent, request.headers.get("Accept", ""), body)
            )
        return Response(json.dumps(dict(body, id=len(self.statuses))), 201, mimetype="application/json")(
            environ, start_response
        )
