# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake Launchpad API (the anonymous calls of docs/formats.rst, Launchpad calls) over real HTTP.

It serves what launchpadlib reads: the service root as WADL (the description
launchpadlib bundles for its own tests, its base URL rewritten to this
server) and as JSON, entries (people, archives) at their ``self_link``, and
the named operations (``ws.op=...``). It insists on launchpadlib's argument
encoding (string arguments JSON-quoted, series and people as
``<root>/1.0/...`` links), so a client that encodes them differently gets
400, as from the real service. Collections are served in pages of
``page_size`` entries with ``next_collection_link``.

``calls`` records every request but the service root's; those (the client
starting up) go to ``discovery``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from tests.fakes.server import ThreadedServer


@dataclass
class LaunchpadState:
    ppas: set[tuple[str, str]] = field(default_factory=set)
    # (archive, release) -> {source: [(version, component)]}; archive "primary" or "owner/ppa"
    published: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    uploaders: set[tuple[str, str]] = field(default_factory=set)  # (nick, package); ("*", pkg) or (nick, "*")
    teams: dict[str, list[str]] = field(default_factory=dict)  # nick -> super teams
    participants: dict[str, list[str]] = field(default_factory=dict)  # team -> people
    page_size: int = 2
    fail: str | None = None  # "500", "503", "timeout", "html"
    fail_only: str = ""  # fail only requests whose path and query hold this
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)
    discovery: list[str] = field(default_factory=list)

    def publish(self, source: str, version: str, release: str, archive: str = "primary", component: str = "main"):
        self.published.setdefault((archive, release), {}).setdefault(source, []).append((version, component))


