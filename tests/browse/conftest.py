# SPDX-License-Identifier: GPL-3.0-or-later
import pytest

from tests.browse import site as sitemod
from webcontrol.web.browse import create_app


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    return sitemod.build(tmp_path_factory.mktemp("browse-site"))


@pytest.fixture(scope="session")
def app(site):
    return create_app(site.config)


@pytest.fixture
def client(app):
    return app.test_client()
