# SPDX-License-Identifier: GPL-3.0-or-later
"""A rogue OpenID 2.0 provider: a real python-openid server on its own loopback port.

It is what an attacker runs next to Ubuntu SSO: it signs whatever it
likes. :meth:`RogueOpenIDProvider.unsolicited` makes a positive assertion
that nobody asked for (any nickname, any team) for a given ``return_to``,
signed with a private association, so a consumer that trusts it would
confirm the signature with ``check_authentication`` at this provider. Every
request it receives is recorded, so a test can prove the site never asked.
"""

from __future__ import annotations

import threading
import urllib.parse

from openid.extensions import sreg
from openid.message import IDENTIFIER_SELECT, OPENID2_NS

from tests.fakes.openid_provider import LP_TEAMS_NS, FakeOpenIDProvider


class RogueOpenIDProvider(FakeOpenIDProvider):
    def __init__(self):
        super().__init__()
        self.received: list[str] = []
        self._lock = threading.Lock()
        inner = self.app

        def recording_app(environ, start_response):
            with self._lock:
                self.received.append(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
            return inner(environ, start_response)

        self.server.server.app = recording_app

    def unsolicited(self, return_to: str, realm: str, nick: str, teams: list[str] | None = None) -> str:
        """The URL a browser is sent to with a signed positive assertion for ``nick``."""
        query = {
            "openid.ns": OPENID2_NS,
            "openid.mode": "checkid_setup",
            "openid.identity": IDENTIFIER_SELECT,
            "openid.claimed_id": IDENTIFIER_SELECT,
            "openid.return_to": return_to,
            "openid.realm": realm,
        }
        request = self.openid.decodeRequest(query)
        identity = self.identity(nick)
        answer = request.answer(True, identity=identity, claimed_id=identity)
        answer.addExtension(
            sreg.SRegResponse.extractResponse(sreg.SRegRequest(required=["nickname"]), {"nickname": nick})
        )
        if teams:
            answer.fields.updateArgs(LP_TEAMS_NS, {"is_member": ",".join(teams)})
        web = self.openid.encodeResponse(answer)
        return web.headers["location"]

    def id_res_query(self, claimed_id: str, op_endpoint: str) -> str:
        """A malformed-but-plausible unsigned id_res query naming URLs of the attacker's choice."""
        return urllib.parse.urlencode(
            {
                "openid.ns": OPENID2_NS,
                "openid.mode": "id_res",
                "openid.op_endpoint": op_endpoint,
                "openid.claimed_id": claimed_id,
                "openid.identity": claimed_id,
                "openid.return_to": "https://autopkgtest.example.com/login",
                "openid.response_nonce": "2026-01-01T00:00:00Zabc",
                "openid.assoc_handle": "x",
                "openid.signed": "op_endpoint,claimed_id,identity,return_to,response_nonce,assoc_handle",
                "openid.sig": "AAAA",
            }
        )
