# SPDX-License-Identifier: GPL-3.0-or-later
import datetime
import logging

import pytest

from webcontrol import config as configmod


def write(tmp_path, text):
    path = tmp_path / "autopkgtest-cloud.conf"
    path.write_text(text)
    return str(path)


def test_keys_aliases_and_types(tmp_path):
    path = write(
        tmp_path,
        "[web]\ndatabase = /d.db\ndatabase_ro = /p.db\nSwiftURL = https://s/results\n"
        "releases = jammy, noble questing\nteam_cache_seconds = 60\n[amqp]\nuri = amqp://u:p@h\n",
    )
    config = configmod.load(path)
    assert config.get("web", "database_public") == "/p.db"
    assert config.get("web", "external_swift_url") == "https://s/results"
    assert config.get("web", "releases") == ["jammy", "noble", "questing"]
    assert config.get("web", "team_cache_seconds") == 60
    assert config.get("web", "running_expiry_seconds") == 300
    assert config.results_store == "local"
    assert config.pending_dir == config.state_dir / "github-pending"


def test_database_public_wins_over_ro_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "[web]\ndatabase_public = /a.db\ndatabase_ro = /b.db\n")
    with caplog.at_level(logging.WARNING):
        assert configmod.load(path).get("web", "database_public") == "/a.db"
    assert "both [web] database_public and database_ro" in caplog.text


def test_missing_and_malformed_keys_are_named(tmp_path):
    path = write(tmp_path, "[web]\nrequest_rate_limit = lots\n")
    with pytest.raises(configmod.ConfigError, match=r"\[web\] request_rate_limit = 'lots' is invalid"):
        configmod.load(path)
    config = configmod.load(write(tmp_path, "[web]\n"))
    with pytest.raises(configmod.ConfigError, match=r"missing required key \[amqp\] uri"):
        config.need("amqp", "uri")
    with pytest.raises(configmod.ConfigError, match="malformed configuration"):
        configmod.load(write(tmp_path, "no section header\n"))
    with pytest.raises(configmod.ConfigError, match=r"\[amqp\] queue_type = 'mirrored' is invalid: must be one of"):
        configmod.load(write(tmp_path, "[amqp]\nqueue_type = mirrored\n"))
    assert configmod.load(write(tmp_path, "[amqp]\nqueue_type = quorum\n")).get("amqp", "queue_type") == "quorum"
    assert configmod.load(write(tmp_path, "[amqp]\n")).get("amqp", "queue_type") == "classic"


def test_search_order(tmp_path, monkeypatch):
    path = write(tmp_path, "[web]\n")
    monkeypatch.setenv(configmod.ENV_VAR, "/from/process")
    assert configmod.find_config_path(None, {configmod.ENV_VAR: path}) == path
    assert configmod.find_config_path("/explicit", {configmod.ENV_VAR: path}) == "/explicit"
    assert configmod.find_config_path() == "/from/process"
    monkeypatch.delenv(configmod.ENV_VAR)
    monkeypatch.setattr(configmod, "SEARCH_PATHS", ("/nonexistent/a.conf",))
    with pytest.raises(configmod.ConfigError, match="no configuration file"):
        configmod.find_config_path()


def test_releases_configured_wins_then_distro_info_then_db(tmp_path):
    configured = configmod.from_dict({"web": {"releases": "noble resolute"}})
    assert configured.supported_releases(["x"]) == ["noble", "resolute"]
    plain = configmod.from_dict({"web": {}})
    found = plain.supported_releases(["x"], today=datetime.date(2024, 6, 1))
    assert "jammy" in found and "noble" in found and found.index("jammy") < found.index("noble")
    assert configmod.distro_info_releases(datetime.date(2024, 6, 1))[-1] == "oracular"


def test_swift_store_selected_by_auth_url():
    assert configmod.from_dict({"swift": {"os_auth_url": "http://k/v3"}}).results_store == "swift"
    with pytest.raises(configmod.ConfigError):
        _ = configmod.from_dict({"web": {"results_store": "s3"}}).results_store


def test_example_config_documents_every_key_and_loads():
    from pathlib import Path

    example = Path(__file__).parents[2] / "autopkgtest-cloud.conf.example"
    text = example.read_text()
    undocumented = [f"[{s.section}] {s.key}" for s in configmod.SETTINGS if f"{s.key} =" not in text]
    assert undocumented == []
    config = configmod.load(str(example))
    assert config.results_store == "swift"
    assert config.get("web", "allowed_requestors") == ["autopkgtest-requestors", "canonical-ubuntu-qa"]
