# SPDX-License-Identifier: GPL-3.0-or-later
"""The escaping of HTML made with string formats is the escaping of the templates it replaced."""

from __future__ import annotations

import markupsafe
import pytest

from webcontrol.web.browse import markup


@pytest.mark.parametrize(
    "value",
    ["", "plain text", "<b>&amp;\"'</b>", "a&b", "☃ ♻ ⬇", "\x00", 0, 42, -1.5, 12.25, None, ["t", "<x>"], {"k": "&"}],
)
def test_escape_is_the_templates_escape(value):
    assert markup.escape(value) == str(markupsafe.escape(value))
    assert type(markup.escape(value)) is str
