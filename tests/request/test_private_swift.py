# SPDX-License-Identifier: GPL-3.0-or-later
"""private-results on the real Swift: one store per process, so one login serves every request."""

from __future__ import annotations

import gzip
import uuid

from tests.fakes.fixtures import login
from tests.services.http_relay import HttpRelay
from webcontrol.web.private import create_app as create_private_app

RUN = "noble/amd64/h/hello/20240101_000000_abcde@"
LOG = gzip.compress(b"autopkgtest [00:00:00]: private log\n")
AUTH = "/auth/v1.0"


def test_requests_share_one_swift_login(site, swift_server, swift_store):
    container = f"private-autopkgtest-noble-joe-{uuid.uuid4().hex[:8]}"
    swift_store.put_object(container, f"{RUN}/log.gz", LOG)
    swift_store.put_object(container, f"{RUN}/readable-by", b"joe\n")
    relay = HttpRelay(swift_server.ports["proxy"]).start()
    try:
        site.set("web", "results_store", "swift")
        site.values["swift"] = dict(swift_server.config_section(), os_auth_url=relay.url + AUTH)
        client = create_private_app(site.config).test_client()
        login(client, "joe")
        for _ in range(4):
            response = client.get(f"/private-results/{container}/{RUN}/log.gz")
            assert response.status_code == 200
            assert response.get_data() == LOG
        assert client.get(f"/private-results/{container}/{RUN}/other.gz").status_code == 404
        assert relay.count("GET", f"/v1/AUTH_test/{container}/{RUN}/log.gz") == 4
        assert relay.count("GET", AUTH) == 1
    finally:
        relay.stop()
