"""The plan table: one row per data version and what the rotation will do to it, with a
filter by outcome and by text (a Qt model + QSortFilterProxyModel, as the backup lists)."""

from __future__ import annotations

import enum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from sealcheck.core.rotation.journal import Item, Step

Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("Data object", "Version", "What will happen", "Opened with", "Key object")


class Show(enum.Enum):
    ALL = "Every version"
    ROTATE = "To be re-wrapped"
    ALREADY = "Already rotated"
    CANNOT = "Cannot be rotated"


def show_of(item: Item) -> Show:
    if item.step is Step.ALREADY:
        return Show.ALREADY
    if item.step is Step.CANNOT:
        return Show.CANNOT
    return Show.ROTATE


def reason_text(item: Item) -> str:
    """Core's reason without the object's name and headline the row already shows."""
    return (item.reason or "").split("This version cannot be rotated. ", 1)[-1]


def what_text(item: Item) -> str:
    """What the rotation does (or did) to this version, in words."""
    if item.step is Step.CANNOT:
        return f"Cannot be rotated: {reason_text(item)}"
    if item.step is Step.ALREADY:
        return f"Already rotated ({item.reason})"
    if item.step is Step.DONE:
        return "Re-wrapped, written and read back"
    if item.step is Step.PLANNED:
        return f"Re-wrap for the new key ({item.padding}, {item.wire})"
    return f"In progress: {item.step.value}"


class PlanModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[Item] = []

    def set_items(self, items: list[Item]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def item(self, row: int) -> Item:
        return self._items[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text(item, index.column())
        if role == Qt.ItemDataRole.UserRole:
            return show_of(item).name
        return None

    @staticmethod
    def _text(item: Item, column: int) -> str:
        key_object = item.key_name or "–"
        if item.key_version:
            key_object += f" @ {item.key_version}"
        return (
            item.data_key,
            item.data_version,
            what_text(item),
            item.old_key or "–",
            key_object,
        )[column]


class PlanFilter(QSortFilterProxyModel):
    """Rows of one outcome (``Show``), matching a text in any column."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._show = Show.ALL
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)

    def set_show(self, show: Show) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10
            self.beginFilterChange()
            self._show = show
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._show = show
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:
        src = self.sourceModel()
        if self._show is not Show.ALL:
            if src.data(src.index(row, 0, parent), Qt.ItemDataRole.UserRole) != self._show.name:
                return False
        return super().filterAcceptsRow(row, parent)
