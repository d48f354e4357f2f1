"""Help → About Sealcheck shows the version and the licence."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QMessageBox

from sealcheck.core import __version__


def test_about_box(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from sealcheck.gui.state.settings import SourceStore
    from sealcheck.gui.views.mainwindow import MainWindow

    win = MainWindow(SourceStore(tmp_path / "sources.json"))
    qtbot.addWidget(win)
    help_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Help")
    assert win.about_act in help_menu.actions()
    seen: list[str] = []
    win.about_act.trigger()  # window-modal (open(), not exec()): returns at once
    qtbot.waitUntil(lambda: win.findChild(QMessageBox) is not None, timeout=5000)
    box = win.findChild(QMessageBox)
    assert box.isVisible() and box.isModal()
    assert box.accessibleName() == "About Sealcheck"
    seen.append(box.windowTitle() + "\n" + box.text())
    box.accept()
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=5000)
    assert "About Sealcheck" in seen[0]
    assert f"Sealcheck {__version__}" in seen[0]
    assert "Apache License 2.0" in seen[0]
    assert "PySide6" in seen[0]  # the version line for bug reports
    win.close()
