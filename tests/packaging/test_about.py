"""Help → About Sealcheck shows the version and the licence."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from sealcheck.core import __version__


def test_about_box(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from sealcheck.gui.mainwindow import MainWindow
    from sealcheck.gui.settings import SourceStore

    win = MainWindow(SourceStore(tmp_path / "sources.json"))
    qtbot.addWidget(win)
    help_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Help")
    assert win.about_act in help_menu.actions()
    seen: list[str] = []

    def read_and_close() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append(box.windowTitle() + "\n" + box.text())
        box.accept()

    QTimer.singleShot(0, read_and_close)
    win.about_act.trigger()  # modal: returns once read_and_close has closed it
    assert seen, "no About box appeared"
    assert "About Sealcheck" in seen[0]
    assert f"Sealcheck {__version__}" in seen[0]
    assert "Apache License 2.0" in seen[0]
    assert "PySide6" in seen[0]  # the version line for bug reports
    win.close()
