# SPDX-License-Identifier: GPL-3.0-or-later
"""Every validation rule of docs/formats.rst, Validation order with its status and exact message, through the real app."""

from __future__ import annotations

import html
import re
import urllib.parse

import pytest

from tests.fakes.fixtures import login
from tests.fakes.site import ALLOWED_TEAM, SITE_URL


def query(**params) -> str:
    items = []
    for key, value in params.items():
        key = key.replace("_", "-")
        for item in value if isinstance(value, list) else [value]:
            items.append((key, item))
    return urllib.parse.urlencode(items)


def messages_of(response) -> list[str]:
    """The error lines of a request.cgi page, unescaped once (as a browser shows them)."""
    text = response.get_data(as_text=True)
    first = re.search(r"<p>You submitted an invalid request: (.*?)</p>", text, re.S)
    assert first, text
    lines = [first.group(1)]
    after = text[first.end() :]
    lines += re.findall(r"<p>(.*?)</p>", after.split("</main>")[0], re.S)
    return [html.unescape(line) for line in lines]


def ask(client, **params):
    return client.get("/request.cgi?" + query(**params))


@pytest.fixture
def valid(site, launchpad):
    """A logged-in uploader of hello with hello/1.0 published in the site's release."""
    launchpad.state.publish("hello", "1.0", site.release)
    launchpad.state.publish("gzip", "1.12-1", site.release, component="universe")
    launchpad.state.uploaders.add(("joe", "hello"))
    return {"release": site.release, "arch": "amd64", "package": "hello", "trigger": "hello/1.0"}


def expect(client, status: int, message: str, **params):
    response = ask(client, **params)
    assert response.status_code == status, response.get_data(as_text=True)
    assert "\n".join(messages_of(response)) == message
    return response


def test_missing_args_lists_keys_and_example(client, valid):
    login(client)
    params = dict(valid)
    del params["trigger"]
    example = f"<{SITE_URL}/request.cgi/?release=release&arch=arch&package=pkg&trigger=trigger1&trigger=trigger2>"
    expect(
        client,
        400,
        f"You have passed invalid args: release, arch, package\nPlease see an example url below:\n{example}",
        **params,
    )
    # The example URL is shown escaped once, never raw HTML.
    response = ask(client, **params)
    assert "&lt;https://" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"delete": "1"}, "Invalid argument delete"),
        ({"swiftuser": "x"}, "Invalid argument swiftuser"),
        ({"test-git": "https://x"}, "Invalid argument test-git"),
        ({"requester": "bob"}, "Invalid argument requester"),
        ({"env": "A=1"}, "Invalid argument env"),
        ({"build-git": "https://x"}, "Invalid argument build-git"),
        ({"testname": "t"}, "Invalid argument testname"),
        ({"all-proposed": "yes"}, "Invalid all-proposed value"),
        ({"readable-by": ""}, "Invalid readable-by value"),
    ],
)
def test_argument_rules(client, valid, extra, message):
    login(client)
    expect(client, 400, message, **valid, **extra)


def test_migration_reference_rules(client, valid):
    login(client)
    base = dict(valid, trigger="migration-reference/0")
    expect(
        client,
        400,
        "migration-reference/0 and all-proposed=1 are not compatible arguments.",
        **base,
        all_proposed="1",
    )
    expect(
        client,
        400,
        "Cannot use additional triggers with migration-reference/0",
        **dict(base, trigger=["migration-reference/0", "hello/1.0"]),
    )
    expect(client, 400, "Cannot use PPAs with migration-reference/0", **base, ppa="joe/ppa")


@pytest.mark.parametrize(
    "trigger,message",
    [
        ("hello", "Malformed trigger, must be srcpackage/version"),
        ("hello/1/2", "Malformed trigger, must be srcpackage/version"),
        ("Hello/1.0", "Malformed trigger: Hello\nversion: 1.0"),
        ("hello/1.0$", "Malformed trigger: hello\nversion: 1.0$"),
        ("hello/<b>", "Malformed trigger: hello\nversion: <b>"),
        ("linux-meta-raspi/1.0", "The raspi kernel can't be tested with autopkgtest."),
    ],
)
def test_trigger_rules(client, valid, trigger, message):
    login(client)
    response = expect(client, 400, message, **dict(valid, trigger=trigger))
    assert "<b>" not in response.get_data(as_text=True)


