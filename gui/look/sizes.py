"""Sizes from the UI font and the screen, never raw pixels: a layout that fits at 100 %
also fits at 200 %, with large fonts, and on a small logical screen (a 1920x1080 laptop
at 200 % has 960x540 logical pixels)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

SCREEN_SHARE = 0.9  # of the available area: room for the window frame and panels


def text_width(w: QWidget, chars: int) -> int:
    """The width of ``chars`` average characters in the widget's font."""
    return w.fontMetrics().averageCharWidth() * chars


def text_lines(w: QWidget, lines: int) -> int:
    """The height of ``lines`` lines of the widget's font."""
    return w.fontMetrics().lineSpacing() * lines


def screen_room(w: QWidget) -> QSize:
    """The most a window may take on the screen it is (or will be) on."""
    screen = w.screen() or QGuiApplication.primaryScreen()
    avail = screen.availableGeometry().size()
    return QSize(int(avail.width() * SCREEN_SHARE), int(avail.height() * SCREEN_SHARE))


def fit_to_screen(w: QWidget, size: QSize) -> QSize:
    return size.boundedTo(screen_room(w))
