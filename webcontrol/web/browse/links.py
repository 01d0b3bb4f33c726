# SPDX-License-Identifier: GPL-3.0-or-later
"""Canonical links of the site and the JSON-ready view of a result row.

The URL forms are fixed by docs/formats.rst, Pages and API (britney, ppa-dev-tools and
autopkgtest-cli build or parse the same strings), so they are built here in
one place rather than through ``url_for`` of the catch-all package routes.
Every path segment is percent-quoted; templates escape the whole URL.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence

import flask

from webcontrol import classindex, results
from webcontrol.classindex import Freshness
from webcontrol.history import Result, classify_results
from webcontrol.web.appbase import app_config, site_url
from webcontrol.web.browse import context
from webcontrol.web.browse.api import JSON_BLOCK, StreamedList

LAUNCHPAD = "https://launchpad.net"
EXCUSES = "https://ubuntu-archive-team.ubuntu.com/proposed-migration"


# Names that passed validation (packages, releases, arches, run ids, uuids) need no quoting.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~@+:-]*\Z")


def _q(segment: str) -> str:
    if _URL_SAFE.match(segment):
        return segment
    return urllib.parse.quote(segment, safe="@+:~")


#: _q of names that repeat across the rows of a page (packages, releases, arches).
_qn = functools.lru_cache(maxsize=16384)(_q)


def _site() -> str:
    """``<site>``, computed once per request (pages build hundreds of links)."""
    if "links_site" not in flask.g:
        flask.g.links_site = site_url()
    return flask.g.links_site


def site() -> str:
    """``<site>`` for other modules (cached per request like every link here)."""
    return _site()


def results_base() -> str:
    if "links_results" not in flask.g:
        flask.g.links_results = app_config().external_results_url(_site())
    return flask.g.links_results


def object_url(container: str, path: str) -> str:
    return f"{results_base()}/{_q(container)}/{'/'.join(_q(part) for part in path.split('/'))}"


def run_object_url(release: str, arch: str, package: str, run_id: str, name: str) -> str:
    return object_url(results.distro_container(release), f"{results.run_dir(release, arch, package, run_id)}/{name}")


def package_url(package: str, release: str | None = None) -> str:
    base = f"{_site()}/packages/{_q(results.srchash(package))}/{_q(package)}"
    return f"{base}/{_q(release)}" if release else base


def history_url(package: str, release: str, arch: str) -> str:
    return f"{package_url(package)}/{_q(release)}/{_q(arch)}"


def run_page_url(package: str, release: str, arch: str, run_id: str) -> str:
    return f"{history_url(package, release, arch)}/{_q(run_id)}"


def uuid_url(uuid: str) -> str:
    return f"{_site()}/run/{_q(uuid)}"


def log_viewer_url(package: str, release: str, arch: str, run_id: str) -> str:
    return f"{run_page_url(package, release, arch, run_id)}/log"


def user_url(user: str) -> str:
    return f"{_site()}/user/{_q(user)}/"


def retry_url(
    release: str, arch: str, package: str, triggers: Iterable[str], all_proposed: bool = False, site: str | None = None
) -> str:
    """The request.cgi link britney also builds (docs/formats.rst, Pages and API); ``site``: :func:`site`, if known."""
    query = f"release={_qv(release)}&arch={_qv(arch)}&package={_qv(package)}"
    query += "".join(f"&trigger={_qv(trigger)}" for trigger in triggers)
    if all_proposed:
        query += "&all-proposed=1"
    return f"{site or _site()}/request.cgi?{query}"


# Characters urlencode() leaves as they are in a query value.
_QUERY_SAFE = re.compile(r"^[A-Za-z0-9_.~-]*\Z")


# ... and those that, besides, only quote_plus() "+", "/" and ":" (triggers: source/version).
_QUERY_TRIGGER = re.compile(r"^[A-Za-z0-9_.~+/:-]*\Z")


@functools.lru_cache(maxsize=4096)
def _qv(value: str) -> str:
    """A query value as ``urllib.parse.urlencode`` writes it (a release page builds ~1,200 retry links)."""
    if _QUERY_SAFE.match(value):
        return value
    if _QUERY_TRIGGER.match(value):  # the same as quote_plus, without its per-byte loop (a page has 10,000)
        return value.replace("+", "%2B").replace("/", "%2F").replace(":", "%3A")
    return urllib.parse.quote_plus(value)


#: The quoting of a path segment and of a query value in the links here, for rows.py (which makes the
#: same links as :class:`ViewMaker` without views).
path_segment = _q
query_value = _qv
#: Text that path_segment leaves as it is.
PATH_SAFE = _URL_SAFE


def launchpad_source_url(package: str, release: str | None = None) -> str:
    middle = f"{_q(release)}/" if release else ""
    return f"{LAUNCHPAD}/ubuntu/{middle}+source/{_q(package)}"


def excuses_url(package: str, release: str | None = None) -> str:
    middle = f"{_q(release)}/" if release else ""
    return f"{EXCUSES}/{middle}update_excuses.html#{_q(package)}"


def requester_url(nick: str) -> str:
    return f"{LAUNCHPAD}/~{_q(nick)}"


def dsc_url(package: str, version: str) -> str:
    return f"{LAUNCHPAD}/ubuntu/+archive/primary/+files/{_q(package)}_{_q(version)}.dsc"


def _date(run_id: str) -> str:
    # Slicing a validated run id gives the same text as results.human_date, without strptime's cost.
    if results.RUN_ID_RE.match(run_id):
        return f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]} UTC"
    return results.human_date(run_id)


def result_view(result: Result, classification: str | None = None, retry: bool = True) -> dict:
    """A result as pages and JSON twins show it (one shape for every page)."""
    return ViewMaker().view(result, classification, retry)


def views_of(rows: Iterable[Result], classifications: Iterable[str | None] | None = None) -> Iterator[dict]:
    """:func:`result_view` of each row (with its classification, if given); each test's links are made once."""
    maker = ViewMaker()
    if classifications is None:
        return (maker.view(row, None, True) for row in rows)
    return (maker.view(row, cls, True) for row, cls in zip(rows, classifications, strict=True))