def test_release_arch_package_not_found(client, valid, launchpad):
    login(client)
    expect(client, 404, "release zesty not found", **dict(valid, release="zesty"))
    expect(client, 404, "arch riscv64 not found", **dict(valid, arch=["amd64", "riscv64"]))
    expect(client, 404, "package Hello_World not found", **dict(valid, package="Hello_World"))
    # Checks 1-13 never ask Launchpad.
    assert launchpad.state.calls == []


def test_ppa_not_found(client, valid, launchpad):
    login(client)
    expect(client, 404, "ppa joe/nope not found", **valid, ppa="joe/nope")
    expect(client, 404, "ppa Joe/x not found", **valid, ppa="Joe/x")
    expect(client, 404, "ppa joe not found", **valid, ppa="joe")


def test_no_test_results(client, valid, launchpad):
    login(client)
    launchpad.state.teams["joe"] = ["ubuntu-dev"]
    launchpad.state.publish("newpkg", "1", valid["release"])
    launchpad.state.uploaders.add(("joe", "newpkg"))
    expect(
        client,
        404,
        "package newpkg does not have any test results",
        **dict(valid, package="newpkg", trigger="newpkg/1"),
    )


def test_team_member_may_request_untested_package(client, valid, launchpad, site, amqp_uri):
    login(client, "ann")
    launchpad.state.teams["ann"] = ["a", "b", "c", ALLOWED_TEAM]  # third page with page_size 2
    launchpad.state.publish("newpkg", "1", valid["release"])
    response = ask(client, **dict(valid, package="newpkg", trigger="newpkg/1"))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_not_published(client, valid, launchpad):
    login(client)
    expect(client, 400, f"hello/9 is not published in {valid['release']}", **dict(valid, trigger="hello/9"))
    launchpad.state.ppas.add(("joe", "ppa"))
    expect(
        client,
        400,
        f"hello/1.0 is not published in PPA joe/ppa {valid['release']}",
        **valid,
        ppa="joe/ppa",
    )
    # The package itself must be published (without PPAs).
    launchpad.state.uploaders.add(("joe", "libpng1.6"))
    expect(
        client,
        400,
        f"libpng1.6 is not published in {valid['release']}",
        **dict(valid, package="libpng1.6"),
    )


def test_permission_denied(client, valid, launchpad):
    login(client, "mallory")
    expect(
        client,
        403,
        "You are not allowed to upload hello or hello/1.0,gzip/1.12-1 to Ubuntu, "
        "thus you are not allowed to use this service.",
        **dict(valid, trigger="hello/1.0 gzip/1.12-1"),
    )


