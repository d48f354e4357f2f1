"""Who we are: the application id, and the About box (Help → About Sealcheck)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from sealcheck.core import __version__

from .crash import version_info

# Reverse-DNS id: the .desktop file, the AppStream metainfo, the icons and the Flatpak
# manifest under resources/ and packaging/ are all named after it.
APP_ID = "io.github.sealcheck.Sealcheck"
LICENSE = "Apache-2.0"
HOMEPAGE = "https://github.com/sealcheck/sealcheck"


def about_html() -> str:
    return (
        f"<h3>Sealcheck {escape(__version__)}</h3>"
        "<p>Verify, restore and restore-test envelope-encrypted database backups.</p>"
        f'<p>Licensed under the <a href="https://www.apache.org/licenses/LICENSE-2.0">'
        f"Apache License 2.0</a> ({LICENSE}). Qt and PySide6 are used under the LGPLv3 "
        "(Help → About Qt).</p>"
        f'<p><a href="{HOMEPAGE}">{HOMEPAGE}</a></p>'
        f"<p><small>{escape(version_info())}</small></p>"
    )


def about_box(parent: QWidget | None = None) -> QMessageBox:
    """The About box, as ``QMessageBox.about`` makes it, plus a name for screen readers
    and links that Tab reaches and Enter opens."""
    box = QMessageBox(parent)
    box.setWindowTitle("About Sealcheck")
    box.setAccessibleName("About Sealcheck")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_html())
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setEscapeButton(QMessageBox.StandardButton.Ok)
    if parent is not None and not parent.windowIcon().isNull():
        box.setIconPixmap(parent.windowIcon().pixmap(QSize(64, 64), box.devicePixelRatio()))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return box


def show_about(parent: QWidget) -> QMessageBox:
    box = about_box(parent)
    box.open()
    return box
