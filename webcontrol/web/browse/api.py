# SPDX-License-Identifier: GPL-3.0-or-later
"""HTML pages with JSON twins, and the OpenAPI document that describes the twins.

A page is one *data function* returning a JSON-ready dict. :func:`page`
registers it twice: at ``<rule>`` rendered by a template, and at
``/api/v1<rule>`` as JSON, so both always carry the same data (docs/formats.rst, Routes). Any blueprint (live state, request, insight) describes its own
``/api/v1/`` routes with :func:`describe`; the descriptions are collected
per app when the blueprint is registered, and served at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

import functools
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask
import orjson
from flask.json.provider import DefaultJSONProvider, JSONProvider

import webcontrol

API_PREFIX = "/api/v1"
_EXTENSION = "autopkgtest_openapi"
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")

bp = flask.Blueprint("api", __name__)


def _paths(app: flask.Flask) -> dict[str, dict]:
    return app.extensions.setdefault(_EXTENSION, {})


def query_param(
    name: str, description: str, schema_type: str = "string", minimum: int | None = None, maximum: int | None = None
) -> dict:
    """An OpenAPI query parameter description (with the range the handler enforces)."""
    schema: dict = {"type": schema_type}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def describe(
    blueprint: flask.Blueprint,
    path: str,
    summary: str,
    parameters: list[dict] | tuple = (),
    schema: dict | None = None,
    method: str = "get",
    request_body: dict | None = None,
) -> None:
    """Add one route to the OpenAPI document of every app that registers ``blueprint``.

    ``path`` is the full URL rule (Flask syntax ``<name>`` is accepted);
    ``request_body`` is the JSON schema of a POST body.
    """
    openapi_path = _CONVERTER.sub(r"{\1}", path)
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _CONVERTER.findall(path)
    ]
    operation = {
        "summary": summary,
        "parameters": path_params + list(parameters),
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": schema or {"type": "object"}}},
            },
            "default": {"description": "Error", "content": {"application/json": {"schema": ERROR_SCHEMA}}},
        },
    }
    if request_body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_body}}}

    def record(state: flask.blueprints.BlueprintSetupState) -> None:
        _paths(state.app).setdefault(openapi_path, {})[method] = operation

    blueprint.record(record)


class StreamedList:
    """A list a page produces while it is sent (big pages): iterable any number of times, with len()."""

    def __init__(self, produce: Callable[[], Iterable], length: int) -> None:
        self._produce, self._length = produce, length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator:
        return iter(self._produce())

    def __reversed__(self) -> Iterator:
        return reversed(list(self))

    def json_blocks(self) -> Iterator[tuple[list, bool]]:
        """The items, JSON_BLOCK at a time, each block with whether it holds plain data (see :func:`plain_json`)."""
        return _blocks(self)


def _blocks(values: Iterable, plain: bool = False) -> Iterator[tuple[list, bool]]:
    pending = iter(values)
    while block := list(itertools.islice(pending, JSON_BLOCK)):
        yield block, plain


#: Items of a streamed JSON list serialised per call (see stream_json).
JSON_BLOCK = 200
#: A streamed page goes out in pieces of about this many characters, not one per template output.
STREAM_PIECE = 64 * 1024


def _pieces(parts: Iterable[str]) -> Iterator[str]:
    """The first part at once (the page head reaches the browser early), then pieces of STREAM_PIECE.

    A part longer than that (a cached fragment of megabytes) goes out in slices, so no request
    holds a second copy of it, or its bytes, at once.
    """
    parts = iter(parts)
    for part in parts:
        yield part
        break
    buffer: list[str] = []
    size = 0
    for part in parts:
        if len(part) > STREAM_PIECE:
            if buffer:
                yield "".join(buffer)
                buffer, size = [], 0
            for start in range(0, len(part), STREAM_PIECE):
                yield part[start : start + STREAM_PIECE]
            continue
        buffer.append(part)
        size += len(part)
        if size >= STREAM_PIECE:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


class Fragment:
    """HTML rendered once and kept as its UTF-8 bytes, for pages that send it many times (see stream_page).

    Held as bytes, a fragment of megabytes costs a request neither a copy
    into the page's text nor an encoding, and the process one byte per
    ASCII character whatever other characters the HTML holds (a str with
    one "⚠" takes two or four bytes for every character).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        #: What the template outputs in its place; unguessable, so no text on the page can stand for it.
        self.token = f"<!--fragment {uuid.uuid4().hex}-->"

    def __html__(self) -> str:
        return self.token


