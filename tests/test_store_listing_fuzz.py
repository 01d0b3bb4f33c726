# SPDX-License-Identifier: GPL-3.0-or-later
"""Differential test: random names and listing queries give the same rows from LocalStore and real Swift.

Bounded for CI (a few dozen examples); the names use a small alphabet on
purpose so that prefixes, delimiters and markers collide often.
"""

from __future__ import annotations

import tempfile
import uuid

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
                assert rows(local, container, q) == rows(swift, container, q), q
            assert [r.name for r in local.iter_objects(container, page_size=2)] == [
                r.name for r in swift.iter_objects(container, page_size=2)
            ]
        finally:
            swift.close()
