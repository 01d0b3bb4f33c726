# SPDX-License-Identifier: GPL-3.0-or-later
"""Machine endpoints: /results/ from the local store, the public DB pair, live-state JSON, /health."""

from __future__ import annotations

import hashlib
import json
import os
import time

from tests.browse import site as sitemod

CHRONY = sitemod.LOGS["results-chrony-armhf.log.gz"]


def test_recorded_logs_served_byte_identical_with_gzip_encoding(client):
    for name, (container, directory) in sitemod.LOGS.items():
        response = client.get(f"/results/{container}/{directory}/log.gz")
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
        expected = (sitemod.DATA / "ppa-dev-tools" / name).read_bytes()
        assert response.get_data() == expected
        assert int(response.headers["Content-Length"]) == len(expected)


def test_other_objects_are_octet_stream_without_encoding(client):
    container, directory = CHRONY
    response = client.get(f"/results/{container}/{directory}/artifacts.tar.gz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in response.headers
    assert response.get_data() == b"\x1f\x8b artifacts"


def test_plain_listing_and_delimiter_paging(client):
    container, directory = CHRONY
    response = client.get(f"/results/{container}/?format=plain")
    assert response.status_code == 200
    names = response.get_data(as_text=True).splitlines()
    assert names == sorted(names) and f"{directory}/log.gz" in names
    assert client.get(f"/results/{container}").get_data(as_text=True).splitlines() == names
    prefix = "noble/armhf/c/chrony/"
    response = client.get(f"/results/{container}/?delimiter=@&prefix={prefix}")
    assert response.get_data(as_text=True) == f"{directory}@\n".replace("@@", "@")
    marker = f"{prefix}20240326_184806_3f2a1@"
    assert client.get(f"/results/{container}/?delimiter=@&prefix={prefix}&marker={marker}").status_code == 204


def test_json_listing_limit_and_markers(client):
    container, directory = CHRONY
    rows = client.get(f"/results/{container}?format=json").get_json()
    assert [row["name"] for row in rows] == sorted(row["name"] for row in rows)
    assert all(row["bytes"] >= 0 and "last_modified" in row for row in rows)
    first = client.get(f"/results/{container}?limit=1").get_data(as_text=True).strip()
    after = client.get(f"/results/{container}?marker={first}").get_data(as_text=True).splitlines()
    assert first not in after and len(after) == len(rows) - 1
    assert client.get(f"/results/{container}?limit=10001").status_code == 412
    subdirs = client.get(f"/results/{container}?format=json&delimiter=/").get_json()
    assert subdirs == [{"subdir": "noble/"}]


def test_listing_status_codes(client):
    assert client.get("/results/autopkgtest-empty").status_code == 204
    assert client.get("/results/autopkgtest-no-such-container").status_code == 401
    assert client.get("/results/autopkgtest-no-such-container/x/log.gz").status_code == 401
    container, directory = CHRONY
    assert client.get(f"/results/{container}/{directory}/missing.txt").status_code == 404


def test_path_traversal_refused(client, site):
    (site.root / "secret.txt").write_text("secret")
    for path in (
        "/results/autopkgtest-noble/../../secret.txt",
        "/results/autopkgtest-noble/%2e%2e/%2e%2e/secret.txt",
        "/results/..%2fsecret.txt",
        "/results/autopkgtest-noble/noble/..%2f..%2f..%2fsecret.txt",
    ):
        response = client.get(path)
        assert response.status_code in (400, 401, 404), path
        assert b"secret" not in response.get_data().replace(b"secret.txt", b""), path


def test_public_db_pair_full_gets(client, site):
    response = client.get("/static/autopkgtest.db")
    body = response.get_data()
    assert response.status_code == 200 and body == site.public_db.read_bytes()
    assert int(response.headers["Content-Length"]) == len(body) and response.headers["Last-Modified"]
    digest = client.get("/static/autopkgtest.db.sha256")
    assert digest.get_data(as_text=True).strip() == hashlib.sha256(body).hexdigest()
    assert digest.headers["Last-Modified"]


def test_running_json_raw_and_missing(client, site, app):
    response = client.get("/static/running.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_data() == (site.root / "cache" / "running.json").read_bytes()
    recorded = json.loads((sitemod.DATA / "ubuntu-dev-tools/test_running_autopkgtests.RUN_DATA.json").read_text())
    served = response.get_json()
    for package, value in recorded.items():
        assert served[package] == value


def test_queue_json_endpoints(client, site):
    queues = client.get("/queues.json").get_json()
    assert queues["ubuntu"]["noble"]["amd64"][1] == "private job"
    assert queues["ubuntu"]["noble"]["amd64"][0].startswith("hello\n{")
    assert queues["ppa"]["jammy"]["s390x"] == []
    sizes = client.get("/queue_size.json").get_json()
    assert sizes["ubuntu"]["noble"]["amd64"] == 3 and sizes["huge"]["noble"]["arm64"] == 1
    raw = client.get("/queued.json")
    assert raw.get_data() == (site.root / "cache" / "queued.json").read_bytes()


def test_queue_json_keeps_the_order_of_queued_json(client, site):
    """Contexts ubuntu, huge, ppa, upstream and releases in config order, not sorted keys."""
    source = json.loads((site.root / "cache" / "queued.json").read_text())["queues"]
    for path in ("/queues.json", "/queue_size.json"):
        served = json.loads(client.get(path).get_data())
        assert list(served) == list(source) == ["ubuntu", "huge", "ppa", "upstream"]
        for context in served:
            assert list(served[context]) == list(source[context])


def test_health_reports_ages_and_503_when_stale(client, site):
    # The site is built once per session: on a slow run its live files are already older than /health allows.
    fresh = [path for path in site.root.rglob("*") if path.is_file() and path.suffix in (".json", ".db")]
    stamps = {path: os.stat(path) for path in fresh}
    for path in fresh:
        os.utime(path)
    try:
        data = client.get("/health").get_json()
        assert set(data["files"]) == {"public_db", "running", "queued", "stats"}
        assert data["ok"] is True and client.get("/health").status_code == 200
        old = time.time() - 1000
        queued = site.root / "cache" / "queued.json"
        os.utime(queued, (old, old))
        response = client.get("/health")
        assert response.status_code == 503
        files = response.get_json()["files"]
        assert files["queued"]["ok"] is False and files["queued"]["age_seconds"] >= 1000
        assert files["queued"]["max_age_seconds"] == 120 and files["running"]["ok"] is True
    finally:
        for path, stamp in stamps.items():
            os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_db_download_survives_a_publish_in_the_middle(app, site, tmp_path):
    """publish-db renames a new DB over the old one; a GET already started serves the old file whole."""
    import shutil

    from werkzeug.test import Client

    backup = tmp_path / "backup.db"
    shutil.copyfile(site.public_db, backup)
    old = site.public_db.read_bytes()
    client = Client(app)
    response = client.get("/static/autopkgtest.db", buffered=False)
    try:
        new = tmp_path / "new.db"
        new.write_bytes(b"SQLite format 3\x00" + b"x" * 100)
        os.replace(new, site.public_db)
        body = b"".join(response.response)
        assert body == old and int(response.headers["Content-Length"]) == len(old)
    finally:
        response.close()
        shutil.copyfile(backup, site.public_db)


def test_links_follow_x_forwarded_proto_when_site_url_unset(tmp_path, site):
    from webcontrol import config as configmod
    from webcontrol.web.browse import create_app

    configmod.write(
        {"web": {"database_public": str(site.public_db), "state_dir": str(tmp_path), "releases": "noble"}},
        tmp_path / "c.conf",
    )
    client = create_app(configmod.load(str(tmp_path / "c.conf"))).test_client()
    page = client.get("/packages/hello", headers={"X-Forwarded-Proto": "https", "Host": "tests.example.org"})
    assert 'href="https://tests.example.org/packages/h/hello/noble/amd64"' in page.get_data(as_text=True)
