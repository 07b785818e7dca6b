"""Golden files: what people read, kept as files, so that a wording change is a reviewed diff.

A test compares a text with `tests/golden/NAME`. To accept a deliberate change, run the tests with
LICENSE_BOT_UPDATE_GOLDEN=1 and review the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LICENSE_BOT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}: run with LICENSE_BOT_UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} changed; if that is intended, rerun with LICENSE_BOT_UPDATE_GOLDEN=1"
