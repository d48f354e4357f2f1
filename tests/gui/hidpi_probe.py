"""Run by test_quality.py in its own process (QT_SCALE_FACTOR must be set before Qt
starts): builds the main window and the dialogs on a high-DPI screen and prints, as one
JSON line, the device pixel ratio, the screen and everything that does not fit or is
not drawn at the screen's resolution."""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QToolButton, QWidget

from sealcheck.core.errors import IntegrityError
from sealcheck.gui.app import make_app
from sealcheck.gui.look.sizes import screen_room
from sealcheck.gui.state.settings import SourceStore
from sealcheck.gui.views.about import about_box
from sealcheck.gui.views.crash import ExceptionDialog
from sealcheck.gui.views.dialogs import SecretDialog, SourceDialog
from sealcheck.gui.views.keydialogs import ImportKeyDialog
from sealcheck.gui.views.mainwindow import MainWindow
from sealcheck.gui.views.restorewizard import RestoreTestWizard
from sealcheck.gui.views.tokenpicker import TokenPickerDialog


def _fits(w: QWidget, what: str, room: QSize, problems: list[str]) -> None:
    """The window's size and the least its layout needs fit in the screen's room."""
    w.show()
    QApplication.processEvents()
    for label, size in (("size", w.size()), ("minimum", w.minimumSizeHint())):
        if size.width() > room.width() or size.height() > room.height():
            problems.append(f"{what}: {label} {size.toTuple()} > room {room.toTuple()}")


def _crisp(button: QToolButton, dpr: float, problems: list[str]) -> None:
    """The button is drawn at device resolution, its icon too, and not empty."""
    shot = button.grab()
    want = QSize(round(button.width() * dpr), round(button.height() * dpr))
    if shot.devicePixelRatio() != dpr or shot.size() != want:
        problems.append(
            f"{button.text()}: grabbed {shot.size().toTuple()} at {shot.devicePixelRatio()}"
        )
    logical = button.iconSize()
    pm = button.icon().pixmap(logical, dpr)
    img = pm.toImage().convertToFormat(QImage.Format.Format_ARGB32)
    opaque = sum(
        img.pixelColor(x, y).alpha() > 128 for x in range(img.width()) for y in range(img.height())
    )
    if pm.size() != logical * dpr or opaque == 0:
        problems.append(f"{button.text()}: icon {pm.size().toTuple()}, {opaque} opaque pixels")


def main() -> int:
    make_app([sys.argv[0]])
    problems: list[str] = []
    win = MainWindow(SourceStore())
    win.show()
    QApplication.processEvents()
    dpr = win.devicePixelRatio()
    room = screen_room(win)
    avail = win.screen().availableGeometry()
    _fits(win, "main window", room, problems)
    frame = win.frameGeometry()
    if not avail.contains(frame):
        problems.append(f"main window {frame.getRect()} outside the screen {avail.getRect()}")
    for a in win.toolbar.actions():  # all on the bar, none in its » menu
        b = win.toolbar.widgetForAction(a)
        if a.isSeparator() or not isinstance(b, QToolButton):
            continue
        if not b.isVisible():
            problems.append(f"toolbar: {a.text()} is in the » menu")
        else:
            _crisp(b, dpr, problems)
    dialogs: list[tuple[str, QWidget]] = [
        ("source dialog", SourceDialog(parent=win)),
        ("secret dialog", SecretDialog("Token PIN", "PIN of the token", win)),
        ("import key dialog", ImportKeyDialog(win.keys_page.store, win)),
        ("token picker", TokenPickerDialog(win, modules=[])),
        ("exception dialog", ExceptionDialog(IntegrityError("boom"), "Traceback: ...", win)),
        ("about box", about_box(win)),
    ]
    wiz = RestoreTestWizard(["Restore test shop.sql.gz (2026-11-27 03:00)"], ["MariaDB"], None, win)
    dialogs.append(("restore test wizard", wiz))
    for what, dlg in dialogs:
        _fits(dlg, what, room, problems)
        dlg.close()
    wiz.done(0)
    win.close()
    screen = win.screen().geometry().size()
    print(
        json.dumps({"dpr": dpr, "screen": [screen.width(), screen.height()], "problems": problems})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
