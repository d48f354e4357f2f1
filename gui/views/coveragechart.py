"""A chart of coverage over time (issue 14): one stacked bar per day, how many versions
were in each coverage state at the end of that day (core/audit/trend.py).

PySide6-Essentials ships no QtCharts (it is in PySide6-Addons), so this is a small
QPainter widget. A state is never told by colour alone: each has its own fill pattern
too, the legend names it with its count on the last day, a segment tall enough carries
its count, and every bar has a tooltip with the day's counts in words (also the
widget's accessible description for the last day).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QHelpEvent, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from sealcheck.core.audit.coverage import ORDER, State
from sealcheck.core.audit.trend import Day

from ..look.theme import Tone, status_color

# Bottom of a bar first: the good states at its foot, failures on top.
STACK = tuple(reversed(ORDER))
_LOOK: dict[State, tuple[Tone, Qt.BrushStyle]] = {
    State.OK: (Tone.OK, Qt.BrushStyle.SolidPattern),
    State.PARTLY: (Tone.WARNING, Qt.BrushStyle.BDiagPattern),
    State.OUTDATED: (Tone.WARNING, Qt.BrushStyle.Dense5Pattern),
    State.PARTLY_OUTDATED: (Tone.WARNING, Qt.BrushStyle.DiagCrossPattern),
    State.NEVER: (Tone.NEUTRAL, Qt.BrushStyle.HorPattern),
    State.FAILED: (Tone.FAILED, Qt.BrushStyle.Dense3Pattern),  # not solid, as ok is
}


class CoverageChart(QWidget):
    """``set_days`` shows the days given (oldest first)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._days: list[Day] = []
        self._bars: list[QRectF] = []  # where each day's bar was drawn (for tooltips)
        self.setAccessibleName("Coverage over time")
        # Small at least (the window fits a 200 % laptop screen), roomy when it can be.
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:
        return QSize(600, 200)

    def set_days(self, days: Sequence[Day]) -> None:
        self._days = list(days)
        last = self._days[-1].text() if self._days else "no history"
        self.setAccessibleDescription(f"Versions per coverage state by day; last day {last}")
        self.update()

    def days(self) -> list[Day]:
        return list(self._days)

    def legend(self) -> list[str]:
        """The legend's words: each state and its count on the last day."""
        last = self._days[-1].counts if self._days else {}
        return [f"{s.value} {last.get(s.value, 0)}" for s in ORDER]

    def day_at(self, pos: QPoint) -> Day | None:
        for day, bar in zip(self._days, self._bars, strict=False):
            if bar.left() <= pos.x() <= bar.right():
                return day
        return None

    # --- drawing ----------------------------------------------------------------------

    def _colour(self, state: State) -> QColor:
        return status_color(_LOOK[state][0], self.palette())

    def paintEvent(self, _ev: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        fm = self.fontMetrics()
        line = fm.height()
        text = self.palette().color(QPalette.ColorRole.Text)
        legend_bottom = self._draw_legend(p, line, text)
        top = legend_bottom + line // 2
        peak = max((d.total for d in self._days), default=0)
        left = fm.horizontalAdvance(str(max(peak, 1))) + 10
        bottom = self.height() - line - 6
        area = QRectF(left, top, self.width() - left - 6, max(bottom - top, 10))
        p.setPen(QPen(text))
        p.drawLine(area.bottomLeft(), area.bottomRight())
        p.drawText(QRectF(0, area.top(), left - 4, line), Qt.AlignmentFlag.AlignRight, str(peak))
        p.drawText(
            QRectF(0, area.bottom() - line, left - 4, line), Qt.AlignmentFlag.AlignRight, "0"
        )
        self._bars = []
        if not self._days or peak == 0:
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "No verdicts in the history yet")
            p.end()
            return
        step = area.width() / len(self._days)
        scale = area.height() / peak
        for i, day in enumerate(self._days):
            x = area.left() + i * step + step * 0.1
            w = max(step * 0.8, 1.0)
            y = area.bottom()
            for state in STACK:
                n = day.counts.get(state.value, 0)
                if not n:
                    continue
                h = n * scale
                seg = QRectF(x, y - h, w, h)
                self._fill(p, seg, state)
                if h >= line and w >= fm.horizontalAdvance(str(n)) + 2:
                    p.setPen(QPen(text))
                    p.drawText(seg, Qt.AlignmentFlag.AlignCenter, str(n))
                y -= h
            self._bars.append(QRectF(x, area.top(), w, area.height()))
        p.setPen(QPen(text))
        for i in sorted({0, len(self._days) // 2, len(self._days) - 1}):
            label = self._days[i].day.strftime("%d %b")
            cx = area.left() + (i + 0.5) * step
            tw = fm.horizontalAdvance(label)
            lx = min(max(cx - tw / 2, area.left()), area.right() - tw)
            p.drawText(QRectF(lx, area.bottom() + 3, tw + 2, line), label)
        p.end()

    def _fill(self, p: QPainter, r: QRectF, state: State) -> None:
        colour = self._colour(state)
        pale = QColor(colour)
        pale.setAlpha(70)
        p.fillRect(r, pale)
        p.fillRect(r, QBrush(colour, _LOOK[state][1]))
        p.setPen(QPen(colour))
        p.drawRect(r)

    def _draw_legend(self, p: QPainter, line: int, text: QColor) -> int:
        """One row of swatches with words (wrapping); returns where it ends."""
        fm = self.fontMetrics()
        x, y = 4.0, 2.0
        for state, words in zip(ORDER, self.legend(), strict=True):
            width = line + 6 + fm.horizontalAdvance(words) + 14
            if x + width > self.width() and x > 4:
                x, y = 4.0, y + line + 4
            self._fill(p, QRectF(x, y + 2, line - 4, line - 4), state)
            p.setPen(QPen(text))
            p.drawText(QRectF(x + line + 2, y, width, line), words)
            x += width
        return int(y + line)

    def event(self, ev: QEvent) -> bool:
        if ev.type() == QEvent.Type.ToolTip and isinstance(ev, QHelpEvent):
            day = self.day_at(ev.pos())
            if day is not None:
                QToolTip.showText(ev.globalPos(), day.text(), self)
            else:
                QToolTip.hideText()
            return True
        return super().event(ev)
