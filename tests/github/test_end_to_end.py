# SPDX-License-Identifier: GPL-3.0-or-later
"""Signed PR webhook → real broker queue → worker-style result in real Swift → update-github-jobs →
the fake GitHub saw pending then success (or failure)."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.fakes.fixtures import drain
from tests.github.test_webhook import PPA, PROJECT, SECRET, deliver, hook_query, payload
from webcontrol import config as configmod
from webcontrol import github, resulttar
from webcontrol.messages import TestRequest
from webcontrol.services import update_github_jobs
from webcontrol.web.request import create_app


@pytest.fixture
def swift_site(site, launchpad, fake_github, swift_server, tmp_path):
    launchpad.state.ppas.add(tuple(PPA.split("/")))
    site.write_github({PROJECT: SECRET}, [f"{PROJECT}:ci-bot:tok123"])
    site.set("web", "results_store", "swift")
    site.set("web", "external_swift_url", "https://results.example.com")
    site.values["swift"] = swift_server.config_section()
    path = tmp_path / "autopkgtest-cloud.conf"
    configmod.write(site.values, path)
    return site, path


def act_as_worker(store, release: str, arch: str, raw: bytes, exitcode: int, run_id: str) -> str:
    """Write result.tar and log.gz as a worker does for the request it took off the queue."""
    request = TestRequest.parse(raw)
    container = f"autopkgtest-{release}-{request.params['ppas'][-1].replace('/', '-')}"
    run_dir = f"{release}/{arch}/{request.package[0]}/{request.package}/{run_id}"
    env = ["ADT_TEST_TRIGGERS="] + request.params["env"]
    testinfo = {"custom_environment": env, "testname": request.params.get("testname"), "uuid": request.params["uuid"]}
    command = " ".join(f"--env={item}" for item in env)
    log = f"autopkgtest [10:00:00]: command line: autopkgtest {command} -- lxd\n"
    store.put_object(container, f"{run_dir}/log.gz", gzip.compress(log.encode()), "text/plain; charset=UTF-8", "gzip")
    store.put_object(container, f"{run_dir}/result.tar", resulttar.build(exitcode, request.package, "1", 9, testinfo))
    return f"{container}/{run_dir}"


def test_pull_requests_end_to_end(swift_site, swift_store, fake_github, amqp_uri):
    site, config_path = swift_site
    client = create_app(site.config).test_client()
    shas = {"pass": "1" * 40, "fail": "2" * 40}
    objects = {}
    for number, (outcome, sha) in enumerate(shas.items(), start=100):
        body = json.dumps(payload(fake_github, number=number, sha=sha)).encode()
        response = deliver(client, hook_query(site), body, path="/github/webhook")
        assert response.status_code == 200, response.get_data(as_text=True)
        (raw,) = drain(amqp_uri, f"debci-upstream-{site.release}-amd64")
        objects[sha] = act_as_worker(
            swift_store,
            site.release,
            "amd64",
            raw,
            0 if outcome == "pass" else 4,
            f"20300101_00000{number % 10}_abcde@",
        )
    assert fake_github.states() == ["pending", "pending"]

    assert update_github_jobs.main(["--config", str(config_path)]) == 0
    assert fake_github.states(shas["pass"]) == ["pending", "success"]
    assert fake_github.states(shas["fail"]) == ["pending", "failure"]
    final = fake_github.statuses[-1].body
    assert final["target_url"] == f"https://results.example.com/{objects[shas['fail']]}/log.gz"
    assert list(github.PendingJobs(site.config.pending_dir)) == []
    # Nothing left to do: a second run posts nothing.
    assert update_github_jobs.main(["--config", str(config_path)]) == 0
    assert len(fake_github.statuses) == 4
