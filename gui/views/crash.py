"""Unexpected exceptions: one dialog with a Copy button, never a silent console trace.

``sys.excepthook`` covers the GUI thread (Qt slots); ``threading.excepthook``
covers Python threads. A thread hands its report to the GUI thread through a
queued signal: widgets may only be touched on the GUI thread.
"""

from __future__ import annotations

import platform
import sys
import threading
import traceback
from types import TracebackType
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, QSize, Signal
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core import __version__

from ..errortext import describe
from ..look.sizes import fit_to_screen, text_lines, text_width


def version_info() -> str:
    return (
        f"Sealcheck {__version__}, Python {platform.python_version()}, "
        f"PySide6 {pyside_version}, {platform.platform()}"
    )


class ExceptionDialog(QDialog):
    def __init__(self, exc: BaseException, trace: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        msg = describe(exc)
        self.setWindowTitle("Sealcheck: unexpected problem")
        self.setAccessibleName(self.windowTitle())
        head = QLabel(f"<b>{msg.headline}</b><br>{msg.advice}")
        head.setWordWrap(True)
        self.text = QPlainTextEdit(f"{version_info()}\n\n{trace}")
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Error report")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy = QPushButton("&Copy")
        self.copy.setAccessibleName("Copy the error report")
        buttons.addButton(self.copy, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy.clicked.connect(self.copy_report)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(self.text)
        lay.addWidget(buttons)
        self.resize(fit_to_screen(self, QSize(text_width(self, 90), text_lines(self, 22))))

    def copy_report(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())


class _Relay(QObject):
    report = Signal(object, str)


class CrashHandler(QObject):
    """Install with :meth:`install`; shows at most one dialog at a time."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay()
        self._relay.report.connect(self.show)
        self._open: ExceptionDialog | None = None
        self._saved: tuple[Any, Any] | None = None
        self.shown: list[str] = []

    def install(self) -> None:
        self._saved = (sys.excepthook, threading.excepthook)
        sys.excepthook = self._sys_hook
        threading.excepthook = self._thread_hook

    def uninstall(self) -> None:
        if self._saved is not None:
            sys.excepthook, threading.excepthook = self._saved
            self._saved = None

    def _sys_hook(
        self, typ: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(typ, KeyboardInterrupt):
            QApplication.quit()
            return
        self._relay.report.emit(exc, "".join(traceback.format_exception(typ, exc, tb)))

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        trace = "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        )
        self._relay.report.emit(args.exc_value, trace)

    def show(self, exc: BaseException, trace: str) -> None:
        self.shown.append(trace)
        print(trace, file=sys.stderr)  # also on the console, for logs
        if self._open is not None:  # one dialog: later reports are appended to it
            self._open.text.appendPlainText("\n" + trace)
            return
        dlg = ExceptionDialog(exc, trace, QApplication.activeWindow())
        self._open = dlg
        dlg.finished.connect(self._closed)
        dlg.open()

    def _closed(self) -> None:
        if self._open is not None:
            self._open.deleteLater()
        self._open = None
