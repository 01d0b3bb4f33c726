# SPDX-License-Identifier: GPL-3.0-or-later
"""``/user/<u>/ppa/<p>`` on the real Swift: a container listing serves the page for a short while."""

from __future__ import annotations

import configparser
import uuid

import pytest

from tests.services.http_relay import HttpRelay
from webcontrol import config as configmod
from webcontrol import results
from webcontrol.web.browse import create_app, users

AUTH = "/auth/v1.0"


@pytest.fixture
def relay(swift_server):
    if not swift_server.running:
        swift_server.start()
    relay = HttpRelay(swift_server.ports["proxy"]).start()
    yield relay
    relay.stop()


def _swift_config(site, swift_server, relay) -> configmod.Config:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(site.root / "autopkgtest-cloud.conf")
    values = {section: dict(parser[section]) for section in parser.sections()}
    values["web"]["results_store"] = "swift"
    values["swift"] = dict(swift_server.config_section(), os_auth_url=relay.url + AUTH)
    return configmod.from_dict(values)


def _runs(client, ppa: str) -> list[str]:
    response = client.get(f"/api/v1/user/bryce/ppa/{ppa}")
    assert response.status_code == 200
    return [run["run_id"] for group in response.get_json()["packages"] for run in group["runs"]]


def test_ppa_page_reuses_a_recent_listing(site, swift_server, swift_store, relay, monkeypatch):
    ppa = f"merge-{uuid.uuid4().hex[:8]}"
    container = results.ppa_container("noble", f"bryce/{ppa}")
    first = "20240101_000000_aaaaa@"
    swift_store.put_object(container, f"{results.run_dir('noble', 'amd64', 'hello', first)}/log.gz", b"log")
    client = create_app(_swift_config(site, swift_server, relay)).test_client()

    assert _runs(client, ppa) == [first]
    assert _runs(client, ppa) == [first]
    assert relay.count("GET", f"/v1/AUTH_test/{container}") == 1

    second = "20240102_000000_bbbbb@"
    swift_store.put_object(container, f"{results.run_dir('noble', 'amd64', 'hello', second)}/log.gz", b"log")
    monkeypatch.setattr(users, "PPA_LISTING_SECONDS", 0.0)
    assert _runs(client, ppa) == [second, first]
    assert relay.count("GET", f"/v1/AUTH_test/{container}") == 2
    assert relay.count("GET", AUTH) == 1
