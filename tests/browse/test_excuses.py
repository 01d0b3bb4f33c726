# SPDX-License-Identifier: GPL-3.0-or-later
"""History links written by britney and the excuses tools route to history pages (tests/data/client-data/SOURCES.md)."""

from __future__ import annotations

import lzma
import random
import re

import pytest

from tests.browse import site as sitemod
from webcontrol import results

LINK = re.compile(r"https://autopkgtest\.ubuntu\.com(/packages/[^\s\"'<>]+)")
LOG = re.compile(r"https://autopkgtest\.ubuntu\.com/results/(autopkgtest-[^/\s\"'<>]+)/([^\s\"'<>]+)/log\.gz")


def _links(text: str) -> list[str]:
    return sorted(set(LINK.findall(text)))


def _texts():
    visual = sitemod.DATA / "visual-excuses"
    yield (
        "update_excuses_light.yaml.xz",
        lzma.decompress((visual / "update_excuses_light.yaml.xz").read_bytes()).decode(),
    )
    yield "update_excuses.yaml.xz", lzma.decompress((visual / "update_excuses.yaml.xz").read_bytes()).decode()
    yield "base-files_excuses.yaml", (sitemod.DATA / "ubuntu-excuses-data" / "base-files_excuses.yaml").read_text()


@pytest.mark.parametrize("name,text", list(_texts()), ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "")
def test_every_history_link_routes_to_a_history_page(app, name, text):
    links = _links(text)
    assert links, name
    adapter = app.url_map.bind("autopkgtest.ubuntu.com")
    for path in links:
        endpoint, args = adapter.match(path)
        assert endpoint == "packages.packages4", path
        assert args["a"] == results.srchash(args["b"]), path  # prefix form: (pkg, rel, arch)
    # And a sample really answers with a history page.
    client = app.test_client()
    for path in random.Random(4).sample(links, min(40, len(links))):
        data = client.get("/api/v1" + path).get_json()
        assert data["page"] == "history", path


def test_log_links_follow_the_store_layout():
    for _name, text in _texts():
        for container, directory in LOG.findall(text):
            parsed = results.parse_run_dir(directory)
            assert parsed is not None, directory
            release = parsed[0]
            assert container == f"autopkgtest-{release}" or container.startswith(f"autopkgtest-{release}-")


def test_running_entries_link_to_running():
    text = (sitemod.DATA / "ubuntu-excuses-data" / "base-files_excuses.yaml").read_text()
    if "RUNNING" in text:
        assert "https://autopkgtest.ubuntu.com/running" in text
