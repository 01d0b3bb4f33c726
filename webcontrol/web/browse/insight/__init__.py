# SPDX-License-Identifier: GPL-3.0-or-later
"""Insight pages of browse.cgi (docs/formats.rst, Insight routes): /flaky, Atom feeds, SVG badges, history charts,
testbed changes since the last pass, and /metrics.

browse.cgi registers :data:`bp` with its other blueprints. Every route here
ends in a fixed name (``feed.atom``, ``badge.svg``, ``history.svg``,
``changes``) that neither a run id (ends in ``@``) nor an arch (no ``.``)
can take, so browse's ``/packages/…`` disambiguation is unchanged: Werkzeug
prefers a rule with a fixed last segment over browse's all-variable rules
of the same length. The one shape that could be read both ways,
``/packages/<prefix>/<pkg>`` where the package is literally named
``feed.atom`` or ``badge.svg``, is handed back to browse (see
:func:`webcontrol.web.browse.insight.common.browse_fallback`).

Registering the blueprint also installs app-wide hooks that time every
request for the page-latency histogram of /metrics, and template globals
used by the partials ``partials/history_chart.html`` and
``partials/package_diff.html``.
"""

from __future__ import annotations

import flask

bp = flask.Blueprint("insight", __name__, template_folder="templates")

# Route modules register themselves on bp (imported for that side effect).
from webcontrol.web.browse.insight import badges, changes, charts, feeds, flaky, metrics  # noqa: E402,F401
