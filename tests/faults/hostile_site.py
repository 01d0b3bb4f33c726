# SPDX-License-Identifier: GPL-3.0-or-later
"""One site for the hostile-input tests: browse.cgi's test site plus request.cgi and private-results.

It extends ``tests/browse/site.py`` (public DB, local store with real logs,
live-state files) with what request.cgi and private-results need: a fake
Launchpad, GitHub secrets, API keys, a private run with a ``readable-by``
ACL, and a secret file just outside the results folder that no route may
ever serve. ``[amqp] uri`` points at a closed port, so a request that passes
every check is answered 503 and nothing is queued anywhere.
"""

from __future__ import annotations

import configparser
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from tests.browse import site as browse_site
from webcontrol import config as configmod
from webcontrol.store.local import LocalStore

SECRET = b"TOPSECRET-do-not-serve-4f1d"
PRIVATE_CONTAINER = "private-autopkgtest-noble"
PRIVATE_RUN = "noble/amd64/h/hello/20240101_000000_abcde@"
PRIVATE_LOG = gzip.compress(b"private log line\n", mtime=0)
WEBHOOK_SECRET = "s3cret"
API_USER, API_KEY = "apiuser", "k3y-0123456789"


@dataclass
class HostileSite:
    root: Path
    config_path: Path
    config: configmod.Config
    values: dict


def build(root: Path, launchpad_url: str, openid_url: str) -> HostileSite:
    browse_site.build(root)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(root / "autopkgtest-cloud.conf")
    values = {section: dict(parser[section]) for section in parser.sections()}
    # Secrets next to (not inside) the results folder, and in the state folder.
    (root / "secret.txt").write_bytes(SECRET)
    (root / "results-secret").mkdir()
    (root / "results-secret" / "log.gz").write_bytes(gzip.compress(SECRET))
    store = LocalStore(values["web"]["results_dir"])
    store.put_object(PRIVATE_CONTAINER, f"{PRIVATE_RUN}/log.gz", PRIVATE_LOG)
    store.put_object(PRIVATE_CONTAINER, f"{PRIVATE_RUN}/readable-by", b"joe\n")
    (root / "github-secrets.json").write_text(json.dumps({"systemd-upstream": WEBHOOK_SECRET, "hello": WEBHOOK_SECRET}))
    (root / "github-credentials").write_text("systemd-upstream:bot:tok\n")
    (root / "api-keys.json").write_text(json.dumps({API_USER: API_KEY}))
    values["web"].update(
        launchpad_api=launchpad_url,
        openid_provider=openid_url,
        allowed_requestors="autopkgtest-requestors",
        team_cache=str(root / "team-cache.json"),
        api_keys=str(root / "api-keys.json"),
    )
    values["amqp"] = {"uri": "amqp://guest:guest@127.0.0.1:1/"}
    values["github"] = {
        "secrets": str(root / "github-secrets.json"),
        "status_credentials": str(root / "github-credentials"),
        "pending_dir": str(root / "github-pending"),
    }
    path = root / "hostile.conf"
    configmod.write(values, path)
    return HostileSite(root, path, configmod.load(str(path)), values)
