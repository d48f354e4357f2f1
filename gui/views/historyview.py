"""The History page: every recorded result of the selected versions, their backup, the
source, or everything, filtered by period, result and kind; and evidence export.

The rows come from core's verification history (history.py), read on a worker thread
(a source may hold thousands of entries, each with its report) and shown newest first.
The result column is the verdict (core/records/verdict.py): OK, FAILED, or NOT CHECKED (setup
problem), never FAILED for a run that could not check the backup.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.records.history import Entry, History, Kind
from sealcheck.core.records.sections import rotation_summary
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.listing import version_text

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext
from ..look.theme import Tone, status_color
from ..state.tablemodel import RowTableModel
from ..state.versions import VersionKey

LIMIT = 5000  # rows shown at most; the newest ones (a filter narrows them)

PERIODS: tuple[tuple[str, int | None], ...] = (
    ("Any time", None),
    ("Last 24 hours", 1),
    ("Last 7 days", 7),
    ("Last 30 days", 30),
    ("Last 365 days", 365),
)
RESULTS: tuple[tuple[str, Verdict | None], ...] = (
    ("Any result", None),
    ("OK", Verdict.OK),
    ("FAILED", Verdict.FAILED),
    ("NOT CHECKED (setup problem)", Verdict.NOT_CHECKED),
)
KINDS: tuple[tuple[str, Kind | None], ...] = (
    ("Any kind", None),
    ("Verify", Kind.VERIFY),
    ("Restore", Kind.RESTORE),
    ("Restore test", Kind.RESTORE_TEST),
    ("Key rotation", Kind.ROTATION),
)
_KIND_WORDS = {
    Kind.VERIFY: "verify",
    Kind.RESTORE: "restore",
    Kind.RESTORE_TEST: "restore test",
    Kind.ROTATION: "key rotation",
}
_TONE = {Verdict.OK: Tone.OK, Verdict.FAILED: Tone.FAILED, Verdict.NOT_CHECKED: Tone.NEUTRAL}


class Scope(enum.Enum):
    VERSIONS = "The selected versions"
    BACKUP = "The selected backup"
    SOURCE = "This source"
    ALL = "Every source"


def glob_escape(text: str) -> str:
    """``text`` matched literally by SQLite's GLOB (``*``, ``?`` and ``[`` bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@dataclass(frozen=True)
class Context:
    """What the window has selected, as the History page's scopes read it."""

    source_uri: str | None = None  # s3://bucket/prefix or a folder; None: no source
    source_name: str = ""
    backup: str | None = None  # the selected backup's name
    backup_keys: frozenset[str] = frozenset()  # its object keys (a nightly series: many)
    versions: frozenset[VersionKey] = frozenset()


@dataclass(frozen=True)
class Query:
    scope: Scope
    context: Context
    since: _dt.datetime | None = None
    verdict: Verdict | None = None
    kind: Kind | None = None

    @property
    def pattern(self) -> str | None:
        """The GLOB on URI or key that narrows the SQL query (exact matching follows)."""
        uri = self.context.source_uri
        if self.scope is Scope.ALL or uri is None:
            return None
        return glob_escape(uri) + "*"

    def in_scope(self, e: Entry) -> bool:
        c = self.context
        if self.scope is Scope.VERSIONS:
            return e.version_key in c.versions
        if self.scope is Scope.BACKUP:
            return e.subject.key in c.backup_keys
        return True

    @property
    def empty(self) -> bool:
        """A scope with nothing selected in it lists nothing (not everything)."""
        c = self.context
        if self.scope is Scope.VERSIONS:
            return not c.versions
        if self.scope is Scope.BACKUP:
            return not c.backup_keys
        if self.scope is Scope.SOURCE:
            return c.source_uri is None
        return False


@dataclass(frozen=True)
class Row:
    entry: Entry
    display: tuple[str, ...]


@dataclass(frozen=True)
class Loaded:
    rows: list[Row]
    latest: list[Entry]  # the newest verdict of each version in scope (report export --latest)
    truncated: bool


