# SPDX-License-Identifier: GPL-3.0-or-later
"""Results tables' rows (rows.py) are byte for byte what the rows_html macro they replaced wrote (rows_macro.html)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import flask
import pytest

from webcontrol import results
from webcontrol.history import Result
from webcontrol.web.browse import links, pages, rows
from webcontrol.web.browse.api import StreamedList

SPECIAL = "<b>&amp;\"'</b>"


def sample_result(**fields) -> Result:
    """A passing result of hello on noble/amd64; ``fields`` replace its values."""
    values = {
        "package": "hello",
        "release": "noble",
        "arch": "amd64",
        "run_id": "20240201_100000_abcde@",
        "version": "2.10-3",
        "triggers": "hello/2.10-3",
        "duration": 125,
        "exitcode": 0,
        "requester": "bryce",
        "env": "",
        "uuid": "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
    }
    values.update(fields)
    return Result(**values)


def _cases() -> list[tuple[Result, str | None, bool]]:
    """(result, classification, keeps its ♻ link) with every kind of field the table shows."""
    return [
        (sample_result(), "pass", True),
        # A failure with a retry link, several triggers (one with an epoch, tilde and plus), all-proposed.
        (
            sample_result(
                exitcode=4, triggers="glib2.0/2.80-1 hello/1:2.10~rc1+dfsg-1", env="all-proposed=1", requester=""
            ),
            "always_failed",
            True,
        ),
        # The same, its ♻ link dropped (an older row of a history page).
        (sample_result(exitcode=4), "regression", False),
        # Missing values: exit code (otherfail, "exit code None"), version, duration, uuid, requester, triggers.
        (
            sample_result(
                exitcode=None, version=None, duration=None, uuid=None, requester=None, triggers=None, env=None
            ),
            None,
            True,
        ),
        (sample_result(exitcode=12, requester="o'hara+co"), "flaky", True),
        (sample_result(exitcode=8), "neutral", True),
        (sample_result(exitcode=16), "tmpfail", True),
        (sample_result(exitcode=20), "regression", True),
        (sample_result(exitcode=99), "denylisted", True),
        (sample_result(exitcode=2, duration=0), "fixed", True),
        (sample_result(env="testname=a\x00b"), "pass", True),  # the character rows.py joins a block's fields with
        # A PPA run (private or not: the table shows the same fields), triggers that are not source/version.
        (
            sample_result(
                package="libfoo",
                triggers="ppa:user/ppa hello/1.0~ppa1 migration-reference/0",
                env="ppas=user/ppa:0123ABCD,private=1",
                requester="user",
                exitcode=4,
            ),
            "regression",
            True,
        ),
        # HTML special characters in every text field (none of these come from validated names).
        (
            sample_result(
                package=f"pkg{SPECIAL}",
                release=f"rel{SPECIAL}",
                arch=f"arch{SPECIAL}",
                run_id=f"20240201_100000_{SPECIAL}@",
                version=f"1.0{SPECIAL}",
                triggers=f"src{SPECIAL}/1.0 hello/1.0&x",
                env=f"testname={SPECIAL}",
                requester=f"nick{SPECIAL}",
                uuid=f"uuid{SPECIAL}",
                exitcode=4,
            ),
            "always_failed",
            True,
        ),
        # A run id that is not one (no date to slice from it), with characters a path must quote.
        (sample_result(run_id="not a run id/x"), "pass", True),
        # A uuid a link must quote, with nothing to escape (its block is made directly).
        (sample_result(uuid="not a uuid/ü"), "flaky", True),
    ]


def _views() -> list[dict]:
    """Result views with every kind of field the table shows."""
    return [links.result_view(result, classification, retry) for result, classification, retry in _cases()]


ORACLE = (Path(__file__).parent / "rows_macro.html").read_text()


def _by_macro(app, views: list[dict], show_package: bool, show_where: bool) -> str:
    """The rows as the macro wrote them, 250 per batch as the template called it."""
    template = app.jinja_env.from_string(
        ORACLE + "{% for block in rows|batch(250) %}{{ rows_html(block, show_package, show_where) }}{% endfor %}"
    )
    return template.render(rows=views, show_package=show_package, show_where=show_where)


def _table(app, rows, show_package: bool, show_where: bool) -> str:
    context = {"show_package": show_package, "show_where": show_where, "running": [], "queued": []}
    return flask.render_template("partials/results_table.html", rows=rows, **context)


@pytest.mark.parametrize("show_package,show_where", [(True, True), (False, False), (True, False), (False, True)])
def test_table_rows_are_the_macros_bytes(app, show_package, show_where):
    with app.test_request_context("/"):
        views = _views()
        by_macro = _by_macro(app, views, show_package, show_where)
        table = _table(app, views, show_package, show_where)
        streamed = _table(app, StreamedList(lambda: iter(views), len(views)), show_package, show_where)
    assert by_macro in table
    assert streamed == table
    assert table.count("<tr>") == len(views) + 1  # the header row
    assert SPECIAL not in table and "&lt;b&gt;&amp;amp;&#34;&#39;&lt;/b&gt;" in table
    assert 'title="exit code None"' in table and "♻" in table


def test_rows_of_several_pieces_are_the_macros_bytes(app, monkeypatch):
    monkeypatch.setattr(rows, "PIECE_ROWS", 5)
    with app.test_request_context("/"):
        views = _views() * 3
        by_macro = _by_macro(app, views, True, True)
        pieces = list(rows.table_rows(views, True, True))
    assert len(pieces) == -(-len(views) // 5)
    assert "".join(pieces) == by_macro


class _Blocks(links.LazyViews):
    """A big page's rows in blocks, with the classifications and ♻ links of _cases() (no DB to read)."""

    def __init__(self, cases, chunk: int) -> None:
        super().__init__(None, [case[0] for case in cases], chunk=chunk, classification="unused")
        self._cases, self._chunk_size = cases, chunk

    def blocks(self):
        for start in range(0, len(self._cases), self._chunk_size):
            block = self._cases[start : start + self._chunk_size]
            yield [c[0] for c in block], [c[1] for c in block], [c[2] for c in block]


