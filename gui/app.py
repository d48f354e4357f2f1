"""Start the desktop application: the QApplication, the crash dialog, the main window."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialog

from .signals import SignalBridge, exit_code_for, on_signal_close
from .views.about import APP_ID
from .views.crash import CrashHandler
from .views.mainwindow import MainWindow


def make_app(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    # Fractional scale factors (125 %, 150 %) as the OS says, not rounded to 1x or 2x.
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Sealcheck")
    app.setOrganizationName("Sealcheck")
    app.setDesktopFileName(APP_ID)  # Wayland app id: matches resources/APP_ID.desktop
    # No custom palette or style sheet: the OS theme (light or dark) decides colours.
    return app


def run_window(
    make_window: Callable[[], MainWindow],
    *,
    smoke_test: bool = False,
    on_shown: Callable[[], None] | None = None,
) -> int:
    """Show the main window and run the event loop. ``smoke_test`` (the packaging check)
    closes the window as soon as it is shown and exits 0, or 1 if it never appeared.

    SIGTERM and SIGINT close the window as the user would (jobs stopped, everything
    cleaned up), without asking, and the exit code is 128 + the signal number."""
    app = make_app()
    crash = CrashHandler(app)
    crash.install()
    bridge = SignalBridge()
    bridge.install()
    try:
        win = make_window()  # follows light/dark switches itself (palette change events)
        on_signal_close(bridge, lambda signum: _signal_close(app, win, signum))
        win.show()
        # What start-up made (modules, Qt wrappers, the window) lives as long as the app.
        # Frozen, it is left out of Python's full collections, which otherwise scan it
        # all while jobs churn objects: ~300 ms with the event loop stopped, measured.
        gc.collect()
        gc.freeze()
        if smoke_test:
            QTimer.singleShot(0, lambda: _smoke_close(win))
        else:
            QTimer.singleShot(0, win.offer_rotation_resume)
        if on_shown is not None:
            QTimer.singleShot(0, on_shown)
        return app.exec()
    finally:
        bridge.uninstall()
        crash.uninstall()


def _signal_close(app: QApplication, win: MainWindow, signum: int) -> None:
    # A dialog open in its own event loop (a passphrase prompt, a question) is
    # answered "no" first, then the window closes as on a click on its close button.
    while (modal := QApplication.activeModalWidget()) is not None and modal is not win:
        if isinstance(modal, QDialog):
            modal.reject()
        modal.close()
        if QApplication.activeModalWidget() is modal:
            break  # would not close; the window's close still stops the jobs
    win.close_without_asking()
    app.exit(exit_code_for(signum))


def _smoke_close(win: MainWindow) -> None:
    shown = win.isVisible() and win.windowHandle() is not None
    print(f"smoke-test: main window {'shown' if shown else 'NOT shown'}", flush=True)
    win.close()
    QApplication.exit(0 if shown else 1)


def main(*, smoke_test: bool = False) -> int:
    return run_window(MainWindow, smoke_test=smoke_test)
