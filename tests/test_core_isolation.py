"""`hypaware_tui/core` and `hypaware_tui/importers` never import a UI library (textual, rich): the daemon and
the importers must run headless and start fast. Checked in a fresh interpreter, importing every module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import importlib, json, pkgutil, sys
import hypaware_tui.core, hypaware_tui.importers
names = []
for pkg in (hypaware_tui.core, hypaware_tui.importers):
    names.append(pkg.__name__)
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        names.append(info.name)
for name in names:
    importlib.import_module(name)
ui = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(json.dumps({"modules": names, "ui": ui}))
"""


def test_core_and_importers_import_no_ui_library() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        "hypaware_tui.core.storage" in result["modules"] and "hypaware_tui.core.config" in result["modules"]
    )
    assert result["ui"] == [], f"UI modules imported by core/importers: {result['ui']}"