def _with_fragments(parts: Iterable[str], fragments: list[Fragment]) -> Iterator[str | bytes]:
    """The page's pieces with each fragment's token replaced by the fragment's bytes, in slices."""
    for part in parts:
        found = [fragment for fragment in fragments if fragment.token in part]
        if not found:
            yield part
            continue
        pending = part
        for fragment in found:
            before, _token, pending = pending.partition(fragment.token)
            if before:
                yield before
            data = fragment.data
            for start in range(0, len(data), STREAM_PIECE):
                yield data[start : start + STREAM_PIECE]
        if pending:
            yield pending


def stream_page(template: str, **context) -> flask.Response:
    """An HTML page sent while it is rendered, in pieces (see _pieces); Fragment values go out as they are."""
    fragments = [value for value in context.values() if isinstance(value, Fragment)]
    parts = _pieces(flask.stream_template(template, **context))
    return flask.Response(_with_fragments(parts, fragments) if fragments else parts, mimetype="text/html")


def _streamed(data: dict) -> bool:
    return any(isinstance(value, StreamedList) for value in data.values())


def keep_db(response: flask.Response) -> flask.Response:
    """A streamed page reads the DB while it is sent: its connection closes with the response, not the request."""
    from webcontrol.web.browse import context

    conn = context.detach_db()
    if conn is not None:
        response.call_on_close(conn.close)
    return response


def stream_json(data: dict | Iterable, plain: bool = False) -> flask.Response:
    """A JSON response written while it is sent: StreamedList values item by item.

    The same text ``flask.jsonify`` makes (keys sorted, compact), without
    holding it all in memory. ``plain``: ``data`` is a list of plain data
    (see :func:`plain_json`).
    """
    json_provider = flask.current_app.json

    def dumps(value) -> str:
        return json_provider.dumps(value, separators=(",", ":"))

    def items(values: StreamedList | Iterable) -> Iterator[str]:
        # A few hundred items per dumps() call: the same text as one call per item, for less CPU.
        yield "["
        first = True
        for block, plain_block in values.json_blocks() if isinstance(values, StreamedList) else _blocks(values, plain):
            yield ("" if first else ",") + ((plain_block and plain_json(block, json_provider)) or dumps(block))[1:-1]
            first = False
        yield "]"

    def body() -> Iterator[str]:
        if not isinstance(data, dict):
            yield from items(data)
            yield "\n"
            return
        yield "{"
        for number, key in enumerate(sorted(data)):
            yield ("," if number else "") + dumps(key) + ":"
            value = data[key]
            if isinstance(value, StreamedList):
                yield from items(value)
            else:
                yield dumps(value)
        yield "}\n"

    return flask.Response(flask.stream_with_context(_pieces(body())), mimetype="application/json")


def plain_json(values: list, json_provider: JSONProvider) -> str | None:
    """``json_provider.dumps(values, separators=(",", ":"))`` made by orjson, or None when that text could differ.

    For plain data: dicts with str keys, lists, str, int, bool and None, no
    float (orjson writes ``1e-05`` as ``0.00001``). A big page's JSON is
    a tenth of the CPU time this way. orjson writes non-ASCII characters
    and DEL as they are where Flask's provider escapes them: such a text,
    a surrogate or an int beyond 64 bits (orjson refuses those) means None.
    """
    if type(json_provider) is not DefaultJSONProvider or not (json_provider.ensure_ascii and json_provider.sort_keys):
        return None
    try:
        data = orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return None
    if not data.isascii() or b"\x7f" in data:
        return None
    return data.decode("ascii")


