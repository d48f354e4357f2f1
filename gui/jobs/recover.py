"""Recover: restore the newest version of a backup that verifies, in one action.

A restore is a full verification (every layer is checked while the file is written, and
the file appears only once all of them passed: core's atomic destination), so Recover
restores the versions newest first into the chosen file until one passes: each version
tried is read once, and no partial file is ever left. Only a version that failed as a
backup (a FAILED verdict: corrupt, truncated, a wrong key) moves on to the next; a setup
problem (no key, storage unreachable) or a destination that cannot be written stops,
since every older version would meet it too; so does Cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.listing import BackupSet

from ..state.versions import VersionRow
from .queue import JobQueue, JobRecord, JobState
from .spec import JobSpec


def recovery_candidates(s: BackupSet | None) -> list[VersionRow]:
    """The versions Recover may try, newest first (a nightly series: newest night first):
    every live version of a recognised backup."""
    if s is None or not s.recognised:
        return []
    return [
        VersionRow(p.data, p.key, p.issue, s.sidecars) for p in s.pairs if not p.data.delete_marker
    ]


@dataclass
class RecoveryResult:
    destination: Path
    restored: VersionRow | None = None  # the version now in the destination
    failed: list[tuple[VersionRow, str]] = field(default_factory=list)  # tried, not good
    stopped: str | None = None  # why it stopped before a version passed

    def text(self) -> str:
        tried = "".join(
            f"; {r.data.key} ({r.data.last_modified:%Y-%m-%d %H:%M}) failed: {why}"
            for r, why in self.failed
        )
        if self.restored is not None:
            d = self.restored.data
            return (
                f"Recovered {d.key} ({d.last_modified:%Y-%m-%d %H:%M}), the newest version "
                f"that verifies, to {self.destination}{tried}"
            )
        if self.stopped:
            return f"Recover stopped: {self.stopped}{tried}"
        return f"Recover: no version of this backup verifies{tried}"


class Recovery(QObject):
    """Restores candidates newest first until one passes (see the module's docstring)."""

    step = Signal(str)  # what is being tried now
    finished = Signal(object)  # RecoveryResult

    def __init__(
        self,
        queue: JobQueue,
        rows: list[VersionRow],
        dest: Path,
        make_spec: Callable[[VersionRow], JobSpec],
        submit: Callable[[JobSpec], JobRecord | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._queue = queue
        self._rows = list(rows)
        self._specs = [make_spec(r) for r in rows]  # built now: the source may change later
        self._submit = submit
        self.result = RecoveryResult(dest)
        self.record: JobRecord | None = None
        self.done = False
        queue.ended.connect(self._on_ended)

    def start(self) -> None:
        self._next()

    def _next(self) -> None:
        if not self._rows:
            self._finish()
            return
        row, spec = self._rows.pop(0), self._specs.pop(0)
        self._row = row
        self.step.emit(f"Recover: trying {row.data.key} ({row.data.last_modified:%Y-%m-%d %H:%M})")
        rec = self._submit(replace(spec, title=f"Recover: {spec.title}"))
        self.record = rec
        if rec is None:
            self.result.stopped = "the job could not be started"
            self._finish()
        elif rec.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
            self._on_ended(rec)  # failed before it was queued (no key configured)

    def _on_ended(self, rec: JobRecord) -> None:
        if self.done or rec is not self.record:
            return
        msg = rec.message
        if rec.state is JobState.DONE:
            self.result.restored = self._row
            self._finish()
        elif rec.state is JobState.CANCELLED:
            self.result.stopped = "cancelled"
            self._finish()
        elif msg is not None and msg.verdict is Verdict.FAILED:
            self.result.failed.append((self._row, msg.one_line()))
            self._next()
        else:
            why = msg.one_line() if msg is not None else "the job failed"
            self.result.stopped = (
                f"{why} (not a verdict on the backup, so no older version is tried)"
            )
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self._queue.ended.disconnect(self._on_ended)
        self.finished.emit(self.result)