_RESULT_NAMES = results.RESULT_NAMES
_NO_RETRY = results.NO_RETRY_RESULTS
_RUN_ID_RE = results.RUN_ID_RE


class ViewMaker:
    """Makes result views; what repeats across the rows of a page (each test's links) is made once."""

    def __init__(self) -> None:
        self._site = _site()
        self._results = results_base()
        self._tests: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._durations: dict[int | None, str] = {}
        self._packages: dict[str, tuple[str, str]] = {}
        self._places: dict[tuple[str, str], tuple[str, str, str]] = {}

    def test_links(self, package: str, release: str, arch: str) -> tuple[str, str, str]:
        """(history page, run objects' folder without the run id, retry link without triggers) of a test."""
        key = (package, release, arch)
        found = self._tests.get(key)
        if found is None:
            found = self._tests[key] = self.make_test_links(package, release, arch)
        return found

    def make_test_links(self, package: str, release: str, arch: str) -> tuple[str, str, str]:
        """:meth:`test_links`, not kept (for a caller that keeps what it makes of them)."""
        if "/" in package or "/" in release or "/" in arch:  # not from validated names: as run_dir() splits
            prefix, name, rel, where = _qn(results.srchash(package)), _qn(package), _qn(release), _qn(arch)
            folder = "/".join(_q(part) for part in results.run_dir(release, arch, package, "").split("/")[:-1])
            return (
                f"{self._site}/packages/{prefix}/{name}/{rel}/{where}",
                f"{self._results}/{_qn(results.distro_container(release))}/{folder}",
                f"{self._site}/request.cgi?release={_qv(release)}&arch={_qv(arch)}&package={_qv(package)}",
            )
        # A page of one requester's results has thousands of tests of a few releases and arches:
        # the parts of a package and of a release/arch pair are made once each.
        path, quoted = self._packages.get(package) or self._package_parts(package)
        where, container, query = self._places.get((release, arch)) or self._place_parts(release, arch)
        return (
            # history_url(), without its look-ups of the site in the request context
            f"{self._site}/packages/{path}/{where}",
            f"{container}/{where}/{path}",
            f"{query}&package={quoted}",
        )

    def duration_text(self, duration: int | None) -> str:
        """``results.human_duration(duration)``, made once per duration (they repeat across a page's rows)."""
        found = self._durations.get(duration)
        if found is None:
            found = self._durations[duration] = results.human_duration(duration)
        return found

    def _package_parts(self, package: str) -> tuple[str, str]:
        """(``<prefix>/<package>`` quoted as a path, the package quoted as a query value)."""
        found = self._packages[package] = (f"{_qn(results.srchash(package))}/{_qn(package)}", _qv(package))
        return found

    def _place_parts(self, release: str, arch: str) -> tuple[str, str, str]:
        """(``<release>/<arch>`` quoted, the results container's URL, the retry link up to its package)."""
        found = self._places[(release, arch)] = (
            f"{_qn(release)}/{_qn(arch)}",
            f"{self._results}/{_qn(results.distro_container(release))}",
            f"{self._site}/request.cgi?release={_qv(release)}&arch={_qv(arch)}",
        )
        return found

    def view(self, result: Result, classification: str | None, retry: bool = True) -> dict:
        # A page makes 10,000 of these: one regex match on the run id gives its quoting, its objects'
        # folder and its date (a run id's characters need no quoting), and durations repeat.
        package, release, arch, run_id = result.package, result.release, result.arch, result.run_id
        exitcode, duration, env, uuid = result.exitcode, result.duration, result.env, result.uuid
        name = _RESULT_NAMES.get(exitcode, "otherfail")
        triggers = result.triggers.split() if result.triggers else []
        show_retry = retry and name not in _NO_RETRY and bool(triggers)
        history, folder, retry_base = self.test_links(package, release, arch)
        run_page, objects, date = run_places(history, folder, run_id)
        all_proposed = bool(env) and "all-proposed" in env and result.all_proposed
        retry_link = None
        if show_retry:
            retry_link = f"{retry_base}&trigger={'&trigger='.join(map(_qv, triggers))}"  # show_retry: triggers
            if all_proposed:
                retry_link += "&all-proposed=1"
        human_duration = self.duration_text(duration)
        return {
            "package": package,
            "release": release,
            "arch": arch,
            "run_id": run_id,
            "version": result.version,
            "triggers": result.triggers or "",
            "trigger_list": triggers,
            "env": env or "",
            "all_proposed": all_proposed,
            "date": date,
            "duration": duration,
            "human_duration": human_duration,
            "requester": result.requester or "",
            "exitcode": exitcode,
            "result": name,
            "classification": classification,
            "uuid": uuid,
            "run_url": f"{self._site}/run/{_q(uuid)}" if uuid else run_page,
            "history_url": history,
            "log_url": f"{objects}/log.gz",
            "log_viewer_url": f"{run_page}/log",
            "artifacts_url": f"{objects}/artifacts.tar.gz",
            "show_retry": show_retry,
            "retry_url": retry_link,
        }


