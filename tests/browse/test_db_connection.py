# SPDX-License-Identifier: GPL-3.0-or-later
"""A web thread keeps its public-DB connection between requests: never past a new publish or a new index."""

from __future__ import annotations

import os

from tests.browse.test_classindex import build_public, check_pages, make_app
from webcontrol import classindex


def test_pages_read_each_published_db_and_index_as_soon_as_it_is_in_place(tmp_path):
    public, index = tmp_path / "public.db", tmp_path / "classification-index.db"
    build_public(public, seed=3, count=900)
    classindex.refresh(public, index)
    client = make_app(public)
    check_pages(client, public)
    # publish-db's way: a new file renamed over the old one, then a new index for it.
    staged = tmp_path / "staged.db"
    build_public(staged, seed=11, count=1500)
    os.replace(staged, public)
    os.unlink(index)
    classindex.refresh(public, index)
    check_pages(client, public)
