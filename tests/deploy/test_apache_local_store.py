# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped Apache site with the local result store: no Swift URL, so /results/ is browse.cgi's.

The same real Apache + mod_wsgi as test_apache.py, with ``AUTOPKGTEST_WEB_SWIFT_STORAGE_URL``
left undefined (as operators of the local store do) and ``[web] results_store = local``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil

import pytest

from tests.deploy import apache
from tests.deploy.test_apache import ARCH, PACKAGE, RUN_ID, Site, build_public_db, random_release, web_paths
from webcontrol import config as configmod

pytestmark = pytest.mark.skipif(apache.apache_available() is not None, reason=str(apache.apache_available()))

CONTAINER_PATH = f"h/{PACKAGE}/{RUN_ID}/log.gz"


@pytest.fixture(scope="module")
def local_site():
    release = random_release()
    base = apache.make_shared_tmpdir("autopkgtest-web-apache-local-")
    data, state, runtime, store = (base / name for name in ("data", "state", "runtime", "store"))
    for folder in (data, state, runtime, store):
        folder.mkdir()
    public_db = data / "autopkgtest.db"
    build_public_db(public_db, release)
    log_gz = gzip.compress(b"a local log\n" * 100)
    log_path = store / f"autopkgtest-{release}" / release / ARCH / CONTAINER_PATH
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(log_gz)
    (runtime / "running.json").write_text("{}")
    conf = base / "autopkgtest-cloud.conf"
    configmod.write(
        {
            "web": {
                **web_paths(data, public_db, runtime, state, release),
                "results_store": "local",
                "results_dir": str(store),
                "openid_provider": "http://127.0.0.1:9/",
                "launchpad_api": "http://127.0.0.1:9/",
            },
        },
        conf,
    )
    apache.give_to_apache_user([*apache.tree(base, data, state, runtime, store), conf])
    try:
        # No SWIFT_STORAGE_URL: the site's proxy section is left out.
        defines = {"CONF": str(conf), "PUBLIC_DB": str(public_db), "RUNNING_JSON": str(runtime / "running.json")}
        with apache.serving(base, defines) as server:
            site = Site(server, release, public_db, {})
            site.log_gz = log_gz
            yield site
    finally:
        if os.environ.get("AUTOPKGTEST_WEB_KEEP_APACHE_LOGS") is None:
            shutil.rmtree(base, ignore_errors=True)


def test_results_come_from_the_local_store(local_site):
    container = f"autopkgtest-{local_site.release}"
    name = f"{local_site.release}/{ARCH}/{CONTAINER_PATH}"
    status, headers, body = local_site.request("GET", f"/results/{container}/{name}", {"Accept-Encoding": "gzip"})
    assert status == 200, local_site.explain()
    # Stored gzip passed through as is, not compressed a second time by mod_deflate.
    assert headers["Content-Encoding"] == "gzip"
    assert body == local_site.log_gz
    status, _, listing = local_site.get(f"/results/{container}/?format=json")
    assert status == 200
    assert [item["name"] for item in json.loads(listing)] == [name]


def test_home_page_with_the_local_store(local_site):
    status, _, body = local_site.get("/")
    assert status == 200, local_site.explain()
    assert PACKAGE.encode() in body