def encode_members(values: dict) -> dict[str, bytes]:
    """Members of a JSON object encoded once, to be sent by :func:`members_response` many times.

    Live pages answer thousands of requests from one version of their files:
    what does not change between those requests is encoded when the version
    is read, not in every request.
    """
    json_provider = flask.current_app.json
    return {
        key: (json_provider.dumps(key) + ":" + json_provider.dumps(value, separators=(",", ":"))).encode("utf-8")
        for key, value in values.items()
    }


class EncodedMember(list):
    """The pieces of a member made by :func:`encoded_member`, with how to send them worked out once.

    A live route sends the same member (thousands of encoded jobs) in every
    request until the next version of its file: its size and its runs (the
    pieces that go out together, about STREAM_PIECE bytes each) are found
    when it is made, so a request joins each run in one call instead of
    looking at each of its pieces.
    """

    __slots__ = ("runs", "size")

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__(pieces)
        #: (start, end, bytes) of each run; a piece longer than STREAM_PIECE is a run of its own
        self.runs: list[tuple[int, int, int]] = []
        start = size = 0
        for number, piece in enumerate(pieces):
            if len(piece) > STREAM_PIECE:
                if number > start:
                    self.runs.append((start, number, size))
                self.runs.append((number, number + 1, len(piece)))
                start, size = number + 1, 0
                continue
            size += len(piece)
            if size >= STREAM_PIECE:
                self.runs.append((start, number + 1, size))
                start, size = number + 1, 0
        if len(pieces) > start:
            self.runs.append((start, len(pieces), size))
        self.size = sum(run[2] for run in self.runs)


def encoded_member(key: str, items: list[bytes], object_items: bool = False) -> EncodedMember:
    """A member whose value is a JSON array (or object) of items encoded beforehand, kept as its pieces.

    ``items`` are encoded values (or ``"key":value`` pairs, for an object);
    the pieces are sent as they are, so items encoded once can appear in
    several members and several versions without a joined copy of each.
    """
    opening, closing = (b"{", b"}") if object_items else (b"[", b"]")
    pieces = [flask.current_app.json.dumps(key).encode("utf-8") + b":" + opening]
    for number, item in enumerate(items):
        if number:
            pieces.append(b",")
        pieces.append(item)
    pieces.append(closing)
    return EncodedMember(pieces)


def _slices(chunk: bytes) -> Iterator[bytes]:
    """``chunk`` in slices of STREAM_PIECE (a member megabytes long is never copied whole)."""
    if len(chunk) <= STREAM_PIECE:
        yield chunk
        return
    for start in range(0, len(chunk), STREAM_PIECE):
        yield chunk[start : start + STREAM_PIECE]


def _runs(part: bytes | EncodedMember) -> Iterator[tuple[list[bytes] | tuple[bytes], int]]:
    """``(pieces, bytes)`` of a member, none longer than STREAM_PIECE but a run of shorter pieces."""
    if type(part) is not EncodedMember:
        yield from (((piece,), len(piece)) for piece in _slices(part))
        return
    for start, end, size in part.runs:
        if size > STREAM_PIECE and end - start == 1:
            yield from (((piece,), len(piece)) for piece in _slices(part[start]))
        else:
            yield part[start:end], size


