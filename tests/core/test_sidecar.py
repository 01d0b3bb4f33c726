# SPDX-License-Identifier: GPL-3.0-or-later
"""The watermark both sidecar indexes keep (webcontrol.sidecar)."""

import json
import sqlite3

from webcontrol import db, sidecar


def _public(tmp_path):
    conn = db.connect_rw(tmp_path / "public.db")
    db.record_results(
        conn,
        [
            db.ResultRecord("noble", "amd64", "hello", f"20240101_00000{n}_abcde@", "1", "hello/1", 5, 0, "", "", None)
            for n in range(3)
        ],
    )
    return conn


def _state(rowid, row):
    return {"rowid": str(rowid), "row": json.dumps(row)}


def test_a_watermark_holds_while_its_row_is_the_same_result(tmp_path):
    source = _public(tmp_path)
    test_id, run_id = source.execute("SELECT test_id, run_id FROM result WHERE rowid = 2").fetchone()
    assert sidecar.valid_watermark(source, _state(2, [test_id, run_id])) == 2
    # Trigger indexes written before the shared module kept the test id as text: still valid, no rebuild.
    assert sidecar.valid_watermark(source, _state(2, [str(test_id), run_id])) == 2
    assert sidecar.valid_watermark(source, _state(0, [])) == 0


def test_a_rebuilt_db_or_a_damaged_state_invalidates_the_watermark(tmp_path):
    source = _public(tmp_path)
    test_id, _run_id = source.execute("SELECT test_id, run_id FROM result WHERE rowid = 2").fetchone()
    assert sidecar.valid_watermark(source, _state(2, [test_id, "20230101_000000_fffff@"])) is None  # another run
    assert sidecar.valid_watermark(source, _state(9, [test_id, "20240101_000001_abcde@"])) is None  # row gone
    assert sidecar.valid_watermark(source, {"rowid": "x"}) is None
    assert sidecar.valid_watermark(source, {}) is None
    assert sidecar.valid_watermark(source, {"rowid": "2", "row": "{not json"}) is None


def test_stored_watermark_reads_back_valid(tmp_path):
    source = _public(tmp_path)
    index = sqlite3.connect(tmp_path / "index.db", isolation_level=None)
    index.execute("CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT)")
    sidecar.store_watermark(index, source, 3)
    assert sidecar.valid_watermark(source, sidecar.read_state(index)) == 3
