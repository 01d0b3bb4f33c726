# SPDX-License-Identifier: GPL-3.0-or-later
"""The rows of a results table, made without a template call per row.

``partials/results_table.html`` gets its result rows from :func:`table_rows`.
A big page has 10,000 rows of about twenty fields: through a Jinja macro
that was a macro frame per batch, an ``escape()`` and a ``Markup`` object
per field, and most of the page's CPU time; a 100-row page spent a third of
its time there. Here each row is one string format, the fields of a block of
rows escaped as one string, and cells that repeat (triggers, requesters)
are made once per table. HTML is kept in templates everywhere else; the
row markup lives here alone, and tests/browse/test_rows.py checks it
against the macro it replaced, for every kind of field.
"""

from __future__ import annotations

import operator
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice

import flask
from markupsafe import Markup

from webcontrol import results
from webcontrol.history import Result
from webcontrol.web.browse import links
from webcontrol.web.browse import triggers as trigger_links
from webcontrol.web.browse.markup import escape as _escape

#: Rows joined into one piece of the page: 10,000 rows go out in 200 pieces.
PIECE_ROWS = 50


def _icons() -> dict[str, str]:
    """The result icons, from ``_macros.html`` (one definition for the templates and this module)."""
    return flask.current_app.jinja_env.get_template("_macros.html").module.ICONS


class _Cells:
    """Cells that repeat across rows (triggers, requesters), made once per table."""

    def __init__(self, site: str) -> None:
        self._site = _escape(site)
        self._triggers: dict[str, str] = {}
        self._requesters: dict[str, str] = {}

    def trigger(self, trigger: str) -> str:
        cell = self._triggers.get(trigger)
        if cell is None:
            path = trigger_links.trigger_path(trigger)
            if path:  # the trigger and its path need no escaping (most triggers of a page are seen once)
                cell = f'<a class="trigger" href="{self._site}{path}">{trigger}</a> '
            else:
                cell = f'<span class="trigger">{_escape(trigger)}</span> '
            self._triggers[trigger] = cell
        return cell

    def requester(self, nick: str) -> str:
        if not nick:
            return ""
        cell = self._requesters.get(nick)
        if cell is None:
            quoted = urllib.parse.quote(nick, safe="/")  # Jinja's urlencode filter on a str
            cell = f'<a href="https://launchpad.net/~{_escape(quoted)}">{_escape(nick)}</a>'
            self._requesters[nick] = cell
        return cell


#: A character no field holds (checked): a block's fields are escaped as one string joined by it.
_SEPARATOR = "\x00"


def _fields(r: dict, icons: dict[str, str]) -> tuple[str, ...]:
    """The text fields of a row that are escaped, in :func:`_row` order (the retry link apart)."""
    return (
        r["history_url"],
        r["package"],
        r["release"],
        r["arch"],
        r["version"] or "",
        r["env"],
        r["run_url"],
        r["date"],
        r["human_duration"],
        r["result"],
        str(r["exitcode"]),
        icons.get(r["result"], ""),
        r["uuid"] or "",
        r["classification"] or "",
        r["log_viewer_url"],
        r["log_url"],
        r["artifacts_url"],
    )


_FIELDS = 17


