"""The last outcome of each object version, shared by the models and the Details pane.

Backed by core's verification history, so the last result and its age survive a
restart: the newest entry of every version is read once at start (its JSON parsed
only when a row asks for it) and each new outcome is appended as it arrives.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from sealcheck.core.history import Entry, History, HistoryError
from sealcheck.core.report import Report
from sealcheck.core.restoretest.model import RestoreTestResult

from .errortext import UserMessage, describe

log = logging.getLogger("sealcheck.gui")

# The GUI thread must not wait long for a history another process holds: a lock
# is held for one small insert, so a second is plenty, and a miss is only a warning.
GUI_BUSY_TIMEOUT_S = 1.0

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


def outcome_from_entry(entry: Entry) -> Outcome:
    """A recorded result as the outcome it was (ValueError if the row is damaged)."""
    result = entry.result()
    when = entry.when_dt
    if isinstance(result, RestoreTestResult):
        # As the job queue builds it: the restore test's own error is the message.
        msg = describe(result.error) if result.error is not None else None
        return Outcome(result.verification, msg, when, restore_test=result)
    return Outcome(result, None, when)


class ResultStore(QObject):
    """The last outcome per version; ``changed`` names the version updated.

    ``history`` None keeps outcomes in memory only (tests). A history that cannot be
    read or written never stops the app: ``warning`` carries the sentence once, and
    the store goes on in memory."""

    changed = Signal(object)  # VersionKey
    warning = Signal(str)

    def __init__(self, history: History | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._history = history
        self._by_version: dict[VersionKey, Outcome] = {}
        self._stored: dict[VersionKey, Entry] = {}
        self.problem: str | None = None
        if history is not None:
            try:
                self._stored = history.latest_by_version()
            except HistoryError as exc:
                self._report(exc.message())

    @classmethod
    def persistent(cls, parent: QObject | None = None) -> ResultStore:
        """The app's store, on the user's history (``$SEALCHECK_DATA_DIR`` if set).
        Its connection stays open on the GUI thread: an append then costs well under
        a millisecond instead of a WAL checkpoint per outcome."""
        return cls(History.default(busy_timeout=GUI_BUSY_TIMEOUT_S, keep_open=True), parent)

    @property
    def history(self) -> History | None:
        return self._history

    def get(self, key: VersionKey) -> Outcome | None:
        found = self._by_version.get(key)
        if found is None and key in self._stored:
            entry = self._stored.pop(key)
            try:
                found = self._by_version[key] = outcome_from_entry(entry)
            except ValueError as exc:
                log.warning("history entry %s unreadable: %s", entry.id, exc)
        return found

    def put(self, key: VersionKey, outcome: Outcome) -> None:
        self._by_version[key] = outcome
        self._stored.pop(key, None)
        self._append(outcome)
        self.changed.emit(key)

    def _append(self, outcome: Outcome) -> None:
        # Only results are evidence: an outcome with neither a report nor a restore
        # test (no key, unreadable passphrase file) stays in this session's memory.
        result = outcome.restore_test or outcome.report
        if self._history is None or result is None:
            return
        try:
            self._history.record(result, when=outcome.when)
        except (HistoryError, ValueError) as exc:
            self._report(exc.message() if isinstance(exc, HistoryError) else str(exc))

    def _report(self, text: str) -> None:
        log.warning("%s", text)
        if self.problem is None:  # once: a damaged file would otherwise repeat on every job
            self.problem = text
            self.warning.emit(text)


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
