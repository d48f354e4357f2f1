"""Qt models of the listing: backup sets (with a filter proxy) and one set's versions.

Display strings are computed once per change, not per ``data()`` call: with
10,000 rows the proxy's sort calls ``data()`` hundreds of thousands of times.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush

from sealcheck.core.formats import NOT_A_BACKUP
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.listing import BackupSet, ObjectVersion, version_text

from ..errortext import NOT_CHECKED_TITLE
from ..look.theme import Tone, status_color
from .results import Outcome, ResultStore, VersionState, age_text, size_text
from .tablemodel import Index, RowTableModel
from .versions import VersionKey, VersionRow

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
OBJECT_ROLE = Qt.ItemDataRole.UserRole + 2
PROBLEM_ROLE = Qt.ItemDataRole.UserRole + 3

_COMPRESSION = {"gz": "gzip", "gzip": "gzip", "bz": "bzip2", "bz2": "bzip2", "zst": "zstd"}
_COMPRESSION |= {"zstd": "zstd", "xz": "xz"}


def result_brush(text: str) -> QBrush | None:
    """The colour of a result or flag cell, from the current palette (read at paint
    time, so a light/dark switch repaints in the new colours)."""
    if text.startswith(("FAILED", "mismatch", "orphan")):
        return QBrush(status_color(Tone.FAILED))
    if text.startswith("OK"):
        return QBrush(status_color(Tone.OK))
    if text.startswith(NOT_CHECKED_TITLE):
        return QBrush(status_color(Tone.NEUTRAL))
    return None


def guess_database(name: str, outcome: Outcome | None) -> str:
    if outcome and outcome.report and (p := outcome.report.layer("payload")):
        kind = p.details.get("database_kind") or p.details.get("producer")
        if kind:
            return str(kind)
    low = name.lower()
    if "xbstream" in low or low.endswith(".xb"):
        return "MariaDB/MySQL (physical)"
    if any(w in low for w in ("postgres", "pg_", "pgsql", "psql")):
        return "PostgreSQL"
    if ".sql" in low or ".dump" in low:
        return "SQL dump"
    return "–"


def looks_physical(name: str, outcome: Outcome | None) -> bool:
    """A physical backup (xbstream, or a tar of its folder): by what a verify found,
    else by its name."""
    if outcome and outcome.report and outcome.report.formats:
        payload = outcome.report.layer("payload")
        tar = payload is not None and payload.details.get("kind") == "xtrabackup-tar"
        return "xbstream" in outcome.report.formats or tar
    low = name.lower().rsplit("/", 1)[-1]
    return "xbstream" in low or ".xb." in low or low.endswith((".xb", "_xb.qp"))


def guess_format(name: str, outcome: Outcome | None) -> str:
    if outcome and outcome.report and outcome.report.formats:
        return " → ".join(outcome.report.formats)
    parts = name.lower().split("/")[-1].split(".")
    comp = next((_COMPRESSION[p] for p in parts if p in _COMPRESSION), None)
    return f"{comp}, encrypted" if comp else "encrypted"


def key_needed(s: BackupSet, outcome: Outcome | None) -> str:
    if s.key_name:
        return "RSA private key"
    if outcome and outcome.report and (k := outcome.report.layer("key")):
        if "gpg" in k.proved:
            return "OpenPGP key"
        if "passphrase" in k.proved:
            return "passphrase file"
    return "passphrase or OpenPGP key"


def result_text(outcome: Outcome | None) -> str:
    """One outcome in words: "OK", "FAILED: why", or "not checked: setup problem: why"."""
    if outcome is None:
        return "not verified"
    if outcome.ok:
        rt = outcome.restore_test
        if rt is not None and rt.hostile:  # never a plain OK: the dump loaded, confined
            n = len(rt.hostile)
            return f"OK, but the dump tried {n} thing{'s' * (n != 1)} a backup should not do"
        return "OK"
    msg = outcome.message
    if not outcome.verdict.is_verdict:
        return f"{NOT_CHECKED_TITLE}: {msg.headline}" if msg else NOT_CHECKED_TITLE
    return f"FAILED: {msg.headline}" if msg else "FAILED"


LATEST_NOT_CHECKED = "latest attempt could not check: setup problem"


def sidecars_text(s: BackupSet) -> str | None:
    """The files a producer wrote beside the backup, shown with it (never as backups)."""
    if not s.sidecars:
        return None
    names = ", ".join(n.rsplit("/", 1)[-1] for n in s.sidecars[:5])
    more = f" and {len(s.sidecars) - 5} more" if len(s.sidecars) > 5 else ""
    return f"Sidecars: {names}{more} (Verify compares the checksums and sizes they carry)"


def state_text(state: VersionState | None, *, ages: bool = False) -> str:
    """A version's last verdict, and a note when the newest run could not check it
    (a setup problem never takes the verdict's place)."""
    if state is None:
        return "not verified"

    def aged(text: str, o: Outcome) -> str:
        return f"{text} ({age_text(o.when)})" if ages else text

    v, a = state.verdict, state.attempt
    if v is None:
        return aged(result_text(a), state.latest)
    text = aged(result_text(v), v)
    return f"{text} · {aged(LATEST_NOT_CHECKED, a)}" if a is not None else text


def state_tip(state: VersionState | None) -> str | None:
    """The reasons and what to do: a FAILED verdict's, and a later attempt's."""
    if state is None:
        return None
    tips = []
    v, a = state.verdict, state.attempt
    if v is not None and not v.ok and (msg := v.message):
        tips.append(f"{msg.one_line()}. {msg.advice}")
    if a is not None and (msg := a.message):
        lead = "The latest attempt could not check this version (no verdict on the backup): "
        tips.append(f"{lead}{msg.one_line()}. {msg.advice}")
    return "\n".join(tips) or None


@dataclass
class _SetRow:
    backup: BackupSet
    signature: tuple[Any, ...]
    display: list[str]
    sort: list[Any]
    problem: bool
    tooltip: str | None


def signature(s: BackupSet) -> tuple[Any, ...]:
    newest = s.newest
    vid = newest.version_id if newest else None
    return (len(s.pairs), len(s.orphan_keys), s.issues, vid, s.sidecars)


def _version_key(v: ObjectVersion | None) -> VersionKey | None:
    return (v.key, v.version_id) if v is not None else None


class BackupSetModel(RowTableModel[_SetRow]):
    COLUMNS = (
        "Backup",
        "Database",
        "Newest version",
        "Size",
        "Versions",
        "Format",
        "Key needed",
        "Last result",
        "Checked",
    )
    RESULT_COLUMN = 7

    def __init__(self, results: ResultStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._results = results
        self._by_name: dict[str, int] = {}
        self._by_newest: dict[VersionKey, int] = {}
        results.changed.connect(self._on_result)

    # --- filling -----------------------------------------------------------

    def clear(self) -> None:
        self.beginResetModel()
        self._rows, self._by_name, self._by_newest = [], {}, {}
        self.endResetModel()

    def update_sets(self, sets: list[BackupSet]) -> None:
        """Merge a (partial) listing: changed rows update in place, new rows append."""
        new: list[_SetRow] = []
        changed: list[int] = []
        for s in sets:
            sig = signature(s)
            i = self._by_name.get(s.name)
            if i is None:
                new.append(self._make_row(s, sig))
            elif self._rows[i].signature != sig:
                self._rows[i] = self._make_row(s, sig)
                changed.append(i)
        for i in changed:
            self._index_newest(i)
            self.changed_row(i)
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for row in new:
                self._by_name[row.backup.name] = len(self._rows)
                self._rows.append(row)
                self._index_newest(len(self._rows) - 1)
            self.endInsertRows()

    def retain(self, names: set[str]) -> None:
        """After a complete listing, drop sets that no longer exist."""
        for i in reversed(range(len(self._rows))):
            if self._rows[i].backup.name not in names:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
        self._by_name = {r.backup.name: i for i, r in enumerate(self._rows)}
        self._by_newest = {}
        for i in range(len(self._rows)):
            self._index_newest(i)

    def _index_newest(self, i: int) -> None:
        k = _version_key(self._rows[i].backup.newest)
        if k is not None:
            self._by_newest[k] = i

    def _make_row(self, s: BackupSet, sig: tuple[Any, ...]) -> _SetRow:
        if not s.recognised:
            return self._other_row(s, sig)
        newest = s.newest
        state = self._results.state(_version_key(newest)) if newest else None  # type: ignore[arg-type]
        # What the guesses read: any outcome with a report (a setup problem's has formats).
        outcome = (state.verdict or state.attempt) if state is not None else None
        checked = state.verdict if state is not None else None  # when a verdict was reached
        when = newest.last_modified if newest else None
        size = newest.size if newest else 0
        display = [
            s.name,
            guess_database(s.name, outcome),
            when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "deleted",
            size_text(size),
            str(len(s.pairs)),
            guess_format(s.name, outcome),
            key_needed(s, outcome),
            state_text(state),
            age_text(checked.when) if checked else "–",
        ]
        sort = list(display)
        sort[2] = when.timestamp() if when else 0.0
        sort[3] = size
        sort[4] = len(s.pairs)
        sort[8] = checked.when.timestamp() if checked else 0.0
        # Only a FAILED verdict is a problem: a run that could not check is none.
        failed = checked is not None and checked.verdict is Verdict.FAILED
        problem = failed or bool(s.issues)
        tips = list(s.issues)
        if tip := state_tip(state):
            tips.insert(0, tip)
        if text := sidecars_text(s):
            tips.append(text)
        return _SetRow(s, sig, display, sort, problem, "\n".join(tips) or None)

    def _other_row(self, s: BackupSet, sig: tuple[Any, ...]) -> _SetRow:
        """An object that is plainly not a backup (readme.txt): listed, said so, and
        nothing about it is guessed (never "encrypted")."""
        newest = s.newest
        when = newest.last_modified if newest else None
        size = newest.size if newest else 0
        display = [
            s.name,
            "–",
            when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "deleted",
            size_text(size),
            str(len(s.pairs)),
            NOT_A_BACKUP,
            "–",
            "–",
            "–",
        ]
        sort = list(display)
        sort[2] = when.timestamp() if when else 0.0
        sort[3] = size
        sort[4] = len(s.pairs)
        sort[8] = 0.0
        tip = f"{s.name} is {NOT_A_BACKUP} (by its name), so it is not offered for verification"
        return _SetRow(s, sig, display, sort, False, tip)

    def _on_result(self, key: VersionKey) -> None:
        i = self._by_newest.get(key)
        if i is None:
            return
        row = self._rows[i]
        self._rows[i] = self._make_row(row.backup, row.signature)
        self.changed_row(i)

    # --- Qt model API --------------------------------------------------------

    def cell_text(self, i: int, row: _SetRow, col: int) -> str:
        return row.display[col]

    def cell_data(self, i: int, row: _SetRow, col: int, role: int) -> Any:
        if role == SORT_ROLE:
            return row.sort[col]
        if role == OBJECT_ROLE:
            return row.backup
        if role == PROBLEM_ROLE:
            return row.problem
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip
        if role == Qt.ItemDataRole.ForegroundRole and col == self.RESULT_COLUMN:
            return result_brush(row.display[col])
        return None

    def backup_at(self, row: int) -> BackupSet:
        return self._rows[row].backup


class BackupFilterProxy(QSortFilterProxyModel):
    """Sort by raw values (times, sizes); filter on any column's text, or problems only."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._problems_only = False

    def set_problems_only(self, on: bool) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10
            self.beginFilterChange()
            self._problems_only = on
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._problems_only = on
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._problems_only:
            idx = self.sourceModel().index(source_row, 0, source_parent)
            if not idx.data(PROBLEM_ROLE):
                return False
        return super().filterAcceptsRow(source_row, source_parent)


class VersionModel(RowTableModel[VersionRow]):
    """Every version of one backup set, its paired key version, orphans and mismatches."""

    COLUMNS = ("Uploaded", "Version", "Size", "Key version", "Flag", "Last result")
    RESULT_COLUMN = 5

    def __init__(self, results: ResultStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._results = results
        self.backup: BackupSet | None = None
        results.changed.connect(self._on_result)

    def set_backup(self, s: BackupSet | None) -> None:
        self.beginResetModel()
        self.backup = s
        self._rows = []
        if s is not None:
            for p in s.pairs:
                flag = p.issue
                if flag and flag != "delete marker":
                    flag = f"mismatch: {flag}"
                self._rows.append(VersionRow(p.data, p.key, flag, s.sidecars))
            for o in s.orphan_keys:
                self._rows.append(VersionRow(o, None, "orphan key: no data version"))
        self.endResetModel()

    def row_at(self, row: int) -> VersionRow:
        return self._rows[row]

    def verifiable(self, row: int) -> bool:
        r = self._rows[row]
        orphan = r.flag is not None and r.flag.startswith("orphan")
        other = self.backup is not None and not self.backup.recognised  # readme.txt
        return not (r.data.delete_marker or orphan or other)

    def _on_result(self, key: VersionKey) -> None:
        for i, r in enumerate(self._rows):
            if (r.data.key, r.data.version_id) == key:
                self.changed_row(i)

    def outcome(self, row: int) -> Outcome | None:
        """The newest outcome of that row's version, a verdict or not."""
        r = self._rows[row]
        return self._results.get((r.data.key, r.data.version_id))

    def state(self, row: int) -> VersionState | None:
        r = self._rows[row]
        return self._results.state((r.data.key, r.data.version_id))

    def cell_data(self, i: int, r: VersionRow, col: int, role: int) -> Any:
        if role == OBJECT_ROLE:
            return r
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.RESULT_COLUMN:
                return state_tip(self.state(i)) or r.flag
            return r.flag
        if role == Qt.ItemDataRole.ForegroundRole and col in (4, self.RESULT_COLUMN):
            return result_brush(self.cell_text(i, r, col))
        return None

    def cell_text(self, i: int, r: VersionRow, col: int) -> str:
        d = r.data
        if col == 0:
            stamp: str = d.last_modified.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            return stamp + (" (latest)" if d.is_latest and not d.delete_marker else "")
        if col == 1:
            return str(version_text(d.version_id))
        if col == 2:
            return "–" if d.delete_marker else size_text(d.size)
        if col == 3:
            if r.key is not None:
                return str(version_text(r.key.version_id))
            return "–"
        if col == 4:
            return r.flag or ""
        return state_text(self.state(i), ages=True)


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)
