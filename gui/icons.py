"""Plain SVG icons from ``resources/icons`` (no generated resource code).

Icons are drawn in ``currentColor``-free neutral strokes and recoloured to the
palette's text colour at load time, so they read on light and dark themes;
QIcon renders SVG at any device pixel ratio, so they stay sharp on high-DPI.
"""

from __future__ import annotations

import functools
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


def icon(name: str) -> QIcon:
    data = _svg(name)
    if data is None:
        return QIcon()
    colour = QApplication.palette().color(QPalette.ColorRole.WindowText).name()
    data = data.replace(b"#333333", colour.encode())
    renderer = QSvgRenderer(QByteArray(data))
    out = QIcon()
    # Several sizes, up to 4x the toolbar size: QIcon picks the one matching the
    # logical size times the screen's device pixel ratio.
    for px in (16, 20, 24, 32, 40, 48, 64, 96):
        img = QImage(QSize(px, px), QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        renderer.render(p)
        p.end()
        out.addPixmap(QPixmap.fromImage(img))
    return out
