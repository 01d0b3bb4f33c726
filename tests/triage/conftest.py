# SPDX-License-Identifier: GPL-3.0-or-later
from tests.fakes.fixtures import (  # noqa: F401  (pytest fixtures)
    app,
    client,
    fake_github,
    fake_github_server,
    fake_launchpad,
    launchpad,
    openid_provider,
    site,
)
