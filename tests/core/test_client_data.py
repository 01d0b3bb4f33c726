# SPDX-License-Identifier: GPL-3.0-or-later
"""The recorded client data is byte-for-byte what SOURCES.md describes."""

import hashlib
import re
from pathlib import Path

DATA = Path(__file__).parents[1] / "data" / "client-data"


def test_every_file_matches_its_recorded_sha256():
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (DATA / "SOURCES.md").read_text(), re.M)
    assert len(listed) >= 7
    for digest, name in listed:
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
