# SPDX-License-Identifier: GPL-3.0-or-later
"""Differential test: random names and listing queries give the same rows from LocalStore and real Swift.

Bounded for CI (a few dozen examples); the names use a small alphabet on
purpose so that prefixes, delimiters and markers collide often.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webcontrol.config import from_dict
from webcontrol.store.local import LocalStore
from webcontrol.store.swift import SwiftStore

ALPHABET = "ab-.@é"
segment = st.text(ALPHABET, min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
object_name = st.lists(segment, min_size=1, max_size=3).map("/".join)


def representable(names: list[str]) -> list[str]:
    """Drop names that a directory tree cannot hold next to the others (a file that is also a folder)."""
    kept: list[str] = []
    for name in sorted(set(names)):
        if any(other.startswith(name + "/") or name.startswith(other + "/") for other in kept):
            continue
        kept.append(name)
    return kept


bound = st.one_of(st.none(), st.text(ALPHABET + "/", max_size=6))
query = st.fixed_dictionaries(
    {
        "prefix": bound,
        "delimiter": st.sampled_from([None, "/", "@", "-"]),
        "marker": bound,
        "end_marker": bound,
        "limit": st.sampled_from([1, 2, 3, 10000]),
    }
)


def reference(names: list[str], q: dict) -> list[tuple[str, str | None]]:
    """Swift's listing rules, written plainly: the model both stores are held to."""
    prefix, delimiter, marker = q["prefix"] or "", q["delimiter"], q["marker"]
    out: list[tuple[str, str | None]] = []
    for name in sorted(names):
        if not name.startswith(prefix) or (marker and name <= marker):
            continue
        if q["end_marker"] and name >= q["end_marker"]:
            break
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                subdir = name[: cut + len(delimiter)]
                if subdir != marker and (not out or out[-1][0] != subdir):
                    out.append((subdir, subdir))
                continue
        out.append((name, None))
    return out[: q["limit"]]


def rows(store, container, q):
    return [(row.name, row.subdir) for row in store.list_objects(container, **q)]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(names=st.lists(object_name, min_size=0, max_size=8), queries=st.lists(query, min_size=1, max_size=6))
def test_local_lists_like_swift(swift_server, names, queries):
    names = representable(names)
    container = f"autopkgtest-fuzz{uuid.uuid4().hex[:10]}"
    swift = SwiftStore.from_config(from_dict({"swift": swift_server.config_section()}))
    with tempfile.TemporaryDirectory() as root:
        local = LocalStore(root)
        try:
            swift.put_object(container, "placeholder", b"")
            local.put_object(container, "placeholder", b"")
            swift.delete_object(container, "placeholder")
            local.delete_object(container, "placeholder")
            for name in names:
                swift.put_object(container, name, b"x")
                local.put_object(container, name, b"x")
            for q in queries:
                from_swift = rows(swift, container, q)
                assert rows(local, container, q) == from_swift, q
                assert reference(names, q) == from_swift, q
            assert [r.name for r in local.iter_objects(container, page_size=2)] == [
                r.name for r in swift.iter_objects(container, page_size=2)
            ]
        finally:
            swift.close()


deep_name = st.lists(segment, min_size=1, max_size=5).map("/".join)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(names=st.lists(deep_name, min_size=0, max_size=40), queries=st.lists(query, min_size=1, max_size=8))
def test_local_matches_the_reference_on_bigger_trees(names, queries):
    names = representable(names)
    with tempfile.TemporaryDirectory() as root:
        local = LocalStore(root)
        (Path(root) / "c").mkdir()
        for name in names:  # plain files: this is about listings, and put_object's fsync is slow
            path = Path(root) / "c" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        for q in queries:
            assert rows(local, "c", q) == reference(names, q), q
