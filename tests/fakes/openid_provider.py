# SPDX-License-Identifier: GPL-3.0-or-later
"""A local OpenID 2.0 provider (python3-openid's server) over real HTTP.

It plays Ubuntu SSO: discovery of the OP endpoint at ``/`` (identifier
select), ``/+openid`` for associate / checkid_setup / check_authentication,
claimed identities at ``/+id/<nick>``. Every checkid_setup is approved for
``user`` at once (no login page), answering SReg ``nickname`` and the
Launchpad teams extension (the asked teams that are in ``teams``), signed.
"""

from __future__ import annotations

from openid.extensions import sreg
from openid.server import server as oidserver
from openid.store.memstore import MemoryStore
from werkzeug.wrappers import Request, Response

from tests.fakes.server import ThreadedServer

LP_TEAMS_NS = "http://ns.launchpad.net/2007/openid-teams"

XRDS = """<?xml version="1.0" encoding="UTF-8"?>
<xrds:XRDS xmlns:xrds="xri://$xrds" xmlns="xri://$xrd*($v*2.0)">
<XRD><Service priority="0"><Type>{type}</Type><URI>{endpoint}</URI>{local}</Service></XRD>
</xrds:XRDS>
"""


class FakeOpenIDProvider:
    def __init__(self, user: str = "joe", teams: list[str] | None = None):
        self.user = user
        self.teams = teams or []
        self.cancel = False
        self.server = ThreadedServer(self.app)
        self.url = self.server.url + "/"
        self.endpoint = self.server.url + "/+openid"
        self.openid = oidserver.Server(MemoryStore(), self.endpoint)

    def start(self) -> FakeOpenIDProvider:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def identity(self, nick: str) -> str:
        return f"{self.server.url}/+id/{nick}"

    def app(self, environ, start_response):
        request = Request(environ)
        if request.path == "/":
            body = XRDS.format(type="http://specs.openid.net/auth/2.0/server", endpoint=self.endpoint, local="")
            return Response(body, mimetype="application/xrds+xml")(environ, start_response)
        if request.path.startswith("/+id/"):
            local = f"<LocalID>{self.server.url}{request.path}</LocalID>"
            body = XRDS.format(type="http://specs.openid.net/auth/2.0/signon", endpoint=self.endpoint, local=local)
            return Response(body, mimetype="application/xrds+xml")(environ, start_response)
        if request.path != "/+openid":
            return Response("not found", 404)(environ, start_response)
        query = dict(request.values.items())
        try:
            oid_request = self.openid.decodeRequest(query)
        except oidserver.ProtocolError as err:
            return self._encode(err)(environ, start_response)
        if oid_request is None:
            return Response("This is an OpenID server endpoint.", 200)(environ, start_response)
        if oid_request.mode in ("checkid_setup", "checkid_immediate"):
            answer = self._approve(oid_request)
        else:
            answer = self.openid.handleRequest(oid_request)
        return self._encode(answer)(environ, start_response)

    def _approve(self, oid_request):
        if self.cancel:
            return oid_request.answer(False)
        identity = self.identity(self.user)
        answer = oid_request.answer(True, identity=identity, claimed_id=identity)
        asked = sreg.SRegRequest.fromOpenIDRequest(oid_request)
        answer.addExtension(sreg.SRegResponse.extractResponse(asked, {"nickname": self.user}))
        lp_args = oid_request.message.getArgs(LP_TEAMS_NS)
        if lp_args:
            wanted = [t for t in lp_args.get("query_membership", "").split(",") if t]
            answer.fields.updateArgs(LP_TEAMS_NS, {"is_member": ",".join(t for t in wanted if t in self.teams)})
        return answer

    def _encode(self, answer) -> Response:
        web = self.openid.encodeResponse(answer)
        response = Response(web.body, web.code)
        for key, value in web.headers.items():
            response.headers[key] = value
        return response
