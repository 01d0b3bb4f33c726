# SPDX-License-Identifier: GPL-3.0-or-later
"""Every browse route with every combination of its filters and paging parameters.

Shared by the plan test (tests/browse/test_route_plans.py) and the
production-size check (bench/plan_check.py), so both walk the same list.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass

from webcontrol import newest, results


@dataclass(frozen=True)
class Names:
    """Values of the DB under test the URLs are made of."""

    package: str  # with a long history on release/arch
    release: str
    arch: str
    heavy_user: str
    light_user: str
    deep_before: str  # a run id deep in the package's history and in /recent
    uuid: str
    trigger: str  # source/version of a trigger some results have


def _query(**params) -> str:
    kept = {key: value for key, value in params.items() if value is not None}
    return ("?" + urllib.parse.urlencode(kept)) if kept else ""


def recent_urls(names: Names) -> list[str]:
    urls = []
    releases = (None, names.release, "nosuchrelease")
    arches = (None, names.arch, "nosucharch")
    users = (None, names.heavy_user, names.light_user, "nobody")
    outcomes = (None, *results.FILTERABLE_RESULTS)
    pagings = ({}, {"offset": newest.OFFSET_MAX}, {"before": names.deep_before})
    for release, arch, user, result, paging in itertools.product(releases, arches, users, outcomes, pagings):
        urls.append("/api/v1/recent" + _query(release=release, arch=arch, user=user, result=result, **paging))
    # Classification (from the classification index) with every other filter; always_failed is the rarest.
    for classification, release, arch, user, result, paging in itertools.product(
        ("regression", "flaky", "always_failed"),
        (None, names.release),
        (None, names.arch),
        (None, names.heavy_user, names.light_user),
        (None, "fail", "pass"),
        pagings,
    ):
        query = _query(classification=classification, release=release, arch=arch, user=user, result=result, **paging)
        urls.append("/api/v1/recent" + query + "&limit=10")
    urls += ["/recent", "/recent?limit=10000", "/api/experimental/recent.json", f"/recent?arch={names.arch}&limit=10"]
    return urls


def user_urls(names: Names) -> list[str]:
    urls = []
    shows = ({}, {"only-results": "1"}, {"show-results": "false"})
    pagings = ({}, {"offset": newest.OFFSET_MAX}, {"before": names.deep_before}, {"limit": 10000})
    for user, show, paging in itertools.product((names.heavy_user, names.light_user, "nobody"), shows, pagings):
        urls.append(f"/api/v1/user/{user}/" + _query(**show, **paging))
    return urls + [f"/user/{names.heavy_user}/"]


def package_urls(names: Names) -> list[str]:
    prefix = results.srchash(names.package)
    page = f"/packages/{prefix}/{names.package}/{names.release}/{names.arch}"
    return [
        f"/packages/{names.package}",
        f"/packages/{prefix}/{names.package}",
        f"/packages/{prefix}/{names.package}/{names.release}",
        "/packages/nosuchpackage",
        f"/api/v1/packages/{names.package}",
        page,
        f"/api/v1{page}",
        f"{page}?offset={newest.OFFSET_MAX}",
        f"{page}?before={names.deep_before}",
        f"{page}?before=20000101_000000_00000@",
        f"{page}?limit=10000",
        f"/packages/{names.package}/{names.release}/nosucharch",
    ]


def site_urls(names: Names) -> list[str]:
    return [
        "/",
        "/api/v1/",
        f"/run/{names.uuid}",
        "/run/00000000-0000-4000-8000-000000000000",
        "/statistics",
        "/testlist",
        f"/releases/{names.release}",
        f"/releases/{names.release}/{names.arch}",
        "/running",
        "/api/v1/running",
        "/admin",
        "/queues.json",
        "/queue_size.json",
    ]


def page_urls(names: Names) -> list[str]:
    """One run's pages, a test's and a package's badges, feeds and chart, a trigger, a user's PPAs and feed."""
    test = f"/packages/{results.srchash(names.package)}/{names.package}/{names.release}/{names.arch}"
    source, version = names.trigger.split("/", 1)
    return [
        f"{test}/{names.deep_before}",
        f"/api/v1{test}/{names.deep_before}",
        f"{test}/{names.deep_before}/changes",
        f"{test}/badge.svg",
        f"{test}/feed.atom",
        f"{test}/history.svg",
        f"/packages/{names.package}/badge.svg",
        f"/packages/{names.package}/feed.atom",
        f"/trigger/{source}/{version}",
        f"/api/v1/trigger/{source}/{version}",
        f"/user/{names.heavy_user}/feed.atom",
        f"/user/{names.heavy_user}/ppa",
        "/packages",
        "/api/v1/admin",
        "/api/v1/running/status",
        f"/running/queue/ubuntu/{names.release}/{names.arch}",
        "/metrics",
    ]


def all_urls(names: Names) -> list[str]:
    return site_urls(names) + package_urls(names) + recent_urls(names) + user_urls(names) + page_urls(names)
