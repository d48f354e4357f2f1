"""The last outcome of each object version, shared by the models and the Details pane."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from sealcheck.core.report import Report
from sealcheck.core.restoretest.model import RestoreTestResult

from .errortext import UserMessage, describe

VersionKey = tuple[str, str | None]  # (object key, version id)


@dataclass(frozen=True)
class Outcome:
    """A finished job on one version: its report, or why it could not run.

    A restore test carries its own result (which embeds the verification report of
    the download/decrypt/decompress layers as ``restore_test.verification``)."""

    report: Report | None
    failure: UserMessage | None
    when: _dt.datetime
    restore_test: RestoreTestResult | None = None

    @property
    def ok(self) -> bool:
        if self.restore_test is not None:
            return self.failure is None and self.restore_test.ok
        return self.report is not None and self.report.ok

    @property
    def message(self) -> UserMessage | None:
        if self.failure is not None:
            return self.failure
        if self.report is not None and self.report.error is not None:
            return describe(self.report.error)
        return None


class ResultStore(QObject):
    """In-memory history for this session; ``changed`` names the version updated."""

    changed = Signal(object)  # VersionKey

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._by_version: dict[VersionKey, Outcome] = {}

    def get(self, key: VersionKey) -> Outcome | None:
        return self._by_version.get(key)

    def put(self, key: VersionKey, outcome: Outcome) -> None:
        self._by_version[key] = outcome
        self.changed.emit(key)


def age_text(when: _dt.datetime, now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.UTC)
    s = max(0, int((now - when).total_seconds()))
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def duration_text(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
