"""The last outcome of each object version, shared by the models and the Details pane.

Backed by core's verification history, so the last result and its age survive a
restart: the newest entry of every version is read once at start (its JSON parsed
only when a row asks for it) and each new outcome is appended as it arrives.

A run that could not check a version (no key, storage or test server not usable:
``Verdict.NOT_CHECKED``) never replaces that version's last verdict: the store keeps
both, the verdict and the newer attempt, and the rows show the verdict with a note.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from sealcheck.core.records.history import Entry, History, HistoryError
from sealcheck.core.records.report import Report
from sealcheck.core.records.restore_result import RestoreTestResult
from sealcheck.core.records.targets import Targets
from sealcheck.core.records.verdict import Verdict

from ..errortext import UserMessage, describe
from .versions import VersionKey

log = logging.getLogger("sealcheck.gui")

# The GUI thread must not wait long for a history another process holds: a lock
# is held for one small insert, so a second is plenty, and a miss is only a warning.
GUI_BUSY_TIMEOUT_S = 1.0


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
            return describe(self.report.error, self.report)
        return None

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this outcome (the verdict is derived from it)."""
        if self.restore_test is not None:
            return int(self.restore_test.exit_code)
        if self.report is not None:
            return int(self.report.exit_code)
        msg = self.failure
        return msg.exit_code if msg is not None else 0

    @property
    def verdict(self) -> Verdict:
        return Verdict.of(self.exit_code)


@dataclass(frozen=True)
class VersionState:
    """What is known of one version: its last verdict (OK or FAILED) and, when the
    newest run could not check it, that run. Either may be missing, not both."""

    verdict: Outcome | None
    attempt: Outcome | None = None  # newer than ``verdict``, Verdict.NOT_CHECKED

    @property
    def latest(self) -> Outcome:
        found = self.attempt or self.verdict
        assert found is not None
        return found


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
        # The recovery targets of the source that holds a URI (the window's sources):
        # kept in each record, as the CLI keeps them (core/records/targets.py).
        self.targets_of: Callable[[str], Targets | None] = lambda _uri: None
        self._by_version: dict[VersionKey, VersionState] = {}
        # Read at start, parsed on first use: the newest entry of each version, and the
        # newest verdict of those whose newest entry could not check.
        self._stored: dict[VersionKey, Entry] = {}
        self._stored_verdicts: dict[VersionKey, Entry] = {}
        self.problem: str | None = None
        if history is not None:
            try:
                self._stored = history.latest_by_version()
                if any(not e.verdict.is_verdict for e in self._stored.values()):
                    verdicts = history.latest_by_version(verdicts_only=True)
                    self._stored_verdicts = {
                        k: verdicts[k]
                        for k, e in self._stored.items()
                        if not e.verdict.is_verdict and k in verdicts
                    }
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
        """The newest outcome of this version, a verdict or not."""
        state = self.state(key)
        return state.latest if state is not None else None

    def last_verdict(self, key: VersionKey) -> Outcome | None:
        """The newest outcome of this version that reached a verdict (OK or FAILED)."""
        state = self.state(key)
        return state.verdict if state is not None else None

    def verdict_of(self, key: VersionKey) -> Verdict | None:
        """The last verdict of this version; NOT_CHECKED when only runs that could not
        check it are known; None when it never ran. Parses no stored result (a summary
        of 700 selected versions must not read 700 reports)."""
        state = self._by_version.get(key)
        if state is not None:
            return state.verdict.verdict if state.verdict is not None else Verdict.NOT_CHECKED
        entry = self._stored.get(key)
        if entry is None:
            return None
        if entry.verdict.is_verdict:
            return entry.verdict
        earlier = self._stored_verdicts.get(key)
        return earlier.verdict if earlier is not None else Verdict.NOT_CHECKED

    def state(self, key: VersionKey) -> VersionState | None:
        found = self._by_version.get(key)
        if found is None and key in self._stored:
            found = self._load(key)
        return found

    def _load(self, key: VersionKey) -> VersionState | None:
        latest = _parsed(self._stored.pop(key))
        verdict = _parsed(e) if (e := self._stored_verdicts.pop(key, None)) else None
        if latest is None:
            state = VersionState(verdict) if verdict is not None else None
        elif latest.verdict.is_verdict:
            state = VersionState(latest)
        else:
            state = VersionState(verdict, latest)
        if state is not None:
            self._by_version[key] = state
        return state

    def put(self, key: VersionKey, outcome: Outcome) -> None:
        if outcome.verdict.is_verdict:
            state = VersionState(outcome)
        else:
            # A setup problem says nothing about the backup: the last verdict stays.
            before = self.state(key)
            state = VersionState(before.verdict if before else None, outcome)
        self._by_version[key] = state
        self._stored.pop(key, None)
        self._stored_verdicts.pop(key, None)
        self._append(outcome)
        self.changed.emit(key)

    def _append(self, outcome: Outcome) -> None:
        # Only results are evidence: an outcome with neither a report nor a restore
        # test (no key, unreadable passphrase file) stays in this session's memory.
        result = outcome.restore_test or outcome.report
        if self._history is None or result is None:
            return
        try:
            report = outcome.report or (outcome.restore_test and outcome.restore_test.verification)
            src = report.source if report is not None else None
            targets = self.targets_of(src.uri) if src is not None else None
            self._history.record(result, when=outcome.when, targets=targets)
        except (HistoryError, ValueError) as exc:
            self._report(exc.message() if isinstance(exc, HistoryError) else str(exc))

    def _report(self, text: str) -> None:
        log.warning("%s", text)
        if self.problem is None:  # once: a damaged file would otherwise repeat on every job
            self.problem = text
            self.warning.emit(text)


def _parsed(entry: Entry) -> Outcome | None:
    try:
        return outcome_from_entry(entry)
    except ValueError as exc:
        log.warning("history entry %s unreadable: %s", entry.id, exc)
        return None


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