def _row(r: dict, e: Sequence[str], show_package: bool, show_where: bool, cells: _Cells) -> str:
    """One row from its view ``r`` and its escaped fields ``e``."""
    package = f'<td><a href="{e[0]}">{e[1]}</a></td>' if show_package else ""
    where = f"<td>{e[2]}</td><td>{e[3]}</td>" if show_where else ""
    title = f' title="exit code {e[10]}"' if r["result"] == "otherfail" else ""
    uuid = f'<a href="{e[6]}">{e[12]}</a>' if r["uuid"] else ""
    retry = (
        f' <a class="retry" href="{_escape(r["retry_url"])}" title="retry this test">♻</a>' if r["show_retry"] else ""
    )
    return (
        f"\n<tr>\n{package}\n{where}\n"
        f"<td>{e[4]}</td>\n"
        f"<td>{''.join(map(cells.trigger, r['trigger_list']))}</td>\n"
        f"<td>{e[5]}</td>\n"
        f'<td class="nowrap"><a href="{e[6]}">{e[7]}</a></td>\n'
        f'<td class="nowrap">{e[8]}</td>\n'
        f"<td>{cells.requester(r['requester'])}</td>\n"
        f'<td class="{e[9]}"{title}>{e[11]} {e[9]}</td>\n'
        f'<td class="uuid">{uuid}</td>\n'
        f'<td class="classification {e[13]}">{e[13].replace("_", " ")}</td>\n'
        f'<td class="links nowrap"><a href="{e[14]}" title="view the log">log</a>'
        f' <a href="{e[15]}" title="raw log.gz">⬇</a>'
        f' <a href="{e[16]}" title="artifacts">artifacts</a>{retry}</td>\n</tr>\n'
    )


def _escaped_fields(block: list[dict], icons: dict[str, str]) -> list[Sequence[str]]:
    """Each row's escaped fields: a block's are looked at (and escaped, if needed) as one string."""
    fields = [_fields(r, icons) for r in block]
    joined = _SEPARATOR.join(chain.from_iterable(fields))
    escaped = _escape(joined)
    if escaped is joined:  # nothing to escape (str.replace returns the string itself when it finds nothing)
        return fields
    if joined.count(_SEPARATOR) == len(block) * _FIELDS - 1:
        flat = escaped.split(_SEPARATOR)
        return [flat[start : start + _FIELDS] for start in range(0, len(flat), _FIELDS)]
    return [[_escape(field) for field in row] for row in fields]


def rows_html(block: list[dict], show_package: bool, show_where: bool, icons: dict[str, str], cells: _Cells) -> str:
    """Rows (result views of links.result_view) as HTML."""
    return "".join(
        [_row(r, e, show_package, show_where, cells) for r, e in zip(block, _escaped_fields(block, icons), strict=True)]
    )


