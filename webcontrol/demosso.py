# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's own login service: an OpenID 2.0 provider served by the demo program itself.

The demo runs offline, so it cannot send visitors to the real login
service. Instead ``autopkgtest-web-demo`` mounts this provider under
:data:`PREFIX` of its one loopback server and points ``[web]
openid_provider`` at it; request.cgi's login code is unchanged and talks to
it as it would to the real one (discovery, association, signed answers with
the nickname and the team-membership extension).

Nothing else mounts it: the web apps (browse.cgi, request.cgi,
private-results) never serve these paths, so a real deployment cannot turn
it on by configuration.
"""

from __future__ import annotations

import logging

import markupsafe
from openid.extensions import sreg
from openid.server import server as oidserver
from openid.store.memstore import MemoryStore
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

PREFIX = "/demo-login"
DEMO_USER = "demo"
#: The answer field of the approval page; never part of the OpenID request itself.
ANSWER_FIELD = "demo_answer"
LP_TEAMS_NS = "http://ns.launchpad.net/2007/openid-teams"

_XRDS = """<?xml version="1.0" encoding="UTF-8"?>
<xrds:XRDS xmlns:xrds="xri://$xrds" xmlns="xri://$xrd*($v*2.0)">
<XRD><Service priority="0"><Type>{type}</Type><URI>{endpoint}</URI>{local}</Service></XRD>
</xrds:XRDS>
"""

_APPROVAL = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Demo login</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><main class="container">
<h1>Demo login</h1>
<p>This is the demo's built-in login service. You will be logged in as
<strong>{user}</strong>, a member of {teams}, so that you can try the request
form and the retry links. Requests go to the demo's simulated workers.</p>
<form method="post" action="{endpoint}">{fields}
<button type="submit" name="{answer}" value="yes" id="demo-login-approve">Log in as {user}</button>
<button type="submit" name="{answer}" value="no" id="demo-login-cancel">Cancel</button>
</form></main></body></html>
"""


class DemoProvider:
    """A WSGI app: the provider, approving logins for :data:`DEMO_USER` after one click."""

    def __init__(self, base_url: str, teams: list[str], user: str = DEMO_USER):
        self.base_url = base_url.rstrip("/") + PREFIX
        self.endpoint = self.base_url + "/+openid"
        self.user = user
        self.teams = list(teams)
        self.openid = oidserver.Server(MemoryStore(), self.endpoint)

    @property
    def provider_url(self) -> str:
        """What ``[web] openid_provider`` must be."""
        return self.base_url + "/"

    def identity(self, nick: str) -> str:
        return f"{self.base_url}/+id/{nick}"

    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path.removeprefix(PREFIX)
        if path in ("", "/"):
            body = _XRDS.format(type="http://specs.openid.net/auth/2.0/server", endpoint=self.endpoint, local="")
            return Response(body, mimetype="application/xrds+xml")(environ, start_response)
        if path.startswith("/+id/"):
            local = f"<LocalID>{markupsafe.escape(self.base_url + path)}</LocalID>"
            body = _XRDS.format(type="http://specs.openid.net/auth/2.0/signon", endpoint=self.endpoint, local=local)
            return Response(body, mimetype="application/xrds+xml")(environ, start_response)
        if path != "/+openid":
            return Response("not found", 404, mimetype="text/plain")(environ, start_response)
        return self._endpoint(request)(environ, start_response)

    def _endpoint(self, request: Request) -> Response:
        query = {key: value for key, value in request.values.items() if key != ANSWER_FIELD}
        try:
            oid_request = self.openid.decodeRequest(query)
        except oidserver.ProtocolError as err:
            return self._encode(err)
        if oid_request is None:
            return Response("This is the demo's OpenID endpoint.", 200, mimetype="text/plain")
        if oid_request.mode == "checkid_immediate":
            return self._encode(oid_request.answer(False))
        if oid_request.mode != "checkid_setup":
            return self._encode(self.openid.handleRequest(oid_request))
        answer = request.values.get(ANSWER_FIELD)
        if answer is None:
            return self._approval_page(query)
        if answer != "yes":
            return self._encode(oid_request.answer(False))
        log.info("demo login of %s", self.user)
        return self._encode(self._approve(oid_request))

    def _approval_page(self, query: dict[str, str]) -> Response:
        fields = "".join(
            f'<input type="hidden" name="{markupsafe.escape(key)}" value="{markupsafe.escape(value)}">'
            for key, value in query.items()
        )
        teams = ", ".join(self.teams) or "no team"
        page = _APPROVAL.format(
            user=markupsafe.escape(self.user),
            teams=markupsafe.escape(teams),
            endpoint=markupsafe.escape(self.endpoint),
            fields=fields,
            answer=ANSWER_FIELD,
        )
        return Response(page, 200, mimetype="text/html")

    def _approve(self, oid_request):
        identity = self.identity(self.user)
        answer = oid_request.answer(True, identity=identity, claimed_id=identity)
        asked = sreg.SRegRequest.fromOpenIDRequest(oid_request)
        answer.addExtension(sreg.SRegResponse.extractResponse(asked, {"nickname": self.user}))
        lp_args = oid_request.message.getArgs(LP_TEAMS_NS)
        if lp_args:
            wanted = [team for team in lp_args.get("query_membership", "").split(",") if team]
            answer.fields.updateArgs(LP_TEAMS_NS, {"is_member": ",".join(t for t in wanted if t in self.teams)})
        return answer

    def _encode(self, answer) -> Response:
        web = self.openid.encodeResponse(answer)
        response = Response(web.body, web.code)
        for key, value in web.headers.items():
            response.headers[key] = value
        return response
