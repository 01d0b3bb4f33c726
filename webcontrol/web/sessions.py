# SPDX-License-Identifier: GPL-3.0-or-later
"""Login sessions that can be revoked, and form tokens bound to them.

Each login puts a random session id (``sid``) in the signed ``session``
cookie. ``/logout`` records that id in ``<state_dir>/revoked-sessions.json``
until the cookie would have expired anyway, so a copy of the cookie taken
before logout stops working everywhere (every web app reads the same file).
The file grows only with logouts of real logins and is pruned on each write.

Form tokens (:func:`form_token`) are an HMAC of the session id (or of the
API-key user) under the shared secret key: a page of another site cannot
know them, and they die with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

from webcontrol import atomicfile
from webcontrol.filecache import FileCache

log = logging.getLogger(__name__)

REVOKED_FILE = "revoked-sessions.json"


def _load_revoked(path: Path) -> dict[str, float]:
    data = atomicfile.read_json(path, {})
    return {k: v for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


class RevokedSessions:
    """``{"<sid>": <unix time until which it stays revoked>}``, shared by every web process."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cache: FileCache[dict[str, float]] = FileCache(_load_revoked, missing={})

    def is_revoked(self, sid: str) -> bool:
        # An unreadable file is logged and revokes nothing: failing closed would log everybody out
        # on a permission slip, and the file is ours alone.
        until = self._cache.get(self.path).get(sid)
        return until is not None and until > time.time()

    def revoke(self, sid: str, until: float) -> None:
        """Remember ``sid`` as logged out until ``until``. Raises OSError."""
        now = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomicfile.file_lock(self.path.with_name(self.path.name + ".lock"), exclusive=True):
            data = atomicfile.read_json(self.path, {})
            data = (
                {k: v for k, v in data.items() if isinstance(v, (int, float)) and v > now}
                if isinstance(data, dict)
                else {}
            )
            data[sid] = until
            atomicfile.write_json_atomic(self.path, data, mode=0o600)


def form_token(secret_key: bytes, subject: str) -> str:
    """The form token of a session id or API-key user."""
    return hmac.new(secret_key, b"form-token\0" + subject.encode("utf-8"), hashlib.sha256).hexdigest()


def token_matches(secret_key: bytes, subject: str, token: str) -> bool:
    return hmac.compare_digest(form_token(secret_key, subject).encode("ascii"), token.encode("utf-8", "replace"))
