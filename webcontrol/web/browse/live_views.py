# SPDX-License-Identifier: GPL-3.0-or-later
"""Running and queued entries of one package (or user), shaped for pages and JSON twins.

Entries are looked up in the index files written next to the live files
(:mod:`webcontrol.liveindex`), so a page costs the same whatever the length
of the queue; without a current index the file is parsed by
:mod:`webcontrol.livestate` once per version and grouped by package and
requester. Either way the typed views become JSON-ready dicts here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from markupsafe import Markup

from webcontrol import liveindex, livestate
from webcontrol.filecache import FileCache
from webcontrol.web.browse import context, links, live_data
from webcontrol.web.browse.live_cache import app_values
from webcontrol.web.browse.markup import escape as _escape


def job_view(job: livestate.RunningJob) -> dict:
    """The /running view of a job (private runs show nothing of their params) plus list fields."""
    view = live_data.job_view(job)
    params = view["params"]
    view.update(
        run_key="" if job.private else job.run_key,  # the key spells out the params
        triggers=params.get("triggers") if isinstance(params.get("triggers"), list) else [],
        requester=params.get("requester") if isinstance(params.get("requester"), str) else "",
    )
    return view


def queued_view(item: livestate.QueuedRequest) -> dict:
    params = item.params if isinstance(item.params, dict) else {}
    return {
        "context": item.context,
        "release": item.release,
        "arch": item.arch,
        "position": item.position,
        "package": item.package,
        "params": params,
        "triggers": params.get("triggers") if isinstance(params.get("triggers"), list) else [],
        "requester": params.get("requester") if isinstance(params.get("requester"), str) else "",
        "submit_time": params.get("submit-time") if isinstance(params.get("submit-time"), str) else "",
        "uuid": params.get("uuid") if isinstance(params.get("uuid"), str) else None,
        "private": item.private,
    }


def live_paths() -> tuple[str | None, str | None]:
    """The paths of queued.json and running.json."""
    cfg = context.config()
    return cfg.get("web", "amqp_queue_cache"), cfg.get("web", "running_cache")


def _group(entries, package, requester) -> dict:
    """``{("package", name): [...], ("requester", name): [...]}`` in file order."""
    groups: dict = {}
    for entry in entries:
        groups.setdefault(("package", package(entry)), []).append(entry)
        who = requester(entry)
        if isinstance(who, str):
            groups.setdefault(("requester", who), []).append(entry)
    return groups


def _group_queued(path: str) -> dict:
    shown = [item for item in livestate.queued_requests(livestate.queued_cache.get(path)) if not item.private]
    return _group(shown, lambda i: i.package, lambda i: (i.params or {}).get("requester"))


def _group_running(path: str) -> dict:
    jobs = livestate.running_jobs(livestate.running_cache.get(path))
    return _group(jobs, lambda j: j.package, lambda j: (j.params or {}).get("requester"))


#: Fallback when a file has no current index: one parse per file version, then lookups.
_queued_groups: FileCache[dict] = FileCache(_group_queued, missing={})
_running_groups: FileCache[dict] = FileCache(_group_running, missing={})


def _matching(entries, release, arch) -> list:
    return [e for e in entries if (release is None or e.release == release) and (arch is None or e.arch == arch)]


def running_for(package: str | None = None, release=None, arch=None, requester=None) -> list[dict]:
    """Running jobs of a package or of a requester (one of the two is given)."""
    return running_window(package, release, arch, requester)[0]


#: Live lists kept per app: package and history pages ask for the same few while a file version lasts.
LIVE_LISTS = 256
_KEPT = "browse_live_lists"


class KeptViews(list):
    """Views kept for a version of a live file: shared by the requests that get them, which must not change
    them; with the HTML of each macro that rendered them (:func:`kept_html`)."""

    def __init__(self, views) -> None:
        super().__init__(views)
        self.html: dict[str, Markup] = {}


def kept_html(views: list, macro) -> Markup:
    """``macro(views)``, rendered once per kept list of views (a list made per request is rendered each time).

    The macros that list live entries (``queued_list``, ``running_blocks``)
    read nothing but the views and the site URL, which the list is kept by:
    rendering a busy package's queued requests was two fifths of its page.
    """
    if not isinstance(views, KeptViews):
        return macro(views)
    html = views.html.get(macro.name)
    if html is None:
        html = views.html[macro.name] = Markup(macro(views))
    return html


def _kept_window(path: str | None, compute: Callable[[], tuple[list[dict], int]], kind: str, *args):
    """``compute()``, kept while the live file and its index are the versions it was made from.

    Views are a function of the file (through its index, or parsed when the
    index is stale) and of the site URL of their links; the list is shared
    by the requests that get it (callers must not change it). A request then
    reads no index and parses no request of the package again.
    """
    versions = liveindex.file_versions(path)
    if versions is None:
        return compute()
    kept = app_values(_KEPT, LIVE_LISTS)

    def kept_views() -> tuple[KeptViews, int]:
        views, total = compute()
        return KeptViews(views), total

    return kept.get(
        (versions, links.site(), kind, *args),
        kept_views,
        supersedes=lambda old: old[2] == kind and old[0] != versions,
    )


def running_window(
    package: str | None = None, release=None, arch=None, requester=None, offset: int = 0, limit: int | None = None
) -> tuple[list[dict], int]:
    """``(views, total)``: running jobs of a package or requester from ``offset`` (``limit`` of them at most)."""
    path = live_paths()[1]
    args = (package, release, arch, requester, offset, limit)
    return _kept_window(path, functools.partial(_running_window, path, *args), "running", *args)


def _running_window(path, package, release, arch, requester, offset: int, limit: int | None) -> tuple[list[dict], int]:
    found = liveindex.running_window(path, package, release, arch, requester, offset, limit)
    if found is None:
        groups = _running_groups.get(path)
        key = ("package", package) if package is not None else ("requester", requester)
        jobs = [j for j in _matching(groups.get(key, []), release, arch) if package is None or j.package == package]
        if package is not None and requester is not None:
            jobs = [j for j in jobs if (j.params or {}).get("requester") == requester]
        found = (_slice(jobs, offset, limit), len(jobs))
    return [job_view(job) for job in found[0]], found[1]


def queued_for(package: str | None = None, release=None, arch=None, requester=None) -> list[dict]:
    """Shown queued requests of a package or of a requester (one of the two is given)."""
    return queued_window(package, release, arch, requester)[0]


def queued_window(
    package: str | None = None, release=None, arch=None, requester=None, offset: int = 0, limit: int | None = None
) -> tuple[list[dict], int]:
    """``(views, total)``: shown queued requests of a package or requester from ``offset`` (``limit`` at most)."""
    path = live_paths()[0]
    args = (package, release, arch, requester, offset, limit)
    return _kept_window(path, functools.partial(_queued_window, path, *args), "queued", *args)


def _queued_window(path, package, release, arch, requester, offset: int, limit: int | None) -> tuple[list[dict], int]:
    found = liveindex.queued_window(path, package, release, arch, requester, offset, limit)
    if found is None:
        groups = _queued_groups.get(path)
        key = ("package", package) if package is not None else ("requester", requester)
        items = _matching(groups.get(key, []), release, arch)
        if package is not None and requester is not None:
            items = [i for i in items if (i.params or {}).get("requester") == requester]
        found = (_slice(items, offset, limit), len(items))
    return [queued_view(item) for item in found[0]], found[1]


def _slice(entries: list, offset: int, limit: int | None) -> list:
    return entries[offset:] if limit is None else entries[offset : offset + limit]


def find_live_uuid(uuid: str) -> str | None:
    """ "Queued" or "In progress" when a uuid is still in the live state, else None."""
    queued_path, running_path = live_paths()
    found = liveindex.live_uuid(queued_path, running_path, uuid)
    if found is not False:
        return found
    for job in livestate.running_jobs(context.running_raw()):
        if job.uuid == uuid:
            return "In progress"
    for item in livestate.queued_requests(context.queued_raw()):
        if (item.params or {}).get("uuid") == uuid:
            return "Queued"
    return None


def counts() -> dict:
    queued_path, running_path = live_paths()
    indexed = liveindex.counts(queued_path, running_path)
    if indexed is not None:
        running_count, queued_count, per_arch = indexed
        return {
            "running": running_count,
            "queued": queued_count,
            "per_arch": {arch: per_arch[arch] for arch in sorted(per_arch)},
            "age_seconds": context.file_ages(),
        }
    running = context.running_raw()
    queued = context.queued_raw()
    sizes = livestate.queue_sizes(queued)
    per_arch: dict[str, dict[str, int]] = {}
    for job in livestate.running_jobs(running):
        per_arch.setdefault(job.arch, {"running": 0, "queued": 0})["running"] += 1
    for releases in sizes.values():
        for arches in releases.values():
            for arch, size in arches.items():
                per_arch.setdefault(arch, {"running": 0, "queued": 0})["queued"] += size
    return {
        "running": livestate.running_count(running),
        "queued": livestate.queued_count(queued),
        "per_arch": {arch: per_arch[arch] for arch in sorted(per_arch)},
        "age_seconds": context.file_ages(),
    }


def queued_list_html(items: list[dict]) -> Markup:
    """A list of queued requests (views of :func:`queued_view`) under a heading per queue (a template global).

    One string format per item rather than a template call and an escape per
    field: package and user pages list up to 100 of them. The markup is the
    one the ``queued_list`` macro of ``_macros.html`` had; tests check it.
    """
    parts = ["\n"]
    current = None
    for item in items:
        key = f"{item['context']} {item['release']} {item['arch']}"
        heading = ""
        if key != current:
            heading = f'{"</ol>" if current else ""}<h4>Queued tests for {_escape(key)}</h4><ol class="queued">'
            current = key
        triggers = " ".join(f'<span class="trigger">{_escape(t)}</span>' for t in item["triggers"])
        requester = f" — {_escape(item['requester'])}" if item["requester"] else ""
        submitted = f" ({_escape(item['submit_time'])})" if item["submit_time"] else ""
        parts.append(
            f'\n\n{heading}\n<li value="{_escape(item["position"])}">{_escape(item["package"])} {triggers}'
            f"{requester}{submitted}</li>\n"
        )
    parts.append("\n</ol>" if current else "\n")
    return Markup("".join(parts))
