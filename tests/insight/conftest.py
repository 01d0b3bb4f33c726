# SPDX-License-Identifier: GPL-3.0-or-later
import pytest

from tests.insight import site as sitemod
from webcontrol.web.browse import create_app


@pytest.fixture(scope="session")
def insight_site(tmp_path_factory):
    return sitemod.build(tmp_path_factory.mktemp("insight-site"))


@pytest.fixture(scope="session")
def insight_app(insight_site):
    return create_app(insight_site.config)


@pytest.fixture
def client(insight_app):
    return insight_app.test_client()
