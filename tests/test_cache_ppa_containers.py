# SPDX-License-Identifier: GPL-3.0-or-later
"""cache-ppa-containers with the local store and with a real Swift."""

from __future__ import annotations

import json
import os
import stat
import uuid

import pytest

from tests.services.swift import unreachable_config_section
from webcontrol.config import write
from webcontrol.services import cache_ppa_containers
from webcontrol.store.local import LocalStore


def run(conf) -> int:
    return cache_ppa_containers.main(["--config", str(conf)])


def test_ppa_container_filter():
    names = [
        "autopkgtest-noble",
        "autopkgtest-noble-joe-myppa",
        "autopkgtest-jammy-joe-my-ppa",
        "autopkgtest-jammy-joe",
        "private-autopkgtest-noble-joe-secret",
        "db-backups",
        "autopkgtest",
    ]
    assert cache_ppa_containers.ppa_containers(names) == [
        "autopkgtest-jammy-joe",
        "autopkgtest-jammy-joe-my-ppa",
        "autopkgtest-noble-joe-myppa",
    ]


def test_local_store_listing_written_atomically(tmp_path):
    store = LocalStore(tmp_path / "results")
    for name in (
        "autopkgtest-noble",
        "autopkgtest-noble-joe-myppa",
        "autopkgtest-jammy-joe-myppa",
        "private-autopkgtest-noble-joe-x",
        "db-backups",
    ):
        store.put_object(name, "o", b"")
    cache = tmp_path / "run" / "cache"
    conf = tmp_path / "site.conf"
    write({"web": {"results_dir": str(tmp_path / "results"), "ppa_containers_cache_dir": str(cache)}}, conf)
    assert run(conf) == 0
    target = cache / "ppa_containers.json"
    assert json.loads(target.read_text()) == ["autopkgtest-jammy-joe-myppa", "autopkgtest-noble-joe-myppa"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert os.listdir(cache) == ["ppa_containers.json"]  # no temp file left behind


@pytest.fixture
def swift_conf(tmp_path, swift_server):
    conf = tmp_path / "site.conf"
    write({"web": {"ppa_containers_cache_dir": str(tmp_path)}, "swift": swift_server.config_section()}, conf)
    return conf


def test_swift_listing_is_paged_to_the_end(swift_conf, swift_store, monkeypatch):
    owner = f"o{uuid.uuid4().hex[:8]}"
    ours = [f"autopkgtest-{rel}-{owner}-ppa{n}" for rel in ("jammy", "noble") for n in range(3)]
    for name in [*ours, f"autopkgtest-x{owner}", f"private-autopkgtest-noble-{owner}-p"]:
        swift_store.put_object(name, "o", b"")
    monkeypatch.setattr("webcontrol.store.swift.PAGE_LIMIT", 2)  # force many account pages
    assert run(swift_conf) == 0
    written = json.loads((swift_conf.parent / "ppa_containers.json").read_text())
    assert written == sorted(written)
    assert [name for name in written if owner in name] == sorted(ours)


def test_swift_down_keeps_the_previous_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("webcontrol.store.swift.STARTING_BACKOFF", 0.01)
    monkeypatch.setattr("webcontrol.store.swift.MAX_BACKOFF", 0.02)
    conf = tmp_path / "site.conf"
    write({"web": {"ppa_containers_cache_dir": str(tmp_path)}, "swift": unreachable_config_section()}, conf)
    target = tmp_path / "ppa_containers.json"
    target.write_text('["autopkgtest-noble-old-ppa"]')
    assert run(conf) == 1
    assert "cannot reach" in capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(target.read_text()) == ["autopkgtest-noble-old-ppa"]


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        cache_ppa_containers.main(["--help"])
    assert done.value.code == 0
    assert "ppa_containers.json" in capsys.readouterr().out
