"""Plain SVG icons from ``resources/icons`` (no generated resource code).

Icons are drawn in ``currentColor``-free neutral strokes (``#333333``) and recoloured
to the palette's text colour at load time, so they read on light and dark themes (the
main window loads them again on ``QEvent.PaletteChange``). Each icon holds pixmaps
rendered from the SVG at the exact device size of its two logical sizes (16 in lists,
20 in the toolbar) at the usual scale factors (100 % to 400 %), so QIcon hands out a
sharp pixmap with the right device pixel ratio instead of scaling one.
"""

from __future__ import annotations

import functools
import warnings
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication


def _folder() -> Path | None:
    # resources/ installs as sealcheck.resources (package-dir mapping), so the
    # same lookup serves a checkout, an editable install, a wheel and a bundle.
    pkg = resources.files("sealcheck.resources") / "icons"
    return Path(str(pkg)) if pkg.is_dir() else None


@functools.cache
def _svg(name: str) -> bytes | None:
    folder = _folder()
    if folder is None:
        return None
    path = folder / f"{name}.svg"
    return path.read_bytes() if path.is_file() else None


LOGICAL_SIZES = (16, 20)
SCALES = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
DEVICE_SIZES = sorted({round(s * f) for s in LOGICAL_SIZES for f in SCALES} | {48, 64, 96, 128})


def icon(name: str) -> QIcon:
    data = _svg(name)
    if data is None:
        return QIcon()
    colour = QApplication.palette().color(QPalette.ColorRole.WindowText).name()
    data = data.replace(b"#333333", colour.encode())
    renderer = QSvgRenderer(QByteArray(data))
    if not renderer.isValid():  # a packaging bug: say so, but keep the app usable
        warnings.warn(f"resources/icons/{name}.svg is not an SVG Qt can draw", stacklevel=2)
        return QIcon()
    out = QIcon()
    # QIcon picks the pixmap matching the logical size times the device pixel ratio.
    for px in DEVICE_SIZES:
        img = QImage(QSize(px, px), QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        renderer.render(p)
        p.end()
        out.addPixmap(QPixmap.fromImage(img))
    return out
