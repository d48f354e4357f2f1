"""Tell the user a long job ended: a desktop notification, else the status bar."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QStatusBar, QSystemTrayIcon, QWidget


class Notifier:
    def __init__(self, status: QStatusBar, icon: QIcon, parent: QWidget) -> None:
        self._status = status
        self._tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            self._tray = QSystemTrayIcon(icon, parent)
            self._tray.setToolTip("Sealcheck")
            self._tray.show()
        self.sent: list[tuple[str, str]] = []

    @property
    def uses_tray(self) -> bool:
        return self._tray is not None

    def notify(self, title: str, text: str, *, failed: bool = False) -> None:
        self.sent.append((title, text))
        if self._tray is not None:
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if failed
                else QSystemTrayIcon.MessageIcon.Information
            )
            self._tray.showMessage(title, text, icon, 10_000)
        self._status.showMessage(f"{title}: {text}", 15_000)

    def close(self) -> None:
        if self._tray is not None:
            self._tray.hide()
            self._tray.deleteLater()
            self._tray = None