class _DirectRows:
    """Rows made straight from results and their classifications, without a view per row.

    For big pages (links.LazyViews), whose views no one else reads: the same
    bytes as :func:`rows_html` of their views. HTML escaping replaces single
    characters, so the escape of a joined string is the join of the escapes:
    the parts that repeat (a test's links and cells, a row's trigger cells,
    its requester and result cells, its classification and duration cells)
    are made and escaped once per table, and a block whose per-row fields
    (version, env, run id, uuid) have nothing to escape joins them as they
    are. A row is then one string format and five dictionary look-ups (a
    row with a ♻ link also joins its triggers' query values, which
    links.query_value keeps). A block that has something to escape, and a
    row whose run id is not a valid one, go through the views.
    """

    def __init__(self, show_package: bool, show_where: bool, icons: dict[str, str], cells: _Cells) -> None:
        self._show_package, self._show_where, self._icons, self._cells = show_package, show_where, icons, cells
        self._maker = links.ViewMaker()
        self._site = _escape(links.site())
        # A test's links are the site's or the results' URL and quoted path segments and query values
        # (links.path_segment, links.query_value), which hold nothing escaping changes.
        self._plain_links = not _NEEDS_ESCAPE.search(f"{links.site()}{links.results_base()}")
        #: Whether the uuids of the block being made need no quoting in a URL (checked per block).
        self._plain_uuids = False
        self._tests: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
        self._triggers: dict[str | None, str] = {}
        self._people: dict[tuple[str | None, int | None], tuple[str, bool]] = {}
        self._durations: dict[int | None, str] = {}
        self._classes: dict[str | None, str] = {}

    def _test(self, package: str, release: str, arch: str) -> tuple[str, str, str, str]:
        """(the leading cells, history link, run objects' folder, retry link up to its triggers), escaped."""
        # Kept here, escaped, not in the maker too (a page of one requester has thousands of tests).
        history, folder, retry_base = self._maker.make_test_links(package, release, arch)
        if self._plain_links:
            retry_base = retry_base.replace("&", "&amp;")  # the query's own "&"s: nothing else to escape
        else:
            history, folder, retry_base = _escape(history), _escape(folder), _escape(retry_base)
        names = (package, release, arch)
        if _NEEDS_ESCAPE.search(f"{package}{release}{arch}"):
            names = tuple(map(_escape, names))
        lead = f'<td><a href="{history}">{names[0]}</a></td>' if self._show_package else ""
        where = f"<td>{names[1]}</td><td>{names[2]}</td>" if self._show_where else ""
        found = self._tests[(package, release, arch)] = (f"\n<tr>\n{lead}\n{where}\n", history, folder, retry_base)
        return found

    def _trigger_cells(self, triggers: str | None) -> str:
        found = self._triggers[triggers] = "".join(map(self._cells.trigger, triggers.split() if triggers else []))
        return found

    def _retry_query(self, triggers: str) -> str:
        """The triggers' part of the ♻ link (a query value, links.query_value, holds nothing escaping changes)."""
        return "".join([f"&amp;trigger={_query_value(trigger)}" for trigger in triggers.split()])

    def _person(self, requester: str | None, exitcode: int | None) -> tuple[str, bool]:
        """(the requester and result cells, whether the result may have a ♻ link)."""
        name = _RESULT_NAMES.get(exitcode, "otherfail")
        title = f' title="exit code {_escape(str(exitcode))}"' if name == "otherfail" else ""
        icon = _escape(self._icons.get(name, ""))
        cells = f'<td>{self._cells.requester(requester or "")}</td>\n<td class="{name}"{title}>{icon} {name}</td>\n'
        found = self._people[(requester, exitcode)] = (cells, name not in _NO_RETRY)
        return found

    def _duration(self, duration: int | None) -> str:
        # Digits and letters: nothing to escape.
        found = self._durations[duration] = f'<td class="nowrap">{results.human_duration(duration)}</td>\n'
        return found

    def _class(self, classification: str | None) -> str:
        """The classification cell and the start of the links cell, up to the log viewer's URL."""
        text = _escape(classification or "")
        found = self._classes[classification] = (
            f'<td class="classification {text}">{text.replace("_", " ")}</td>\n<td class="links nowrap"><a href="'
        )
        return found

    def html(self, block: Sequence[Result], classes: Sequence[str | None], retries: Sequence[bool]) -> str:
        if _NEEDS_ESCAPE.search("".join([f"{r.version}{r.env}{r.run_id}{r.uuid}" for r in block])):
            views = list(map(self._maker.view, block, classes, retries))
            return rows_html(views, self._show_package, self._show_where, self._icons, self._cells)
        self._plain_uuids = bool(_URL_SAFE.match("".join(filter(None, map(_UUID, block)))))
        return "".join(map(self._row, block, classes, retries))

    def _row(self, result: Result, classification: str | None, retry: bool) -> str:
        package, release, arch, run_id, version, triggers, duration, exitcode, requester, env, uuid = result
        if not _RUN_ID_RE.match(run_id):
            view = self._maker.view(result, classification, retry)
            return rows_html([view], self._show_package, self._show_where, self._icons, self._cells)
        lead, history, folder, retry_base = self._tests.get((package, release, arch)) or self._test(
            package, release, arch
        )
        people, retryable = self._people.get((requester, exitcode)) or self._person(requester, exitcode)
        if uuid:
            run_url = f"{self._site}/run/{uuid if self._plain_uuids else _path_segment(uuid)}"
            uuid_link = f'<a href="{run_url}">{uuid}</a>'
        else:
            run_url, uuid_link = f"{history}/{run_id}", ""
        retry_link = ""
        if retry and retryable and triggers and not triggers.isspace():
            proposed = ""
            if env and "all-proposed" in env and results.parse_env_string(env).get("all-proposed") == "1":
                proposed = "&amp;all-proposed=1"
            retry_link = f' <a class="retry" href="{retry_base}{self._retry_query(triggers)}{proposed}" title="retry this test">♻</a>'
        return (
            f"{lead}<td>{version or ''}</td>\n<td>{self._triggers.get(triggers) or self._trigger_cells(triggers)}</td>\n<td>{env or ''}</td>\n"
            f'<td class="nowrap"><a href="{run_url}">'
            f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]} UTC</a></td>\n"
            f"{self._durations.get(duration) or self._duration(duration)}{people}"
            f'<td class="uuid">{uuid_link}</td>\n'
            f"{self._classes.get(classification) or self._class(classification)}"
            f'{history}/{run_id}/log" title="view the log">log</a>'
            f' <a href="{folder}/{run_id}/log.gz" title="raw log.gz">⬇</a>'
            f' <a href="{folder}/{run_id}/artifacts.tar.gz" title="artifacts">artifacts</a>{retry_link}</td>\n</tr>\n'
        )