class FakeLaunchpad:
    def __init__(self):
        self.state = LaunchpadState()
        self.lock = threading.Lock()
        self.server = ThreadedServer(self.app)
        self.url = self.server.url + "/"
        self.root = self.server.url + "/1.0/"

    def start(self) -> FakeLaunchpad:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.state = LaunchpadState()

    def call_count(self, needle: str = "") -> int:
        return sum(1 for c in self.state.calls if needle in c)

    # Argument decoding -------------------------------------------------------------------

    def _string(self, args, key: str) -> str:
        raw = args.get(key)
        if raw is None:
            raise _Bad(f"missing {key}")
        try:
            value = json.loads(raw)
        except ValueError:
            raise _Bad(f"{key} is not JSON-quoted: {raw!r}") from None
        if not isinstance(value, str):
            raise _Bad(f"{key} is not a string")
        return value

    def _link(self, args, key: str, prefix: str) -> str:
        value = self._string(args, key)
        if not value.startswith(self.root + prefix):
            raise _Bad(f"{key} {value!r} is not a {self.root}{prefix} link")
        return value[len(self.root + prefix) :]

    # WSGI --------------------------------------------------------------------------------

    def app(self, environ, start_response):
        request = Request(environ)
        state = self.state
        is_root = request.path.rstrip("/") == "/1.0"
        (state.discovery if is_root else state.calls).append(request.full_path)
        if state.delay:
            time.sleep(state.delay)
        failing = state.fail and (not state.fail_only or state.fail_only in urllib.parse.unquote(request.full_path))
        if failing and state.fail in ("500", "503"):
            return Response("oops", int(state.fail))(environ, start_response)
        if failing and state.fail == "timeout":
            time.sleep(3)
            return Response("late", 504)(environ, start_response)
        if failing and state.fail == "html":
            return Response("<html>maintenance</html>", 200, mimetype="text/html")(environ, start_response)
        if is_root and WADL_TYPE in request.headers.get("Accept", ""):
            return Response(self.wadl(), 200, mimetype=WADL_TYPE)(environ, start_response)
        try:
            status, body = self.route(request)
        except _Bad as err:
            status, body = 400, str(err)
        if isinstance(body, str):
            return Response(body, status, mimetype="text/plain")(environ, start_response)
        return Response(json.dumps(body), status, mimetype="application/json")(environ, start_response)

    def route(self, request: Request):
        path = urllib.parse.unquote(request.path)
        if not path.startswith("/1.0/"):
            return 404, "not found"
        path = path[len("/1.0/") :]
        args = request.args
        op = args.get("ws.op")
        state = self.state
        if path == "":
            return 200, self.service_root()
        if op is None and path.startswith("~") and "/" not in path:
            return self.person(path[1:])
        if op is None and (path == "ubuntu/+archive/primary" or "/+archive/ubuntu/" in path):
            return self.archive(path)
        if path.endswith("/super_teams") and path.startswith("~"):
            return self.collection(request, state.teams.get(path[1:].split("/")[0]))
        if path.endswith("/participants") and path.startswith("~"):
            return self.collection(request, state.participants.get(path[1:].split("/")[0]))
        if op == "getPPAByName" and path.startswith("~") and "/" not in path:
            owner = path[1:]
            if self._string(args, "distribution") != self.root + "ubuntu":
                raise _Bad("bad distribution")
            name = self._string(args, "name")
            if (owner, name) in state.ppas:
                return self.archive(f"~{owner}/+archive/ubuntu/{name}")
            return 404, f"No such ppa {name}"
        if op == "getPublishedSources":
            if path == "ubuntu/+archive/primary":
                archive = "primary"
            elif path.startswith("~") and "/+archive/ubuntu/" in path:
                owner, name = path[1:].split("/+archive/ubuntu/")
                if (owner, name) not in state.ppas:
                    return 404, "no such archive"
                archive = f"{owner}/{name}"
            else:
                return 404, "not found"
            source = self._string(args, "source_name")
            release = self._link(args, "distro_series", "ubuntu/")
            if args.get("status") != "Published" or args.get("exact_match") != "true":
                raise _Bad("status/exact_match")
            version = self._string(args, "version") if "version" in args else None
            entries = [
                {
                    "self_link": f"{self.root}{path}/+sourcepub/{index}",
                    "resource_type_link": f"{self.root}#source_package_publishing_history",
                    "source_package_name": source,
                    "source_package_version": v,
                    "component_name": c,
                }
                for index, (v, c) in enumerate(state.published.get((archive, release), {}).get(source, []))
                if version is None or v == version
            ]
            return 200, {"total_size": len(entries), "start": 0, "entries": entries}
        if op == "checkUpload" and path == "ubuntu/+archive/primary":
            self._link(args, "distroseries", "ubuntu/")
            nick = self._link(args, "person", "~")
            package = self._string(args, "sourcepackagename")
            if args.get("pocket") != "Proposed" or not args.get("component"):
                raise _Bad("pocket/component")
            allowed = {(nick, package), ("*", package), (nick, "*")} & state.uploaders
            if allowed:
                return 200, None
            return 403, f"The signer of this package has no upload rights to {package}"
        return 404, "not found"

    def collection(self, request: Request, names: list[str] | None):
        if names is None:
            return 404, "no such person"
        start = int(request.args.get("ws.start", "0"))
        size = self.state.page_size
        page = names[start : start + size]
        body = {
            "total_size": len(names),
            "start": start,
            "entries": [self.person_entry(n) for n in page],
            "resource_type_link": f"{self.root}#person-page-resource",
        }
        if start + size < len(names):
            body["next_collection_link"] = f"{self.server.url}{request.path}?ws.size={size}&ws.start={start + size}"
        return 200, body

    # Entries and the service root ---------------------------------------------------------

    def wadl(self) -> bytes:
        return _bundled_wadl().replace(BUNDLED_ROOT, self.url.encode())

    def service_root(self) -> dict:
        links = {f"{name}_collection_link": f"{self.root}{name}" for name in ("people", "distributions", "archives")}
        return {"resource_type_link": f"{self.root}#service-root", **links}

    def person_entry(self, name: str) -> dict:
        link = f"{self.root}~{name}"
        return {
            "self_link": link,
            "resource_type_link": f"{self.root}#team",
            "name": name,
            "display_name": name,
            "super_teams_collection_link": f"{link}/super_teams",
            "participants_collection_link": f"{link}/participants",
        }

    def person(self, name: str):
        """Everyone exists (Launchpad has millions of people); those without teams have no collections."""
        return 200, self.person_entry(name)

    def archive(self, path: str):
        if path != "ubuntu/+archive/primary":
            owner, name = path[1:].split("/+archive/ubuntu/", 1)
            if (owner, name) not in self.state.ppas:
                return 404, "no such archive"
        else:
            owner, name = "ubuntu", "primary"
        return 200, {
            "self_link": f"{self.root}{path}",
            "resource_type_link": f"{self.root}#archive",
            "name": name,
            "owner_link": f"{self.root}~{owner}",
        }


WADL_TYPE = "application/vnd.sun.wadl+xml"
#: The service root written in launchpadlib's bundled WADL.
BUNDLED_ROOT = b"https://api.launchpad.test/"


@functools.cache
def _bundled_wadl() -> bytes:
    return importlib.resources.files("launchpadlib.testing").joinpath("launchpad-wadl.xml").read_bytes()


class _Bad(Exception):
    pass
