# SPDX-License-Identifier: GPL-3.0-or-later
"""britney's recorded retry links (tests/data/client-data/SOURCES.md): every request.cgi URL in update_excuses parses and passes
the syntax checks (docs/formats.rst, Validation order), and a sample queues exactly the request the link describes."""

from __future__ import annotations

import lzma
import random
import re
import secrets
import urllib.parse
from pathlib import Path

import pytest

from tests.fakes.fixtures import drain, login
from tests.fakes.site import ALLOWED_TEAM, SITE_URL, make_site
from webcontrol import db
from webcontrol.messages import TestRequest
from webcontrol.web.request import create_app
from webcontrol.web.request.validation import Environment, RequestArgs, check_local, check_syntax

DATA = Path(__file__).parents[1] / "data" / "client-data" / "visual-excuses"
LINK_RE = re.compile(r"https?://[^\s'\"]*/request\.cgi\?[^\s'\"]+")


def links(name: str) -> list[str]:
    with lzma.open(DATA / name) as handle:
        text = handle.read().decode("utf-8")
    return LINK_RE.findall(text)


def parsed(url: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)


ALL = links("update_excuses.yaml.xz")
LIGHT = links("update_excuses_light.yaml.xz")


def test_recorded_link_counts():
    assert len(ALL) == 1228
    assert len(LIGHT) == 24


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A public DB holding every (package, release, arch) the links name."""
    rows = set()
    for url in ALL + LIGHT:
        args = dict(parsed(url))
        rows.add((args["package"], args["release"], args["arch"]))
    root = tmp_path_factory.mktemp("excuses")
    releases = sorted({r for _p, r, _a in rows})
    site = make_site(
        root / "site", releases[-1], sorted(rows), "http://127.0.0.1:9/", None, extra_releases=releases[:-1]
    )
    return site


def test_every_link_passes_the_syntax_checks(seeded):
    conn = db.connect_ro(seeded.values["web"]["database_public"])
    env = Environment(
        db=conn,
        releases=seeded.values["web"]["releases"].split(),
        running={},
        queued={},
        launchpad=None,
        membership=None,
        package_requestors={},
        site=SITE_URL,
    )
    try:
        for url in ALL + LIGHT:
            plan = check_syntax(RequestArgs(parsed(url)), SITE_URL)
            check_local(plan, env)
            assert plan.params["triggers"] and len(plan.arches) == 1
    finally:
        conn.close()


@pytest.fixture
def excuses_app(tmp_path, launchpad, amqp_uri, amqp_names, openid_provider):
    sample = sorted(set(LIGHT)) + random.Random(4).sample(sorted(set(ALL)), 30)
    rows, published = set(), set()
    for url in sample:
        args = parsed(url)
        first = dict(args)
        rows.add((first["package"], first["release"], first["arch"]))
        published.add((first["package"], None, first["release"]))
        for _key, value in (a for a in args if a[0] == "trigger"):
            for trigger in value.split():
                source, version = trigger.split("/")
                published.add((source, version, first["release"]))
    releases = sorted({r for _p, r, _a in rows})
    site = make_site(
        tmp_path / "site",
        releases[-1],
        sorted(rows),
        launchpad.url,
        amqp_uri,
        openid_provider.url,
        extra_releases=releases[:-1],
    )
    for source, version, release in published:
        launchpad.state.publish(source, version or "0", release)
        if version:
            launchpad.state.publish(source, version, release)
    launchpad.state.teams["archive-admin"] = [ALLOWED_TEAM]
    app = create_app(site.config)
    prefix = f"t-{secrets.token_hex(4)}-"
    app.extensions["autopkgtest-request"].queue_prefix = prefix
    for _p, release, arch in rows:
        amqp_names.queues.append(f"{prefix}debci-{release}-{arch}")
    return app, prefix, sample


def test_sample_links_queue_what_they_describe(excuses_app, amqp_uri):
    app, prefix, sample = excuses_app
    client = app.test_client()
    login(client, "archive-admin")
    for url in sample:
        split = urllib.parse.urlsplit(url)
        response = client.get(f"{split.path}?{split.query}")
        assert response.status_code == 200, (url, response.get_data(as_text=True))
        args = parsed(url)
        first = dict(args)
        (raw,) = drain(amqp_uri, f"{prefix}debci-{first['release']}-{first['arch']}")
        request = TestRequest.parse(raw)
        triggers = [t for k, v in args if k == "trigger" for t in v.split()]
        assert request.package == first["package"]
        assert {k: v for k, v in request.params.items() if k not in ("submit-time", "uuid")} == {
            "triggers": triggers,
            "requester": "archive-admin",
        }
