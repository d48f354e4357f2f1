"""The one flat, read-only table model shape: a list of rows under named columns.

The backup sets, one set's versions and the History page each show rows of their own
kind; what Qt asks of a flat table (how many rows and columns, the header words, an
index that may be stale) is answered here once, so a fix lands in every table.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex
RowT = TypeVar("RowT")


class RowTableModel(QAbstractTableModel, Generic[RowT]):
    """``COLUMNS`` names the columns; ``_rows`` holds one row object per table row.

    A subclass fills ``_rows`` (inside Qt's begin/end reset or insert calls), says a
    cell's text in ``cell_text`` and answers any other role in ``cell_data``."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RowT] = []

    def row_of(self, index: Index) -> RowT | None:
        """The row an index points at, or None for an invalid or stale index (a view
        may ask about a row that a reset has just removed)."""
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        return self._rows[index.row()]

    def changed_row(self, i: int) -> None:
        """Every cell of row ``i`` changed."""
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))

    def cell_text(self, i: int, row: RowT, col: int) -> str:
        """The text shown in column ``col`` of row ``i``."""
        raise NotImplementedError

    def cell_data(self, i: int, row: RowT, col: int, role: int) -> Any:
        """Any role but the display text and its accessible reading; None: nothing."""
        return None

    # --- Qt model API --------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if 0 <= section < len(self.COLUMNS):
                return self.COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (row := self.row_of(index)) is None:
            return None
        i, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(i, row, col)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            # A screen reader says the column's name, then the cell's text.
            return f"{self.COLUMNS[col]}: {self.cell_text(i, row, col)}"
        return self.cell_data(i, row, col, role)
