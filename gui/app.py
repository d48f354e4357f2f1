"""Start the desktop application: the QApplication, the crash dialog, the main window."""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from .crash import CrashHandler
from .mainwindow import MainWindow


def make_app(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    # Fractional scale factors (125 %, 150 %) as the OS says, not rounded to 1x or 2x.
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    from sealcheck.core.memory import tune_allocator

    tune_allocator()
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Sealcheck")
    app.setOrganizationName("Sealcheck")
    app.setDesktopFileName("sealcheck")
    # No custom palette or style sheet: the OS theme (light or dark) decides colours.
    return app


def run_window(make_window: Callable[[], MainWindow]) -> int:
    app = make_app()
    crash = CrashHandler(app)
    crash.install()
    try:
        win = make_window()
        app.styleHints().colorSchemeChanged.connect(lambda _s: win.retint())
        win.show()
        return app.exec()
    finally:
        crash.uninstall()


def main() -> int:
    return run_window(MainWindow)