def test_upload_right_on_trigger_suffices(client, valid, launchpad):
    login(client, "gzipper")
    launchpad.state.uploaders.add(("gzipper", "gzip"))
    response = ask(client, **dict(valid, trigger=["hello/1.0", "gzip/1.12-1"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    # checkUpload for gzip used its component from the archive.
    calls = [urllib.parse.unquote(call) for call in launchpad.state.calls]
    assert any('component="universe"' in call and "gzip" in call for call in calls)


def test_package_requestors_rule(client, valid, launchpad, site):
    site.set("web", "package_requestors", "hello:snappy-m-o")
    from webcontrol.web.request import create_app

    client = create_app(site.config).test_client()
    login(client, "snappy-m-o")
    assert ask(client, **valid).status_code == 200


@pytest.mark.parametrize("failure", ["500", "html", "timeout"])
def test_launchpad_failure_is_503(client, valid, launchpad, failure):
    login(client, "mallory")
    client.application.extensions["autopkgtest-request"].launchpad.timeout = 1.0
    launchpad.state.fail = failure
    expect(client, 503, "Launchpad is not responding, please try again later.", **valid)


def test_team_lookup_failure_is_503(client, valid, launchpad):
    """A Launchpad error in the team check (after the publication checks) is a 503, not a crash."""
    login(client, "mallory")
    launchpad.state.teams["mallory"] = ["x"]
    launchpad.state.page_size = 1
    real = launchpad.collection

    def broken(request, names):
        return 500, "boom"

    launchpad.collection = broken
    try:
        expect(client, 503, "Launchpad is not responding, please try again later.", **valid)
    finally:
        launchpad.collection = real


def test_every_failure_is_4xx_never_500(client, valid):
    login(client)
    for bad in [
        "trigger=%FF%FE",
        "release=&arch=&package=&trigger=",
        "arch=amd64&arch=&release=x&package=y&trigger=a/1",
    ]:
        response = client.get("/request.cgi?" + bad)
        assert 400 <= response.status_code < 500, (bad, response.status_code)


def test_checks_run_in_contract_order(client, valid, site, launchpad):
    """With several faults, the earliest check (docs/formats.rst, Validation order) answers; removing it reveals the next."""
    login(client, "mallory")
    params = {"trigger": "migration-reference/0", "ppa": "nobody/none"}
    running = {"triggers": ["migration-reference/0"], "ppas": ["nobody/none"]}
    site.write_running({"hello": {"k": {site.release: {"amd64": [running, 1, ""]}}}})
    item = 'hello\n{"ppas": ["nobody/none"], "triggers": ["migration-reference/0"]}'
    queues = {"ubuntu": {site.release: {"amd64": {"size": 1, "requests": [item]}}}}
    site.write_queued({"queues": queues})
    steps = [
        (
            {"release": None, "bogus": "1"},
            400,
            "You have passed invalid args: arch, package, trigger, ppa, bogus\nPlease see an example url below:\n"
            f"<{SITE_URL}/request.cgi/?release=release&arch=arch&package=pkg&trigger=trigger1&trigger=trigger2>",
        ),
        ({"bogus": "1", "all-proposed": "2"}, 400, "Invalid argument bogus"),
        ({"all-proposed": "2"}, 400, "Invalid all-proposed value"),
        ({"all-proposed": "1"}, 400, "migration-reference/0 and all-proposed=1 are not compatible arguments."),
        ({}, 400, "Cannot use PPAs with migration-reference/0"),
    ]
    for change, status, message in steps:
        query_params = {**valid, **params, **change}
        query_params = {k: v for k, v in query_params.items() if v is not None}
        expect(client, status, message, **query_params)
    base = {**valid, "trigger": "hello/1.0", "ppa": "nobody/none"}
    site.write_running(
        {"hello": {"k": {site.release: {"amd64": [{"triggers": ["hello/1.0"], "ppas": ["nobody/none"]}, 1, ""]}}}}
    )
    site.write_queued(
        {
            "queues": {
                "ubuntu": {
                    site.release: {
                        "amd64": {
                            "size": 1,
                            "requests": ['hello\n{"ppas": ["nobody/none"], "triggers": ["hello/1.0"]}'],
                        }
                    }
                }
            }
        }
    )
    expect(
        client, 400, "Malformed trigger: hello\nversion: 1.0!", **{**base, "trigger": "hello/1.0!", "release": "zesty"}
    )
    expect(client, 404, "release zesty not found", **{**base, "release": "zesty", "arch": "riscv64"})
    expect(client, 404, "arch riscv64 not found", **{**base, "arch": "riscv64", "package": "Bad"})
    dup = f"release: {site.release}\npkg: hello\narch: amd64\ntriggers: hello/1.0"
    expect(client, 403, "Test already running:\n" + dup, **base)
    site.write_running({})
    expect(client, 403, "Test already queued:\n" + dup, **base)
    assert launchpad.state.calls == []  # checks 1-13 never ask Launchpad
    site.write_queued({})
    expect(client, 404, "ppa nobody/none not found", **base)
    del base["ppa"]
    expect(client, 404, "package gnu-hello does not have any test results", **{**base, "package": "gnu-hello"})
    expect(
        client,
        403,
        "You are not allowed to upload hello or hello/1.0 to Ubuntu, thus you are not allowed to use this service.",
        **base,
    )


def test_ppa_credentials_never_echoed(client, valid):
    login(client)
    response = ask(client, **valid, ppa="joe:s3cr3t-token@joe/private")
    assert response.status_code == 404
    assert messages_of(response) == ["ppa joe/private not found"]
    assert "s3cr3t" not in response.get_data(as_text=True)
