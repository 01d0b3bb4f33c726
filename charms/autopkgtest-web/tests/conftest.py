# SPDX-License-Identifier: GPL-3.0-or-later
"""The charm's modules live in src/ (as charmcraft packs them): make them importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