def row_of(e: Entry) -> Row:
    when = e.when_dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    result = e.verdict.label
    if e.verdict is Verdict.FAILED and e.failed_layer:
        result += f" ({e.failed_layer})"
    if e.kind is Kind.ROTATION:
        result = rotation_summary(json.loads(e.result_json))
    shown = (
        when,
        _KIND_WORDS[e.kind],
        e.subject.key,
        str(version_text(e.subject.version_id)),
        result,
        f"#{e.id}",
        e.host,
    )
    return Row(e, shown)


def load(ctx: WorkerContext, path: Path, q: Query) -> Loaded:
    """On a worker thread: the entries of the query, newest first, and the latest
    verdict of each version in scope. A History of its own: one connection per thread."""
    if q.empty:
        return Loaded([], [], False)
    hist = History(path)
    found = hist.entries(
        source=q.pattern,
        kind=q.kind,
        verdict=q.verdict,
        since=q.since,
        limit=LIMIT + 1,
        rotations=True,
    )
    ctx.cancel.check()
    rows = [row_of(e) for e in found[:LIMIT] if q.in_scope(e)]
    ctx.cancel.check()
    latest = hist.latest_by_version(source=q.pattern, verdicts_only=True)
    return Loaded(rows, [e for e in latest.values() if q.in_scope(e)], len(found) > LIMIT)


class HistoryModel(RowTableModel[Row]):
    COLUMNS = ("When", "Kind", "Backup", "Version", "Result", "Entry", "Host")
    RESULT_COLUMN = 4

    def set_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def entry(self, row: int) -> Entry:
        return self._rows[row].entry

    def entries(self) -> list[Entry]:
        return [r.entry for r in self._rows]

    def cell_text(self, i: int, row: Row, col: int) -> str:
        return row.display[col]

    def cell_data(self, i: int, row: Row, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and col == self.RESULT_COLUMN:
            return QBrush(status_color(_TONE[row.entry.verdict]))
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.entry.subject.uri
        return None


def _combo(name: str, items: Iterable[str]) -> QComboBox:
    box = QComboBox()
    box.setAccessibleName(name)
    box.view().setAccessibleName(f"{name}: choices")  # the drop-down list, read aloud too
    box.addItems(list(items))
    # Narrow windows (a laptop at 200 %): the box may be narrower than its longest item.
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)
    return box