def members_response(*encoded: dict[str, bytes | EncodedMember], **values) -> flask.Response:
    """The JSON object of the encoded members and ``values``: the text ``flask.jsonify`` makes of them.

    Keys sorted, compact, one newline at the end. A member megabytes long
    goes out in slices of STREAM_PIECE as it is sent, never copied whole.
    """
    members: dict[str, bytes | EncodedMember] = {key: piece for part in encoded for key, piece in part.items()}
    members.update(encode_members(values))
    parts: list[bytes | EncodedMember] = []
    for number, key in enumerate(sorted(members)):
        if number:
            parts.append(b",")
        parts.append(members[key])

    def body() -> Iterator[bytes]:
        pending = [b"{"]
        size = 1
        for part in parts:
            for pieces, run_size in _runs(part):
                pending.extend(pieces)
                size += run_size
                if size >= STREAM_PIECE:  # small pieces go out together, not one write each
                    yield b"".join(pending)
                    pending, size = [], 0
        pending.append(b"}\n")
        yield b"".join(pending)

    response = flask.Response(body(), mimetype="application/json")
    length = 3 + sum(part.size if type(part) is EncodedMember else len(part) for part in parts)
    response.headers["Content-Length"] = str(length)
    return response


def page(
    blueprint: flask.Blueprint,
    rules: str | list[str],
    template: str,
    summary: str,
    parameters: list[dict] | tuple = (),
    schema: dict | None = None,
    endpoint: str | None = None,
    document: bool = True,
) -> Callable:
    """Register a data function as an HTML page and its ``/api/v1`` JSON twin.

    The function returns a dict (the JSON body, also the template's
    context) or a Response (redirects), and raises WebError for errors.
    """
    rule_list = [rules] if isinstance(rules, str) else rules

    def decorator(func: Callable[..., Any]) -> Callable:
        name = endpoint or func.__name__

        @functools.wraps(func)
        def html_view(**kwargs):
            data = func(**kwargs)
            if isinstance(data, flask.Response):
                return data
            name = template or f"{data['page']}.html"
            if _streamed(data):
                return keep_db(flask.Response(_pieces(flask.stream_template(name, **data)), mimetype="text/html"))
            return flask.render_template(name, **data)

        @functools.wraps(func)
        def json_view(**kwargs):
            data = func(**kwargs)
            if isinstance(data, flask.Response):
                return data
            if _streamed(data):
                return keep_db(stream_json(data))
            return flask.jsonify(data)

        for rule in rule_list:
            blueprint.add_url_rule(rule, name, html_view)
            blueprint.add_url_rule(API_PREFIX + rule, f"{name}_json", json_view)
            if document:
                describe(blueprint, API_PREFIX + rule, summary, parameters, schema)
        return func

    return decorator


def is_api_request() -> bool:
    return flask.request.path.startswith(API_PREFIX + "/")


_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_INT = {"type": "integer", "nullable": True}
_BOOL = {"type": "boolean"}
#: One result row, as every page's JSON twin carries it.
RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        **{
            key: _STR
            for key in (
                "package",
                "release",
                "arch",
                "run_id",
                "triggers",
                "env",
                "date",
                "human_duration",
                "requester",
                "result",
                "run_url",
                "history_url",
                "log_url",
                "log_viewer_url",
                "artifacts_url",
            )
        },
        "version": _NSTR,
        "trigger_list": {"type": "array", "items": _STR},
        "all_proposed": _BOOL,
        "duration": _INT,
        "exitcode": _INT,
        "classification": {
            "type": "string",
            "nullable": True,
            "enum": ["pass", "regression", "always_failed", "fixed", "flaky", "neutral", "tmpfail", "denylisted", None],
        },
        "uuid": _NSTR,
        "show_retry": _BOOL,
        "retry_url": _NSTR,
    },
}
RESULTS_LIST = {"type": "array", "items": RESULT_SCHEMA}


def object_schema(**properties: dict) -> dict:
    """A JSON object schema with the given properties (other keys may be present)."""
    return {"type": "object", "properties": properties}


ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}, "incident": {"type": "string"}},
}


@bp.route(API_PREFIX + "/openapi.json")
def openapi():
    paths = _paths(flask.current_app)
    document = {
        "openapi": "3.0.3",
        "info": {
            "title": "autopkgtest-web browse API",
            "version": webcontrol.__version__,
            "description": "JSON twins of the HTML pages: /api/v1/<page path> returns the page's data.",
        },
        "paths": {path: paths[path] for path in sorted(paths)},
    }
    return flask.jsonify(document)
