# SPDX-License-Identifier: GPL-3.0-or-later
"""Running and queued entries of one package (or user), shaped for pages and JSON twins.

The files are parsed by :mod:`webcontrol.livestate` only; this module
filters its typed views and turns them into JSON-ready dicts.
"""

from __future__ import annotations

from webcontrol import livestate
from webcontrol.web.browse import context, live_data


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


def running_for(package: str | None = None, release=None, arch=None, requester=None) -> list[dict]:
    jobs = []
    for job in livestate.running_jobs(context.running_raw()):
        if package is not None and job.package != package:
            continue
        if release is not None and job.release != release:
            continue
        if arch is not None and job.arch != arch:
            continue
        if requester is not None and (job.params or {}).get("requester") != requester:
            continue
        jobs.append(job_view(job))
    return jobs


def queued_for(package: str | None = None, release=None, arch=None, requester=None) -> list[dict]:
    items = []
    for item in livestate.queued_requests(context.queued_raw()):
        if item.private:
            continue
        if package is not None and item.package != package:
            continue
        if release is not None and item.release != release:
            continue
        if arch is not None and item.arch != arch:
            continue
        if requester is not None and (item.params or {}).get("requester") != requester:
            continue
        items.append(queued_view(item))
    return items


def find_live_uuid(uuid: str) -> str | None:
    """ "Queued" or "In progress" when a uuid is still in the live state, else None."""
    for job in livestate.running_jobs(context.running_raw()):
        if job.uuid == uuid:
            return "In progress"
    for item in livestate.queued_requests(context.queued_raw()):
        if (item.params or {}).get("uuid") == uuid:
            return "Queued"
    return None


def counts() -> dict:
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
