"""The Backups page: backup sets filled page by page, one set's versions, and Details.

Listing runs on the one worker type as a generator: each page of object
versions is grouped into backup sets on the worker thread and handed to the
model, which merges it in place, so rows appear with the first page and the
table stays usable while the rest loads. A local folder (or an opened file) is
listed the same way, page by page of files. A nightly series shows its nights in
the Versions list ("Night · version").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.storage.listing import (
    BackupSet,
    Grouper,
    Versioning,
    bucket_versioning,
    empty_text,
    iter_folder_changes,
    iter_set_changes,
    nearby_files,
    nearby_keys,
    versioning_warning,
)
from sealcheck.core.storage.naming import Rule, stamp_of

from ..errortext import listing_problem
from ..jobs.worker import Failure, Worker, WorkerContext
from ..state.models import (
    OBJECT_ROLE,
    BackupFilterProxy,
    BackupSetModel,
    VersionModel,
)
from ..state.results import ResultStore
from ..state.settings import SourceConfig
from ..state.tablemodel import Index
from ..state.versions import VersionRow
from .details import DetailsPane

ClientFactory = Callable[[SourceConfig], Any]
SLICE_S = 0.015  # GUI time spent merging per event-loop turn
CHUNK = 20  # backup sets merged at once (each costs ~0.2 ms with the sorted proxy)


@dataclass(frozen=True)
class ListingPage:
    sets: list[BackupSet]
    versions: int
    made_at: float  # time.monotonic() when the worker handed the page over


@dataclass(frozen=True)
class ListingDone:
    names: set[str]
    versions: int
    versioning: Versioning = Versioning.UNKNOWN
    empty: str | None = None  # nothing listed: what to check, and what is one level up


def _pages(
    ctx: WorkerContext, changes: Iterator[tuple[list[BackupSet], Grouper]]
) -> Generator[ListingPage, None, tuple[set[str], int]]:
    names: set[str] = set()
    versions = 0
    for changed, grouper in changes:
        ctx.cancel.check()
        names = {x.name for x in grouper.sets}
        versions = grouper.versions
        yield ListingPage(changed, versions, time.monotonic())
    return names, versions


def list_source(
    ctx: WorkerContext, client: Any, bucket: str, prefix: str, rules: tuple[Rule, ...]
) -> Generator[ListingPage, None, ListingDone]:
    """Yield, per page, only the backup sets that are new or changed (the GUI merges them)."""
    names, versions = yield from _pages(ctx, iter_set_changes(client, bucket, prefix, rules))
    empty = None
    if not names:
        where = f"The bucket {bucket}" if not prefix else f"s3://{bucket}/{prefix}"
        empty = empty_text(where, nearby_keys(client, bucket, prefix), whole=not prefix)
    # Asked once the listing worked (an unreachable store is reported by the listing).
    return ListingDone(names, versions, bucket_versioning(client, bucket), empty)


def list_folder_source(
    ctx: WorkerContext, root: Path, rules: tuple[Rule, ...]
) -> Generator[ListingPage, None, ListingDone]:
    """A local folder (or one file and its key), as ``list_source`` lists a prefix."""
    names, versions = yield from _pages(ctx, iter_folder_changes(root, rules))
    empty = None
    if not names:
        empty = empty_text(f"The folder {root}", nearby_files(root), whole=True)
    return ListingDone(names, versions, Versioning.NONE, empty)


class SeriesVersionModel(VersionModel):
    """The versions of a set; for a nightly series, each row also names its night."""

    NIGHT_HEADER = "Night · version"

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            section == 1
            and orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and self.backup is not None
            and self.backup.is_series
        ):
            return self.NIGHT_HEADER
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        out = super().data(index, role)
        if (
            index.isValid()
            and index.column() == 1
            and self.backup is not None
            and self.backup.is_series
            and role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole)
        ):
            r = self.row_at(index.row())
            st = stamp_of(r.data.key)
            night = st.night if st else "–"
            vid = r.data.version_id
            # A file or an unversioned object has one version: its night says it all.
            text = f"{night} · {super().data(index)}" if vid and vid != "null" else night
            if role == Qt.ItemDataRole.AccessibleTextRole:
                return f"{self.NIGHT_HEADER}: {text}"
            return text
        return out


def _table(name: str) -> QTableView:
    t = QTableView()
    t.setAccessibleName(name)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setAlternatingRowColors(True)
    t.setWordWrap(False)
    t.verticalHeader().hide()
    t.horizontalHeader().setStretchLastSection(True)
    t.horizontalHeader().setAccessibleName(f"{name}: columns")
    t.setTabKeyNavigation(False)  # Tab moves between panes; arrows move within a table
    return t


class BackupBrowser(QWidget):
    status = Signal(str)
    listing_finished = Signal(int)  # number of backup sets

    def __init__(
        self, results: ResultStore, client_factory: ClientFactory, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.results = results
        self._client_factory = client_factory
        self.pool = QThreadPool(self)
        self._listing: Worker | None = None
        self.source: SourceConfig | None = None
        self.page_latencies: list[float] = []  # worker hand-over -> its first rows shown (s)
        # Pages are merged in slices from the event loop so no slice blocks it for long.
        self._backlog: deque[tuple[list[BackupSet], float]] = deque()
        self._drain = QTimer(self)
        self._drain.setInterval(0)
        self._drain.timeout.connect(self._merge_slice)
        self._done: ListingDone | None = None

        self.model = BackupSetModel(results, self)
        self.proxy = BackupFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.versions = SeriesVersionModel(results, self)

        self.filter = QLineEdit()
        self.filter.setAccessibleName("Filter backups")
        self.filter.setPlaceholderText("Filter backups (name, format, result…)  Ctrl+F")
        self.filter.setClearButtonEnabled(True)
        for b in self.filter.findChildren(QToolButton):  # Qt's clear button has no name
            b.setAccessibleName("Clear the filter")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.problems = QCheckBox("&Problems only")
        self.problems.setAccessibleDescription("Show only backups with problems")
        self.problems.toggled.connect(self.proxy.set_problems_only)
        self.banner = QLabel()
        self.banner.setAccessibleName("Listing problem")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.versioning_note = QLabel()
        self.versioning_note.setAccessibleName("Bucket versioning")
        self.versioning_note.setWordWrap(True)
        self.versioning_note.hide()
        self.empty_note = QLabel()
        self.empty_note.setAccessibleName("Nothing listed")
        self.empty_note.setWordWrap(True)
        self.empty_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty_note.hide()

        self.sets_view = _table("Backups")
        self.sets_view.setModel(self.proxy)
        self.sets_view.setSortingEnabled(True)
        self.sets_view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.sets_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        hdr = self.sets_view.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hdr.setResizeContentsPrecision(100)  # sample rows: sizing 10,000 rows would stall
        self.versions_view = _table("Versions of the selected backup")
        self.versions_view.setModel(self.versions)
        self.versions_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.details = DetailsPane()

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.filter, 1)
        row.addWidget(self.problems)
        tl.addLayout(row)
        tl.addWidget(self.banner)
        tl.addWidget(self.versioning_note)
        tl.addWidget(self.empty_note)
        tl.addWidget(self.sets_view)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.versions_view)
        bottom.addWidget(self.details)
        bottom.setSizes([560, 440])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setSizes([320, 280])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)

        self.sets_view.selectionModel().currentRowChanged.connect(self._on_set_changed)
        self.versions_view.selectionModel().selectionChanged.connect(self._on_versions_selected)
        results.changed.connect(self._on_result)

    # --- listing -------------------------------------------------------------

    def load(self, source: SourceConfig | None) -> None:
        self.stop_listing()
        self.source = source
        self.model.clear()
        self.versions.set_backup(None)
        self.details.show_version(None, None)
        self.banner.hide()
        self.versioning_note.hide()
        self.empty_note.hide()
        if source is None:
            return
        self.status.emit(f"Listing {source.uri}…")
        try:
            rules = source.parsed_rules()
            if source.path is not None:
                w = Worker(list_folder_source, Path(source.path), rules)
            else:
                client = self._client_factory(source)
                w = Worker(list_source, client, source.bucket, source.prefix, rules)
        except Exception as exc:  # noqa: BLE001 - shown in words, like any listing failure
            self._on_list_failed(Failure(exc, ""))
            return
        w.signals.progress.connect(lambda page, w=w: self._on_page(w, page))
        w.signals.returned.connect(lambda done, w=w: self._on_listed(w, done))
        w.signals.errored.connect(lambda f, w=w: self._on_list_failed(f, w))
        w.signals.finished.connect(lambda: self._listing_ended(w))
        self._listing = w
        w.start(self.pool)

    def refresh(self) -> None:
        self.load(self.source)

    def stop_listing(self, wait: float = 0.0) -> None:
        self._drain.stop()
        self._backlog.clear()
        self._done = None
        if self._listing is not None:
            self._listing.abort()
            if wait:
                self._listing.wait(wait)

    def _listing_ended(self, w: Worker) -> None:
        if self._listing is w:
            self._listing = None

    @property
    def listing(self) -> bool:
        return self._listing is not None or bool(self._backlog)

    def _on_page(self, w: Worker, page: ListingPage) -> None:
        if w is not self._listing:
            return  # a page from a listing that was replaced
        self.status.emit(f"Loading… {page.versions} object versions so far")
        self._backlog.append((page.sets, page.made_at))
        if not self._drain.isActive():
            self._merge_slice()
            if self._backlog:
                self._drain.start()

    def _merge_slice(self) -> None:
        """Merge sets in small chunks for at most SLICE_S; the rest waits for the next turn."""
        deadline = time.monotonic() + SLICE_S
        while self._backlog and time.monotonic() < deadline:
            sets, made_at = self._backlog[0]
            chunk, rest = sets[:CHUNK], sets[CHUNK:]
            self.model.update_sets(chunk)
            if made_at:
                self.page_latencies.append(time.monotonic() - made_at)
            if rest:
                self._backlog[0] = (rest, 0.0)
            else:
                self._backlog.popleft()
        if self.sets_view.selectionModel().currentIndex().row() < 0 and self.proxy.rowCount():
            self.sets_view.selectRow(0)
        if not self._backlog:
            self._drain.stop()
            if self._done is not None:
                self._complete(self._done)

    def _on_listed(self, w: Worker, done: ListingDone | None) -> None:
        if done is None or w is not self._listing:
            return
        if self._backlog:
            self._done = done  # finish once the backlog is merged
            return
        self._complete(done)

    def _complete(self, done: ListingDone) -> None:
        self._done = None
        self.model.retain(done.names)
        bucket = self.source.bucket if self.source is not None else ""
        if warning := versioning_warning(done.versioning, bucket):
            self.versioning_note.setText(f"⚠ {warning[0].upper()}{warning[1:]}.")
            self.versioning_note.show()
        if done.empty:
            self.empty_note.setText(done.empty)
            self.empty_note.show()
        self.fit_columns()
        n = self.model.rowCount()
        self.status.emit(f"{n} backup set(s), {done.versions} object version(s)")
        self.listing_finished.emit(n)

    def _on_list_failed(self, failure: Failure, w: Worker | None = None) -> None:
        if w is not None and w is not self._listing:
            return
        where = self.source.uri if self.source is not None else "the source"
        text = listing_problem(failure.exc, where)
        self.banner.setText(f"⚠ {text}")
        self.banner.show()
        self.status.emit(text.splitlines()[0])
        self.listing_finished.emit(-1)

    # --- selection -------------------------------------------------------------

    def fit_columns(self) -> None:
        self.sets_view.resizeColumnsToContents()
        self.versions_view.resizeColumnsToContents()

    def _on_set_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        s = current.siblingAtColumn(0).data(OBJECT_ROLE) if current.isValid() else None
        if (
            s is not None
            and self.versions.backup is not None
            and s.name == self.versions.backup.name
        ):
            return
        self.versions.set_backup(s)
        self.versions_view.resizeColumnsToContents()
        if self.versions.rowCount():
            self.versions_view.selectRow(0)
        else:
            self.details.show_version(None, None)

    def _on_versions_selected(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        self._show_details()

    def _show_details(self) -> None:
        rows = self.selected_version_rows()
        if not rows:
            self.details.show_version(None, None)
            return
        self.details.show_version(self.versions.row_at(rows[0]), self.versions.state(rows[0]))

    def _on_result(self, _key: Any) -> None:
        self._show_details()

    def selected_version_rows(self) -> list[int]:
        sm = self.versions_view.selectionModel()
        return sorted({i.row() for i in sm.selectedRows()})

    def selected_versions(self) -> list[VersionRow]:
        return [
            self.versions.row_at(r)
            for r in self.selected_version_rows()
            if self.versions.verifiable(r)
        ]

    def selected_sets(self) -> list[BackupSet]:
        sm = self.sets_view.selectionModel()
        return [i.data(OBJECT_ROLE) for i in sm.selectedRows(0)]

    def select_set(self, name: str) -> bool:
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if idx.data() == name:
                self.sets_view.setCurrentIndex(idx)
                self.sets_view.selectRow(r)
                return True
        return False

    def shutdown(self) -> None:
        self.stop_listing()
        self.pool.waitForDone(5000)
