# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped Apache site with the local result store: no Swift URL, so /results/ is browse.cgi's.

The same real Apache + mod_wsgi as test_apache.py, with ``AUTOPKGTEST_WEB_SWIFT_STORAGE_URL``
left undefined (as operators of the local store do) and ``[web] results_store = local``.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.deploy import apache
from tests.deploy.test_apache import ARCH, PACKAGE, RUN_ID, local_store_site

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

CONTAINER_PATH = f"h/{PACKAGE}/{RUN_ID}/log.gz"


LOG_GZ = gzip.compress(b"a local log\n" * 100)


@pytest.fixture(scope="module")
def local_site():
    log_file = f"autopkgtest-{{release}}/{{release}}/{ARCH}/{CONTAINER_PATH}"
    with local_store_site("autopkgtest-web-apache-local-", {log_file: LOG_GZ}) as site:
        yield site


def test_results_come_from_the_local_store(local_site):
    container = f"autopkgtest-{local_site.release}"
    name = f"{local_site.release}/{ARCH}/{CONTAINER_PATH}"
    status, headers, body = local_site.request("GET", f"/results/{container}/{name}", {"Accept-Encoding": "gzip"})
    assert status == 200, local_site.explain()
    # Stored gzip passed through as is, not compressed a second time by mod_deflate.
    assert headers["Content-Encoding"] == "gzip"
    assert body == LOG_GZ
    status, _, listing = local_site.get(f"/results/{container}/?format=json")
    assert status == 200
    assert [item["name"] for item in json.loads(listing)] == [name]


def test_home_page_with_the_local_store(local_site):
    status, _, body = local_site.get("/")
    assert status == 200, local_site.explain()
    assert PACKAGE.encode() in body
