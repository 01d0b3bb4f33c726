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

import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice

import flask
from markupsafe import Markup

from webcontrol.web.browse import links
from webcontrol.web.browse import triggers as trigger_links

#: Rows joined into one piece of the page: 10,000 rows go out in 40 pieces.
PIECE_ROWS = 250


def _escape(text: str) -> str:
    """``markupsafe.escape`` of a str, as a str (the same five replacements, no Markup object)."""
    return (
        text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;").replace("'", "&#39;").replace('"', "&#34;")
    )


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


def table_rows(views: Iterable[dict], show_package: bool, show_where: bool) -> Iterator[Markup]:
    """The rows of a results table, PIECE_ROWS rows per piece (a template global)."""
    icons = _icons()
    cells = _Cells(links.site())
    pending = iter(views)
    while block := list(islice(pending, PIECE_ROWS)):
        yield Markup(rows_html(block, show_package, show_where, icons, cells))