def run_places(history: str, folder: str, run_id: str) -> tuple[str, str, str]:
    """(run page, run objects' folder, date shown) of a run of the test whose links are these (test_links)."""
    if _RUN_ID_RE.match(run_id):  # a valid run id's characters need no quoting
        date = f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]} UTC"
        return f"{history}/{run_id}", f"{folder}/{run_id}", date
    quoted = _q(run_id)
    objects = f"{folder}/{quoted if '/' not in run_id else '/'.join(_q(part) for part in run_id.split('/'))}"
    return f"{history}/{quoted}", objects, results.human_date(run_id)


def result_views(conn, rows: list[Result], newest_retry_only: bool = False) -> list[dict]:
    """Views of a page of rows with their classification.

    With ``newest_retry_only`` (history pages) only the newest row of each
    (version, triggers) pair keeps its ♻ link (docs/formats.rst, Pages and API).
    """
    return list(_views(conn, rows, newest_retry_only, set()))


def _views(
    conn,
    rows: list[Result],
    newest_retry_only: bool,
    seen: set[tuple],
    index: Freshness | None = None,
    classification: str | None = None,
    classes: list[str | None] | None = None,
    maker: ViewMaker | None = None,
):
    """Views of ``rows``; ``classes``: their classifications when already known."""
    maker = maker or ViewMaker()
    if classes is None:
        classes = [classification] * len(rows) if classification else _classify(conn, rows, index)
    for row, row_class in zip(rows, classes, strict=True):
        retry = True
        if newest_retry_only:
            key = (row.version, row.triggers)
            retry = key not in seen
            seen.add(key)
        yield maker.view(row, row_class, retry)


def _classify(conn, rows: list[Result], index: Freshness | None) -> list[str | None]:
    """The rows' classifications: stored in the classification index when given, else computed.

    Rows of one test (a history page) are classified from one read of
    their history, cheaper than finding them among all results in the
    index; rows the index cannot tell are computed too.
    """
    if index is None or not rows:
        return classify_results(conn, rows)
    first = _TEST_KEY(rows[0])
    if all(_TEST_KEY(row) == first for row in rows):  # stops at the first other test (a user's next row)
        return classify_results(conn, rows)
    found = classindex.classifications(conn, context.CLASSINDEX_SCHEMA, index, rows)
    if None in found:
        missing = [number for number, value in enumerate(found) if value is None]
        for number, value in zip(missing, classify_results(conn, [rows[n] for n in missing]), strict=True):
            found[number] = value
    return found


_TEST_KEY = operator.attrgetter("package", "release", "arch")
_DURATION = operator.attrgetter("duration")
_EXITCODE = operator.attrgetter("exitcode")

#: Pages with more rows than this are sent while they are rendered (see LazyViews).
STREAM_ROWS = 500


