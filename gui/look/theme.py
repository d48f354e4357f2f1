"""Colours for states (OK, failed, warning, not checked), derived from the current palette.

The app sets no palette of its own: the OS theme (light or dark) decides. This is the
one module that holds colour values. The status colours are seeds for a hue; their
lightness is chosen per palette so that they keep a WCAG contrast of at least 4.5:1
(AA for body text) against every background they are drawn on: Base, AlternateBase
(striped table rows) and Window (labels). Widgets that use them repaint on
``QEvent.PaletteChange``, which Qt sends when the OS switches light/dark.
"""

from __future__ import annotations

import functools
from enum import Enum

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

MIN_CONTRAST = 4.5  # WCAG 2.x AA, normal-size text


class Tone(Enum):
    OK = "ok"
    FAILED = "bad"
    WARNING = "warn"
    # Not checked (a setup problem): no verdict on the backup, so neither green nor red.
    NEUTRAL = "neutral"


# Hue and saturation of each tone (the lightness is found per palette).
_SEEDS = {
    Tone.OK: "#2e7d32",
    Tone.FAILED: "#c62828",
    Tone.WARNING: "#9a5b00",
    Tone.NEUTRAL: "#4f6478",  # slate: reads as information, not as a verdict
}
_R = QPalette.ColorRole


def luminance(c: QColor) -> float:
    """WCAG relative luminance."""

    def ch(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * ch(c.red()) + 0.7152 * ch(c.green()) + 0.0722 * ch(c.blue())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def backgrounds(pal: QPalette) -> list[QColor]:
    """What status text is drawn on: views (Base, AlternateBase) and labels (Window)."""
    return [pal.color(_R.Base), pal.color(_R.AlternateBase), pal.color(_R.Window)]


def _palette(pal: QPalette | None) -> QPalette:
    return pal if pal is not None else QApplication.palette()


def status_color(tone: Tone, pal: QPalette | None = None, on: tuple[QColor, ...] = ()) -> QColor:
    """The tone's colour for text on this palette's backgrounds (and on ``on``)."""
    p = _palette(pal)
    bgs = tuple(c.rgba() for c in (*backgrounds(p), *on))
    return QColor.fromRgba(_pick(tone, bgs, p.color(_R.Text).rgba()))


@functools.lru_cache(maxsize=64)
def _pick(tone: Tone, bgs: tuple[int, ...], text: int) -> int:
    bg = [QColor.fromRgba(x) for x in bgs]
    seed = QColor(_SEEDS[tone])
    h, s, light = seed.hslHueF(), seed.hslSaturationF(), seed.lightnessF()
    # Dark backgrounds take a lighter variant of the hue, light ones a darker one.
    black, white = QColor(0, 0, 0), QColor(255, 255, 255)
    step = -0.01 if contrast(black, bg[0]) >= contrast(white, bg[0]) else 0.01
    while 0.0 <= light <= 1.0:
        c = QColor.fromHslF(h, s, light)
        if min(contrast(c, b) for b in bg) >= MIN_CONTRAST:
            return c.rgba()
        light += step
    return text  # an odd palette no hue fits: the theme's own text colour reads on it


def tint(tone: Tone, pal: QPalette | None = None) -> QColor:
    """A background that marks a row (a table that was emptied): the tone's hue blended
    into Base, as strong as it can be while the palette's Text still reads on it."""
    p = _palette(pal)
    base, text, fg = p.color(_R.Base), p.color(_R.Text), status_color(tone, p)
    for alpha in (0.18, 0.14, 0.1, 0.06):
        c = QColor.fromRgbF(
            base.redF() * (1 - alpha) + fg.redF() * alpha,
            base.greenF() * (1 - alpha) + fg.greenF() * alpha,
            base.blueF() * (1 - alpha) + fg.blueF() * alpha,
        )
        if contrast(text, c) >= MIN_CONTRAST:
            return c
    return base


def rich_text_css(pal: QPalette | None = None) -> str:
    """The default style sheet of rich-text panes: the HTML names classes, never colours.
    The tones are picked to read on the marked rows' tint as well."""
    p = _palette(pal)
    marked = tint(Tone.FAILED, p)
    rules = [f".{t.value} {{ color: {status_color(t, p, (marked,)).name()}; }}" for t in Tone]
    rules.append(f".emptied {{ background-color: {marked.name()}; }}")
    return "\n".join(rules)


def dark_palette() -> QPalette:
    """A dark palette like the desktop's dark themes (Adwaita-dark, Breeze Dark) set.

    The app never sets it: tests and the screenshot script use it to check that the app
    follows a dark OS theme."""
    pal = QPalette(QColor("#353535"), QColor("#353535"))
    roles = {
        _R.Window: "#353535",
        _R.WindowText: "#eeeeee",
        _R.Base: "#2a2a2a",
        _R.AlternateBase: "#323232",
        _R.Text: "#eeeeee",
        _R.Button: "#3c3c3c",
        _R.ButtonText: "#eeeeee",
        _R.BrightText: "#ffffff",
        _R.Highlight: "#3584e4",
        _R.HighlightedText: "#ffffff",
        _R.Link: "#8ab4f8",
        _R.LinkVisited: "#c58af9",
        _R.ToolTipBase: "#2a2a2a",
        _R.ToolTipText: "#eeeeee",
        _R.PlaceholderText: "#9a9a9a",
        _R.Light: "#505050",
        _R.Midlight: "#454545",
        _R.Mid: "#2b2b2b",
        _R.Dark: "#1e1e1e",
        _R.Shadow: "#141414",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    disabled = QPalette.ColorGroup.Disabled
    for role in (_R.WindowText, _R.Text, _R.ButtonText):
        pal.setColor(disabled, role, QColor("#808080"))
    return pal
