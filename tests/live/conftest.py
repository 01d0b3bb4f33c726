# SPDX-License-Identifier: GPL-3.0-or-later
"""The browse app over a small public DB and the live-state files in ``tmp_path``."""

from __future__ import annotations

import pytest

from tests.live.test_cache_amqp import make_public_db
from webcontrol import config
from webcontrol.web.browse import create_app


@pytest.fixture
def site(tmp_path):
    make_public_db(tmp_path / "public.db", {"noble": ["amd64", "arm64"], "kinetic": ["amd64"]})
    cfg = config.from_dict(
        {
            "web": {
                "database_public": tmp_path / "public.db",
                "running_cache": tmp_path / "running.json",
                "amqp_queue_cache": tmp_path / "queued.json",
                "releases": "kinetic noble",
                "state_dir": tmp_path / "state",
                "site_url": "https://autopkgtest.example.com",
            }
        }
    )
    app = create_app(cfg)
    app.testing = True
    return app.test_client(), tmp_path