class HistoryView(QWidget):
    """The page. ``set_context`` follows the window's selection; the rows are read
    again when the page is shown, a filter changes, or a new result is recorded."""

    loaded = Signal(int)  # rows shown
    export_requested = Signal()

    def __init__(self, history: History | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.context = Context()
        self.latest: list[Entry] = []
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._loading: Worker | None = None
        self._again = False  # a reload was asked for while one ran
        self._stale = True  # read when next shown

        self.scope = _combo("History scope", (s.value for s in Scope))
        self.scope.setCurrentIndex(list(Scope).index(Scope.SOURCE))
        self.period = _combo("Period", (p for p, _ in PERIODS))
        self.result = _combo("Result", (r for r, _ in RESULTS))
        self.kind = _combo("Kind", (k for k, _ in KINDS))
        self.export_btn = QPushButton("&Export evidence…")
        self.export_btn.setAccessibleName("Export evidence report")
        self.export_btn.setToolTip(
            "Write an evidence report (HTML or JSON, sealed with a SHA-256) of the selected "
            "entries or of the latest verdict of each version, as 'sealcheck report export'"
        )
        self.export_btn.clicked.connect(self.export_requested)
        self.table = QTableView()
        self.table.setAccessibleName("History entries")
        self.model = HistoryModel(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.setTabKeyNavigation(False)
        hdr = self.table.horizontalHeader()
        hdr.setAccessibleName("History entries: columns")
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hdr.setStretchLastSection(True)
        self.status = QLabel()
        self.status.setAccessibleName("History status")
        self.status.setWordWrap(True)

        # Two rows of filters: one row would not fit a laptop screen at 200 %.
        filters = QGridLayout()
        for i, (label, box) in enumerate(
            (
                ("Sho&w", self.scope),
                ("&Period", self.period),
                ("Res&ult", self.result),
                ("K&ind", self.kind),
            )
        ):
            lab = QLabel(label)
            lab.setBuddy(box)
            filters.addWidget(lab, i // 2, (i % 2) * 2)
            filters.addWidget(box, i // 2, (i % 2) * 2 + 1)
        filters.setColumnStretch(4, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.export_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(filters)
        lay.addWidget(self.table, 1)
        lay.addLayout(bottom)

        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(150)  # a burst of changes reads the history once
        self._reload_timer.timeout.connect(self.reload)
        for box in (self.scope, self.period, self.result, self.kind):
            box.currentIndexChanged.connect(lambda _i: self.reload())

    # --- what to show ---------------------------------------------------------------

    def set_scope(self, scope: Scope) -> None:
        self.scope.setCurrentIndex(list(Scope).index(scope))

    def query(self, now: _dt.datetime | None = None) -> Query:
        days = PERIODS[self.period.currentIndex()][1]
        now = now or _dt.datetime.now(_dt.UTC)
        return Query(
            scope=list(Scope)[self.scope.currentIndex()],
            context=self.context,
            since=now - _dt.timedelta(days=days) if days else None,
            verdict=RESULTS[self.result.currentIndex()][1],
            kind=KINDS[self.kind.currentIndex()][1],
        )

    def set_context(self, context: Context) -> None:
        if context != self.context:
            self.context = context
            self.reload_soon()

    def reload_soon(self) -> None:
        """Read again shortly if the page is on screen; otherwise when it is shown."""
        if self.isVisible():
            self._reload_timer.start()
        else:
            self._stale = True

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._stale:
            self.reload()

    # --- loading ----------------------------------------------------------------------

    def reload(self) -> None:
        self._stale = False
        self._reload_timer.stop()
        if self.history is None:
            self.model.set_rows([])
            self.latest = []
            self.status.setText("No verification history: results are kept for this session only.")
            self.loaded.emit(0)
            return
        if self._loading is not None:
            self._again = True  # the filters changed mid-read: read again when it ends
            return
        q = self.query()
        w = Worker(load, self.history.path, q)
        w.signals.returned.connect(lambda got, w=w, q=q: self._on_loaded(w, q, got))
        w.signals.errored.connect(lambda f, w=w: self._on_failed(w, f))
        w.signals.finished.connect(lambda w=w: self._on_finished(w))
        self._loading = w
        self.status.setText("Reading the history…")
        w.start(self._pool)

    @property
    def loading(self) -> bool:
        return self._loading is not None

    def _on_loaded(self, w: Worker, q: Query, got: Loaded) -> None:
        if w is not self._loading or self._again:
            return
        self.model.set_rows(got.rows)
        self.latest = got.latest
        self.table.resizeColumnsToContents()
        self.status.setText(self._describe(q, got))
        self.loaded.emit(len(got.rows))

    def _on_failed(self, w: Worker, f: Failure) -> None:
        if w is not self._loading:
            return
        msg = describe(f.exc)
        self.model.set_rows([])
        self.latest = []
        self.status.setText(f"⚠ The history could not be read: {msg.one_line()}. {msg.advice}")
        self.loaded.emit(-1)

    def _on_finished(self, w: Worker) -> None:
        if self._loading is w:
            self._loading = None
        if self._again:
            self._again = False
            self.reload()

    @staticmethod
    def _describe(q: Query, got: Loaded) -> str:
        if q.empty:
            return {
                Scope.VERSIONS: "Select one or more versions on the Backups page.",
                Scope.BACKUP: "Select a backup on the Backups page.",
                Scope.SOURCE: "Select a source.",
                Scope.ALL: "",
            }[q.scope]
        n = len(got.rows)
        where = {
            Scope.VERSIONS: "for the selected versions",
            Scope.BACKUP: f"for {q.context.backup}",
            Scope.SOURCE: f"for {q.context.source_name}",
            Scope.ALL: "in the history",
        }[q.scope]
        text = f"{n} {'entry' if n == 1 else 'entries'} {where}"
        if got.truncated:
            text += f" (the newest {LIMIT:,}; a filter narrows them)"
        if n == 0:
            text += ". Nothing matches these filters" if q.verdict or q.kind or q.since else ""
        v = len(got.latest)
        return f"{text}. Latest verdicts: {v} {'version' if v == 1 else 'versions'}."

    def selected_entries(self) -> list[Entry]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.entry(r) for r in rows]

    def shutdown(self) -> None:
        self._reload_timer.stop()
        if self._loading is not None:
            self._loading.abort()
        self._pool.waitForDone(5000)
