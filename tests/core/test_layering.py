"""sealcheck.core never imports Qt or the GUI (style.md rule 1)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def test_core_imports_no_qt_at_runtime() -> None:
    script = Path(__file__).resolve().parents[1] / "check_core_without_qt.py"
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_core_source_never_mentions_qt_or_gui() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|shiboken6|sealcheck\.gui|\.\.gui)", re.M)
    offenders = [p.name for p in CORE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