class _RowBlocks:
    """The rows of a big page a chunk at a time, with each row's classification and whether it keeps its ♻ link."""

    def __init__(self, conn, rows, newest_retry_only: bool, chunk: int, index, classification) -> None:
        self._conn, self._rows, self._newest_retry_only = conn, rows, newest_retry_only
        self._chunk, self._index, self._classification = chunk, index, classification
        # The rows' classifications, in order, as far as computed: a history page reads its views twice
        # (the chart, then the table), and classifying one test's rows is most of their cost.
        self._known: list[str | None] = []

    def __iter__(self) -> Iterator[tuple[list[Result], list[str | None], list[bool]]]:
        seen: set[tuple] = set()
        # ``rows`` may itself be read while the page is sent (webcontrol.newest.LazyRows): iterate, never slice.
        pending = iter(self._rows)
        done = 0
        while block := list(itertools.islice(pending, self._chunk)):
            classes = self._known[done : done + len(block)]
            if len(classes) < len(block):
                if self._classification:
                    classes = [self._classification] * len(block)
                else:
                    classes = _classify(self._conn, block, self._index)
                if len(self._known) == done:
                    self._known.extend(classes)
            retries = [True] * len(block)
            if self._newest_retry_only:
                for number, row in enumerate(block):
                    key = (row.version, row.triggers)
                    retries[number] = key not in seen
                    seen.add(key)
            yield block, classes, retries
            done += len(block)


class LazyViews(StreamedList):
    """The views of a big page, made a chunk of rows at a time while the response is sent.

    A page of 10,000 rows would otherwise hold every view and the whole
    rendered page in memory before the first byte leaves. Classifications
    come from the classification index when ``index`` (its state, see
    context.classification_index) is given; with ``classification``, every
    row has that one (a page filtered by it). An HTML table needs no views:
    it reads :meth:`blocks` (see rows.table_rows).
    """

    def __init__(
        self,
        conn,
        rows: Sequence[Result],
        newest_retry_only: bool = False,
        chunk: int = STREAM_ROWS,
        index: Freshness | None = None,
        classification: str | None = None,
    ) -> None:
        blocks = _RowBlocks(conn, rows, newest_retry_only, chunk, index, classification)

        # Not a method: the views kept for a history's table are freed with the page, not by a cycle collection.
        def produce():
            maker = ViewMaker()
            for block, classes, retries in blocks:
                yield from map(maker.view, block, classes, retries)

        super().__init__(produce, len(rows))
        self._blocks = blocks
        self._kept: list[dict] | None = None

    def blocks(self) -> Iterator[tuple[list[Result], list[str | None], list[bool]]]:
        """The rows a chunk at a time, with each row's classification and whether it keeps its ♻ link."""
        return iter(self._blocks)

    def json_blocks(self) -> Iterator[tuple[list[dict], bool]]:
        """The views, JSON_BLOCK at a time: plain data (api.plain_json) unless a row holds a float.

        A view's values are str, bool, None, lists of str and the row's
        duration and exit code: a float only if the DB holds one there.
        """
        maker = ViewMaker()
        for block, classes, retries in self._blocks:
            plain = float not in set(map(type, itertools.chain(map(_DURATION, block), map(_EXITCODE, block))))
            views = list(map(maker.view, block, classes, retries))
            for start in range(0, len(views), JSON_BLOCK):
                yield views[start : start + JSON_BLOCK], plain

    @property
    def views_kept(self) -> bool:
        """True once the views are held (a history's chart read them): a table then reads those."""
        return self._kept is not None

    def __iter__(self) -> Iterator[dict]:
        return iter(self._kept) if self._kept is not None else super().__iter__()

    def __reversed__(self) -> Iterator[dict]:
        # A history's chart reads every view (oldest first) before its table reads them again: the list
        # the chart needs anyway is kept for the table, not made a second time.
        self._kept = list(self)
        return reversed(self._kept)


def page_views(
    conn, rows: Sequence[Result], newest_retry_only: bool = False, classification: str | None = None
) -> list[dict] | LazyViews:
    """:func:`result_views` for a small page; a :class:`LazyViews` (streamed) for a big one.

    Classifications come from the classification index when it is usable
    (see :func:`_classify`). ``classification``: the one every row has (a
    page filtered by it), not looked up again.
    """
    if len(rows) > STREAM_ROWS:
        index = None if classification else context.classification_index()
        return LazyViews(conn, rows, newest_retry_only, index=index, classification=classification)
    rows = list(rows)
    several = len({(row.package, row.release, row.arch) for row in rows}) > 1
    index = context.classification_index() if several and not classification else None
    return list(_views(conn, rows, newest_retry_only, set(), index, classification))
