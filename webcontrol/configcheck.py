# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate a configuration file before a program or the web apps depend on it.

``<program> --check-config [--config PATH]`` checks the file for that
program; ``python3 -m webcontrol.configcheck PATH`` checks it for the whole
site (every program and the web apps). A check reports every problem found,
one per line naming ``[section] key``, and exits non-zero if there is one:

- the file is missing, unreadable or not INI;
- a value does not parse (a number, a boolean);
- a key or section is not one the project knows (a typo would otherwise be
  silently ignored and its default used);
- a key the checked programs cannot work without is missing;
- the result store is misconfigured (``results_store``, its folder or the
  Swift credentials).
"""

from __future__ import annotations

import argparse
import configparser
import difflib
import sys
from collections.abc import Iterable

from webcontrol import config as configmod

#: The keys each program stops without, by the module that holds its main().
REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "download_results": (("web", "database"), ("amqp", "uri")),
    "download_all_results": (("web", "database"),),
    "publish_db": (("web", "database"), ("web", "database_public")),
    "cache_amqp": (("amqp", "uri"), ("web", "amqp_queue_cache"), ("web", "database_public")),
    "amqp_status_collector": (("amqp", "uri"), ("web", "running_cache")),
    "update_github_jobs": (),
    "stats": (("web", "database_public"), ("web", "stats_cache_dir")),
    "cache_ppa_containers": (("web", "ppa_containers_cache_dir"),),
    "db_backup": (("web", "database"),),
    "web": (("web", "database_public"),),
}
#: Programs that read or write the result store.
STORE_USERS = {"download_all_results", "update_github_jobs", "cache_ppa_containers", "db_backup", "web"}
SITE = tuple(REQUIRED)


def _known_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for setting in configmod.SETTINGS:
        names.setdefault(setting.section, set()).update((setting.key, *setting.aliases))
    return names


def _unknown(path: str) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    known = _known_names()
    problems = []
    for section in parser.sections():
        if section not in known:
            hint = difflib.get_close_matches(section, known, n=1)
            problems.append(f"unknown section [{section}]" + (f" (did you mean [{hint[0]}]?)" if hint else ""))
            continue
        for key in parser.options(section):
            if key not in known[section]:
                hint = difflib.get_close_matches(key, known[section], n=1)
                problems.append(f"unknown key [{section}] {key}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return problems


def _store_problems(config: configmod.Config) -> list[str]:
    try:
        kind = config.results_store
    except configmod.ConfigError as err:
        return [str(err).split(": ", 1)[-1]]
    keys = (
        [("web", "results_dir")]
        if kind == "local"
        else [("swift", k) for k in ("os_auth_url", "os_username", "os_password")]
    )
    if kind == "swift" and config.get("swift", "os_identity_api_version") != "1":
        keys.append(("swift", "os_project_name"))
    return [f"missing required key [{s}] {k} (results_store is {kind})" for s, k in keys if not config.get(s, k)]


def check(path: str | None, programs: Iterable[str] = SITE) -> tuple[str, list[str]]:
    """``(path checked, problems)`` for the programs given by module name (default: the whole site)."""
    try:
        config = configmod.load(path)
    except configmod.ConfigError as err:
        return "", [str(err)]
    problems = _unknown(config.path)
    programs = list(programs)
    wanted: dict[tuple[str, str], None] = {}
    for program in programs:
        wanted.update(dict.fromkeys(REQUIRED.get(program, ())))
    problems += [f"missing required key [{s}] {k}" for s, k in wanted if config.get(s, k) in (None, "")]
    if STORE_USERS.intersection(programs):
        problems += _store_problems(config)
    return config.path, problems


def report(path: str | None, programs: Iterable[str] = SITE) -> int:
    """Print the outcome of :func:`check`; the exit code (0, or 2 when there are problems)."""
    checked, problems = check(path, programs)
    for problem in problems:
        prefix = "" if problem.startswith(checked) and checked else f"{checked}: "
        print(prefix + problem, file=sys.stderr)
    if problems:
        return 2
    print(f"{checked}: configuration OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a configuration file for every program and the web apps.")
    parser.add_argument("config", nargs="?", help="the file (default: $AUTOPKGTEST_CLOUD_CONF, then the search list)")
    args = parser.parse_args(argv)
    return report(args.config)


if __name__ == "__main__":
    raise SystemExit(main())
