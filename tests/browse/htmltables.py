# SPDX-License-Identifier: GPL-3.0-or-later
"""Read tables out of HTML the way scraping clients (autopkgtest-cli) do."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Cell:
    tag: str
    attrs: dict
    text: str = ""
    links: list[str] = field(default_factory=list)


@dataclass
class Table:
    attrs: dict
    rows: list[list[Cell]] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.stack: list[Table] = []
        self.cell: Cell | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            table = Table(attrs)
            self.tables.append(table)
            self.stack.append(table)
        elif tag == "tr" and self.stack:
            self.stack[-1].rows.append([])
        elif tag in ("td", "th") and self.stack and self.stack[-1].rows:
            self.cell = Cell(tag, attrs)
            self.stack[-1].rows[-1].append(self.cell)
        elif tag == "a" and self.cell is not None and "href" in attrs:
            self.cell.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table" and self.stack:
            self.stack.pop()
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.text += data


def tables(html: str) -> list[Table]:
    parser = _Parser()
    parser.feed(html)
    return parser.tables


def vertical(table: Table) -> dict[str, Cell]:
    """``<tr><th>Label</th><td>value</td></tr>`` rows as ``{label: td}``."""
    return {row[0].text.strip(): row[1] for row in table.rows if len(row) == 2 and row[0].tag == "th"}
