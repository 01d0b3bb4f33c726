# SPDX-License-Identifier: GPL-3.0-or-later
"""A request.cgi site for tests: config, seeded public DB, live-state files, fakes wired in."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from webcontrol import config as configmod
from webcontrol import db

SITE_URL = "https://autopkgtest.example.com"
ALLOWED_TEAM = "autopkgtest-requestors"


def unique_release() -> str:
    """A release name no other test uses, so its ``debci-*`` queues are private to the test."""
    return "t" + secrets.token_hex(5)


def seed_public_db(path: Path, tests: list[tuple[str, str, str]]) -> None:
    """A public DB holding ``(package, release, arch)`` test rows (and one result each)."""
    conn = db.connect_rw(path, migrate_schema=False)
    try:
        db.create_public_schema(conn)
        conn.execute("BEGIN")
        for index, (package, release, arch) in enumerate(tests):
            cur = conn.execute(
                "INSERT OR IGNORE INTO test (release, arch, package) VALUES (?, ?, ?)", (release, arch, package)
            )
            if cur.lastrowid and cur.rowcount:
                conn.execute(
                    "INSERT INTO result (test_id, run_id, version, triggers, duration, exitcode, requester, env)"
                    " VALUES (?, ?, '1.0', ?, 10, 0, '', '')",
                    (cur.lastrowid, f"20240101_{index % 1000000:06d}_aaaaa@", f"{package}/1.0"),
                )
        conn.execute("COMMIT")
    finally:
        conn.close()


@dataclass
class Site:
    root: Path
    release: str
    values: dict = field(default_factory=dict)

    @property
    def config(self) -> configmod.Config:
        return configmod.from_dict(self.values)

    def set(self, section: str, key: str, value) -> None:
        self.values.setdefault(section, {})[key] = value

    def write_running(self, data: dict) -> None:
        Path(self.values["web"]["running_cache"]).write_text(json.dumps(data))

    def write_queued(self, data: dict) -> None:
        Path(self.values["web"]["amqp_queue_cache"]).write_text(json.dumps(data))

    def write_api_keys(self, keys: dict[str, str]) -> None:
        path = self.root / "api-keys.json"
        path.write_text(json.dumps(keys))
        self.set("web", "api_keys", str(path))

    def write_github(self, secrets_: dict[str, str], credentials: list[str]) -> None:
        (self.root / "github-secrets.json").write_text(json.dumps(secrets_))
        (self.root / "github-credentials").write_text("\n".join(credentials) + "\n")
        self.set("github", "secrets", str(self.root / "github-secrets.json"))
        self.set("github", "status_credentials", str(self.root / "github-credentials"))


def make_site(
    root: Path,
    release: str,
    tests: list[tuple[str, str, str]],
    launchpad_url: str,
    amqp_uri: str | None,
    openid_url: str = "http://127.0.0.1:9/",
    extra_releases: tuple[str, ...] = (),
) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    seed_public_db(root / "public.db", tests)
    values = {
        "web": {
            "database_public": str(root / "public.db"),
            "state_dir": str(root / "state"),
            "runtime_dir": str(root / "run"),
            "releases": " ".join((*extra_releases, release)),
            "site_url": SITE_URL,
            "launchpad_api": launchpad_url,
            "openid_provider": openid_url,
            "allowed_requestors": ALLOWED_TEAM,
            "team_cache": str(root / "team-cache.json"),
            "running_cache": str(root / "running.json"),
            "amqp_queue_cache": str(root / "queued.json"),
            "results_store": "local",
            "results_dir": str(root / "results"),
        },
        "amqp": {"uri": amqp_uri},
        "github": {"pending_dir": str(root / "github-pending")},
    }
    return Site(root, release, values)