#: Characters HTML escaping replaces.
_NEEDS_ESCAPE = re.compile("[&<>\"']")
_RESULT_NAMES = results.RESULT_NAMES
_NO_RETRY = results.NO_RETRY_RESULTS
_RUN_ID_RE = results.RUN_ID_RE
_path_segment = links.path_segment
_URL_SAFE = links.PATH_SAFE
_UUID = operator.attrgetter("uuid")
_query_value = links.query_value


def table_rows(views: Iterable[dict], show_package: bool, show_where: bool) -> Iterator[str]:
    """The rows of a results table as HTML, PIECE_ROWS rows per piece (a template global).

    Plain str, every field escaped: partials/results_table.html outputs them
    with autoescape off, without a copy of each piece into a Markup.
    """
    icons = _icons()
    cells = _Cells(links.site())
    if isinstance(views, links.LazyViews) and not views.views_kept:
        direct = _DirectRows(show_package, show_where, icons, cells)
        for block, classes, retries in views.blocks():
            for start in range(0, len(block), PIECE_ROWS):
                end = start + PIECE_ROWS
                yield direct.html(block[start:end], classes[start:end], retries[start:end])
        return
    pending = iter(views)
    while block := list(islice(pending, PIECE_ROWS)):
        yield rows_html(block, show_package, show_where, icons, cells)


def live_rows(running: Sequence[dict], queued: Sequence[dict], show_package: bool, show_where: bool) -> Markup:
    """A history's running jobs and queued requests, as the rows above its results (a template global).

    Views of live_views (job_view, queued_view); a test can have a hundred
    requests queued, each row a dozen fields.
    """
    icons = _icons()
    cells = _Cells(links.site())

    def lead(view: dict) -> str:
        package = f"<td>{_escape(view['package'])}</td>" if show_package else ""
        where = f"<td>{_escape(view['release'])}</td><td>{_escape(view['arch'])}</td>" if show_where else ""
        return f'\n<tr class="live">\n{package}{where}\n<td>N/A</td><td>'

    def triggers(view: dict) -> str:
        return " ".join(f'<span class="trigger">{_escape(trigger)}</span>' for trigger in view["triggers"])

    running_icon, queued_icon = _escape(icons["running"]), _escape(icons["queued"])
    parts = [
        f"{lead(job)}{triggers(job)}</td><td>N/A</td><td>N/A</td><td>{_escape(job['human_duration'])}</td>"
        f"<td>{cells.requester(job['requester'])}</td>\n"
        f'<td class="running">{running_icon} running</td><td>{_escape(job["uuid"]) if job["uuid"] else ""}</td>'
        "<td></td><td></td>\n</tr>\n"
        for job in running
    ]
    parts.append("\n")
    parts.extend(
        f"{lead(item)}{triggers(item)}</td><td>N/A</td><td>{_escape(item['submit_time'] or 'N/A')}</td><td>N/A</td>"
        f"<td>{cells.requester(item['requester'])}</td>\n"
        f'<td class="queued">{queued_icon} queued</td><td>{_escape(item["uuid"]) if item["uuid"] else ""}</td>'
        "<td></td><td></td>\n</tr>\n"
        for item in queued
    )
    return Markup("".join(parts))