#: Site and results URLs as configured: plain, and with characters HTML escaping changes in both.
SITE_URLS = [None, ("https://example.org/a&b'c", 'https://swift.example.org/v1/"x"&<y>')]


@pytest.mark.parametrize("urls", SITE_URLS)
@pytest.mark.parametrize("show_package,show_where", [(True, True), (False, False), (True, False), (False, True)])
def test_big_pages_rows_made_without_views_are_the_same_bytes(app, monkeypatch, show_package, show_where, urls):
    """A big page's table is made from its results directly: the bytes of the rows of its views.

    Blocks of plain rows take the direct path; a block with something to escape in a row's own fields,
    and a row whose run id is not one, go through the views: all of them are checked here, with a plain
    site URL and one whose links must be escaped.
    """
    monkeypatch.setattr(rows, "PIECE_ROWS", 3)
    plain = [case for case in _cases() if not any(SPECIAL in str(field) for field in case[0])]
    cases = plain * 3 + _cases()
    with app.test_request_context("/"):
        if urls:
            flask.g.links_site, flask.g.links_results = urls
        views = [links.result_view(*case) for case in cases]
        expected = "".join(rows.table_rows(views, show_package, show_where))
        through_views = []
        by_views = rows.rows_html
        monkeypatch.setattr(
            rows, "rows_html", lambda block, *rest: through_views.extend(block) or by_views(block, *rest)
        )
        direct = list(rows.table_rows(_Blocks(cases, 6), show_package, show_where))
    assert "".join(direct) == expected
    assert len(direct) == -(-len(cases) // 3)
    assert expected.count("<tr>") == len(cases) and "♻" in expected and 'title="exit code None"' in expected
    assert 0 < len(through_views) < len(cases) // 2  # most rows were made directly
    assert "/run/not%20a%20uuid%2F%C3%BC" in expected
    if urls:
        assert "https://example.org/a&amp;b&#39;c/packages/" in expected and urls[0] not in expected
        assert "https://swift.example.org/v1/&#34;x&#34;&amp;&lt;y&gt;/" in expected


def test_rows_of_a_big_page_keep_the_newest_retry_link_of_each_version_and_triggers(app):
    """A big history page: only the newest row of each (version, triggers) keeps its ♻ link, whichever path."""
    failed = [sample_result(exitcode=4, run_id=f"20240201_1000{n:02d}_abcde@") for n in range(12)]
    failed[5] = sample_result(exitcode=4, run_id="20240201_100005_abcde@", version="2.10-4")
    page = links.LazyViews(None, failed, newest_retry_only=True, chunk=5, classification="regression")
    with app.test_request_context("/"):
        direct = "".join(rows.table_rows(page, False, False))
        through_views = "".join(rows.table_rows(list(page), False, False))
    assert direct == through_views
    assert direct.count("♻") == 2


def test_a_big_page_is_freed_when_it_is_sent(app):
    """A history's kept views (10,000 of them, tens of MB) go with the page, without waiting for a cycle collection."""
    page = links.LazyViews(None, [sample_result()] * 20, chunk=5, classification="pass")
    with app.test_request_context("/"):
        list(reversed(page))  # the chart's reading, which keeps the views
        "".join(rows.table_rows(page, True, True))
    gone = weakref.ref(page)
    gc.disable()
    try:
        del page
        assert gone() is None
    finally:
        gc.enable()


#: The running and queued rows of partials/results_table.html as the template wrote them: the oracle of live_rows.
LIVE_ORACLE = """{% from "_macros.html" import ICONS -%}
{% for job in running %}
<tr class="live">
{% if show_package %}<td>{{ job["package"] }}</td>{% endif %}{% if show_where %}<td>{{ job["release"] }}</td><td>{{ job["arch"] }}</td>{% endif %}
<td>N/A</td><td>{% for t in job["triggers"] %}{% if not loop.first %} {% endif %}<span class="trigger">{{ t }}</span>{% endfor %}</td><td>N/A</td><td>N/A</td><td>{{ job["human_duration"] }}</td><td>{% if job["requester"] %}<a href="https://launchpad.net/~{{ job["requester"]|urlencode }}">{{ job["requester"] }}</a>{% endif %}</td>
<td class="running">{{ ICONS["running"] }} running</td><td>{% if job["uuid"] %}{{ job["uuid"] }}{% endif %}</td><td></td><td></td>
</tr>
{% endfor %}
{% for q in queued %}
<tr class="live">
{% if show_package %}<td>{{ q["package"] }}</td>{% endif %}{% if show_where %}<td>{{ q["release"] }}</td><td>{{ q["arch"] }}</td>{% endif %}
<td>N/A</td><td>{% for t in q["triggers"] %}{% if not loop.first %} {% endif %}<span class="trigger">{{ t }}</span>{% endfor %}</td><td>N/A</td><td>{{ q["submit_time"] or "N/A" }}</td><td>N/A</td><td>{% if q["requester"] %}<a href="https://launchpad.net/~{{ q["requester"]|urlencode }}">{{ q["requester"] }}</a>{% endif %}</td>
<td class="queued">{{ ICONS["queued"] }} queued</td><td>{% if q["uuid"] %}{{ q["uuid"] }}{% endif %}</td><td></td><td></td>
</tr>
{% endfor %}"""


def _live_views() -> tuple[list[dict], list[dict]]:
    """Running and queued views as live_views makes them, with every kind of field the rows show."""
    running = [
        {
            "package": "hello",
            "release": "noble",
            "arch": "amd64",
            "triggers": ["hello/1.0", "glib2.0/2.80-1"],
            "human_duration": "0h 2m 5s",
            "requester": "joe",
            "uuid": "8c1f6a3e-1d2b-4c6e-9a77-0f3d2e5b9c10",
        },
        {
            "package": f"p{SPECIAL}",
            "release": f"r{SPECIAL}",
            "arch": f"a{SPECIAL}",
            "triggers": [f"t{SPECIAL}", 7],
            "human_duration": "0h 0m 1s",
            "requester": f"o'hara+co{SPECIAL}",
            "uuid": None,
        },
    ]
    queued = [
        {
            "package": "hello",
            "release": "noble",
            "arch": "amd64",
            "triggers": ["hello/1.0"],
            "submit_time": "2024-02-21 11:00:51+0000",
            "requester": "ann",
            "uuid": "u-1",
        },
        {
            "package": "bare",
            "release": "noble",
            "arch": "amd64",
            "triggers": [],
            "submit_time": "",
            "requester": "",
            "uuid": None,
        },
        {
            "package": f"q{SPECIAL}",
            "release": "noble",
            "arch": "amd64",
            "triggers": [f"x{SPECIAL}"],
            "submit_time": f"when{SPECIAL}",
            "requester": "nick",
            "uuid": f"u{SPECIAL}",
        },
    ]
    return running, queued


@pytest.mark.parametrize("show_package,show_where", [(True, True), (False, False), (True, False), (False, True)])
def test_live_rows_are_the_templates_bytes(app, show_package, show_where):
    running, queued = _live_views()
    with app.test_request_context("/"):
        oracle = app.jinja_env.from_string(LIVE_ORACLE)
        for jobs, items in ((running, queued), ([], queued), (running, []), ([], [])):
            context = {"running": jobs, "queued": items, "show_package": show_package, "show_where": show_where}
            made = str(rows.live_rows(jobs, items, show_package, show_where))
            assert made == oracle.render(**context)
        assert made == "\n"
        made = str(rows.live_rows(running, queued, show_package, show_where))
    assert made.count('<tr class="live">') == 5 and SPECIAL not in made


def _legacy_item_of_view(view: dict) -> dict:
    """An item of the legacy recent.json list as it was made from the row's view."""
    return {
        "package": view["package"],
        "release": view["release"],
        "arch": view["arch"],
        "version": view["version"],
        "triggers": view["triggers"],
        "additional_params": view["env"],
        "human_date": view["date"],
        "human_sec": view["human_duration"],
        "requester": view["requester"],
        "code": view["result"],
        "url": view["log_url"],
        "show_retry": results.show_retry(view["exitcode"]),
        "all_proposed": view["all_proposed"],
        "uuid": view["uuid"],
        "run_id": view["run_id"],
    }


def test_legacy_recent_items_are_those_of_the_rows_views(app):
    """The legacy list's items, made without views, for every kind of field."""
    rows_ = [result for result, _classification, _retry in _cases()]
    rows_.append(sample_result(duration=3600 * 25 + 61, env="all-proposed=1,testname=x"))
    with app.test_request_context("/"):
        expected = [_legacy_item_of_view(view) for view in links.views_of(rows_)]
        assert list(pages._legacy_items(rows_)) == expected
