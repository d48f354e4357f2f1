"""The job panel: one row per job with stage, throughput, one ETA, Cancel and Details."""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..jobs.queue import JobQueue, JobRecord, JobState
from ..state.results import duration_text, size_text
from .restoredetails import plural

STAGE_WORDS = {
    "start": "Starting",
    "download": "Downloading",
    "unlock": "Unwrapping the key",
    "decompress": "Decrypting and decompressing",
    "verify": "Verifying",
    "restore": "Restoring",
}
# A restore test streams: download, decryption, decompression and the load run at
# once, so its main stage names them all; the checks come after, with no ETA.
RESTORE_TEST_WORDS = {
    **STAGE_WORDS,
    "verify": "Downloading, decrypting, decompressing and loading",
    "checks": "Checking the restored database (row counts, checksums, objects)",
}


def progress_text(rec: JobRecord) -> str:
    ev = rec.progress
    if rec.state is JobState.QUEUED:
        return "Waiting in the queue"
    if ev is None:
        return "Starting…"
    words = RESTORE_TEST_WORDS if rec.spec.operation == "restore-test" else STAGE_WORDS
    stage = words.get(ev.stage, ev.stage.capitalize())
    if ev.stage == "checks":
        return f"{stage}…"
    total = f" of {size_text(ev.total)}" if ev.total else ""
    eta = f", {duration_text(ev.eta)} left" if ev.eta is not None else ""
    text = f"{stage}: {size_text(ev.done)}{total} at {size_text(ev.rate)}/s{eta}"
    if ev.stage == "verify" and rec.spec.operation == "restore-test":
        loaded = next((s.done for s in ev.stages if s.name == "decompress"), 0)
        text += f" ({size_text(loaded)} of SQL sent to the server)"
    return text


def done_text(rec: JobRecord) -> str:
    took = duration_text(rec.elapsed)
    r = rec.result
    if r is not None:
        rows = sum(t.rows or 0 for t in r.tables)
        return (
            f"✔ Restore test passed: {plural(len(r.tables), 'table')}, {plural(rows, 'row')} in "
            f"{r.server or r.engine}, checked and usable after {duration_text(r.total_seconds)}."
        )
    what = "Restored" if rec.spec.operation == "restore" else "Verified"
    dest = f" to {rec.spec.destination}" if rec.spec.destination else ""
    return f"✔ {what}{dest}: every layer holds ({took})."


class JobRow(QFrame):
    def __init__(self, rec: JobRecord, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rec = rec
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(rec.spec.title or rec.spec.version.where)
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setAccessibleName(f"Progress of {self.title.text()}")
        self.bar.setRange(0, 1000)
        self.status = QLabel()
        self.status.setAccessibleName("Job status")
        self.status.setWordWrap(True)
        self.cancel = QPushButton("Cancel")
        self.cancel.setAccessibleName(f"Cancel {self.title.text()}")
        self.cancel.clicked.connect(lambda: queue.cancel(rec))
        self.toggle = QToolButton()
        self.toggle.setText("Details")
        self.toggle.setCheckable(True)
        self.toggle.setAccessibleName("Details of the failure")
        self.toggle.hide()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Failure details")
        self.details.setMaximumHeight(self.fontMetrics().lineSpacing() * 8)
        self.details.hide()
        self.toggle.toggled.connect(self.details.setVisible)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.toggle)
        top.addWidget(self.cancel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addWidget(self.details)
        self.refresh()

    def refresh(self) -> None:
        rec = self.rec
        ev = rec.progress
        if rec.state in (JobState.QUEUED, JobState.RUNNING):
            if ev is not None and ev.fraction is not None:
                self.bar.setRange(0, 1000)
                self.bar.setValue(int(ev.fraction * 1000))
            elif rec.state is JobState.RUNNING:
                self.bar.setRange(0, 0)  # busy indicator until sizes are known
            if ev is not None and ev.stage == "checks":
                self.bar.setRange(0, 0)  # the checks have no size: busy until they end
            self.status.setText(progress_text(rec))
            return
        self.cancel.hide()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(rec.state is JobState.DONE)
        if rec.state is JobState.DONE:
            self.bar.setValue(1000)
            self.status.setText(done_text(rec))
            return
        msg = rec.message
        if rec.state is JobState.CANCELLED:
            self.bar.setValue(0)
            self.status.setText("Cancelled. Nothing was left behind.")
            return
        self.bar.setValue(0)
        text = msg.one_line() if msg else "Failed"
        advice = f" {msg.advice}" if msg else ""
        if msg is not None and not msg.verdict.is_verdict:
            # A setup problem: the job could not check the backup, which is no verdict on it.
            self.status.setText(f"⚠ Not checked (setup problem): {text}.{advice}")
        else:
            self.status.setText(f"✘ {text}.{advice}")
        detail = msg.details if msg else ""
        if rec.trace:
            detail += "\n\n" + rec.trace
        self.details.setPlainText(detail)
        self.toggle.show()


QUEUED_SHOWN = 10  # queued jobs with a row of their own; the rest are counted
ROWS_PER_TURN = 3  # rows made per event-loop turn (a row and its layout pass: ~1-2 ms)
FINISHED_SHOWN = 50  # finished rows kept; older ones leave (their results stay in History)
FAILED_SHOWN = 200  # failed rows are kept longer, until "Clear finished"


def job_summary(counts: Counter[str]) -> str:
    """ "700 queued · 1 running · 12 OK · 1 failed": a run that could not check the
    backup is "not checked", never counted as failed (core/records/verdict.py)."""
    parts = [
        f"{counts[key]} {words}"
        for key, words in (
            ("queued", "queued"),
            ("running", "running"),
            ("ok", "OK"),
            ("failed", "failed"),
            ("not-checked", "not checked"),
            ("cancelled", "cancelled"),
        )
        if counts[key]
    ]
    return " · ".join(parts) if parts else "No jobs"


def bucket(rec: JobRecord) -> str:
    if rec.state is JobState.QUEUED:
        return "queued"
    if rec.state is JobState.RUNNING:
        return "running"
    if rec.state is JobState.DONE:
        return "ok"
    if rec.state is JobState.CANCELLED:
        return "cancelled"
    msg = rec.message
    return "not-checked" if msg is not None and not msg.verdict.is_verdict else "failed"


class JobPanel(QWidget):
    """A summary line, "Clear finished", and one row per job worth a row.

    Hundreds of queued jobs must not cost the event loop hundreds of widgets: only the
    running job, the next ``QUEUED_SHOWN`` queued ones and the latest finished ones
    have rows; the summary counts them all. Counting is O(1) per state change and the
    rows are brought in line once per event-loop turn, however many jobs changed."""

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Jobs")
        self._queue = queue
        self._rows: dict[int, JobRow] = {}
        self._known: dict[int, str] = {}  # job id -> bucket, for the counts
        self.counts: Counter[str] = Counter()
        self.summary = QLabel("No jobs")
        self.summary.setAccessibleName("Jobs summary")
        self.clear_btn = QPushButton("C&lear finished")
        self.clear_btn.setAccessibleName("Clear finished jobs")
        self.clear_btn.setToolTip("Remove finished jobs from this list (results stay in History)")
        self.clear_btn.clicked.connect(self.clear_finished)
        self.clear_btn.setEnabled(False)
        head = QHBoxLayout()
        head.setContentsMargins(4, 2, 4, 0)
        head.addWidget(self.summary, 1)
        head.addWidget(self.clear_btn)

        self.list_area = QScrollArea()
        self.list_area.setWidgetResizable(True)
        self.list_area.setFrameShape(QFrame.Shape.NoFrame)
        self.list_area.setAccessibleName("Job list")
        inner = QWidget()
        self._lay = QVBoxLayout(inner)
        self._lay.setContentsMargins(4, 4, 4, 4)
        self.empty = QLabel(
            "No jobs yet. Select a version and press Verify, Restore to file… or Restore test…"
        )
        self.more = QLabel()
        self.more.setAccessibleName("More queued jobs")
        self.more.hide()
        self._lay.addWidget(self.empty)
        self._lay.addWidget(self.more)
        self._lay.addStretch()
        self.list_area.setWidget(inner)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(self.list_area, 1)

        self._sync_timer = QTimer(self)
        self._sync_timer.setSingleShot(True)
        self._sync_timer.setInterval(0)
        self._sync_timer.timeout.connect(self._sync)
        queue.added.connect(self._on_added)
        queue.changed.connect(self._on_changed)

    # --- rows ------------------------------------------------------------------

    def row(self, rec: JobRecord) -> JobRow:
        """This job's row, made now if it has none yet (a queued job far back)."""
        found = self._rows.get(rec.id)
        return found if found is not None else self._add_row(rec)

    def has_row(self, rec: JobRecord) -> bool:
        return rec.id in self._rows

    def _add_row(self, rec: JobRecord) -> JobRow:
        row = JobRow(rec, self._queue)
        self._rows[rec.id] = row
        # Newest on top: below the "more queued" line, above every older job.
        above = sum(1 for i in self._rows if i > rec.id)
        self._lay.insertWidget(2 + above, row)
        self._chain_tabs()
        return row

    def _remove_row(self, job_id: int) -> None:
        row = self._rows.pop(job_id)
        self._lay.removeWidget(row)
        row.hide()
        row.deleteLater()

    def _chain_tabs(self) -> None:
        """Newest first for Tab too: panel → each row's Details, Cancel, text → older rows."""
        prev: QWidget = self.clear_btn
        for i in sorted(self._rows, reverse=True):
            row = self._rows[i]
            for w in (row.toggle, row.cancel, row.details):
                QWidget.setTabOrder(prev, w)
                prev = w

    # --- the queue's signals ----------------------------------------------------

    def _count(self, rec: JobRecord) -> None:
        new = bucket(rec)
        old = self._known.get(rec.id)
        if old != new:
            if old is not None:
                self.counts[old] -= 1
            self.counts[new] += 1
            self._known[rec.id] = new
            self._schedule()

    def _on_added(self, rec: JobRecord) -> None:
        # O(1): a batch of 700 calls this 700 times in one turn; rows come in _sync.
        self.empty.hide()
        self._count(rec)
        self._schedule()

    def _on_changed(self, rec: JobRecord) -> None:
        self._count(rec)
        row = self._rows.get(rec.id)
        if row is not None:
            row.refresh()
        elif rec.state is not JobState.QUEUED and rec.started is not None:
            self._add_row(rec)  # it started (or ended at once) before it had a row

    def _queued_rows(self) -> int:
        return sum(1 for r in self._rows.values() if r.rec.state is JobState.QUEUED)

    def _schedule(self) -> None:
        if not self._sync_timer.isActive():
            self._sync_timer.start()

    def _sync(self) -> None:
        """Once per event-loop turn: the summary, the queued rows topped up, the
        oldest finished rows let go."""
        self.summary.setText(job_summary(self.counts))
        shown = [r.rec for r in self._rows.values()]
        finished = [x for x in shown if x.state not in (JobState.QUEUED, JobState.RUNNING)]
        self.clear_btn.setEnabled(bool(finished))
        for rec in list(self._trim(finished)):
            self._remove_row(rec.id)
        # Cancelled before they ever ran: a row says no more than the summary does.
        for rec in shown:
            if rec.state is JobState.CANCELLED and rec.started is None and rec.id in self._rows:
                self._remove_row(rec.id)
        # A few rows per turn (each costs a layout pass); the next turn makes more.
        missing = [r for r in self._queue.pending()[:QUEUED_SHOWN] if r.id not in self._rows]
        for rec in missing[:ROWS_PER_TURN]:
            self._add_row(rec)
        if len(missing) > ROWS_PER_TURN:
            self._schedule()
        hidden = self.counts["queued"] - self._queued_rows()
        self.more.setText(f"… and {hidden} more queued" if hidden > 0 else "")
        self.more.setVisible(hidden > 0)

    @staticmethod
    def _trim(finished: list[JobRecord]) -> list[JobRecord]:
        finished = sorted(finished, key=lambda r: r.id)  # oldest first
        failed = [r for r in finished if r.state is JobState.FAILED]
        others = [r for r in finished if r.state is not JobState.FAILED]
        out = others[: max(0, len(others) - FINISHED_SHOWN)]
        out += failed[: max(0, len(failed) - FAILED_SHOWN)]
        return out

    def clear_finished(self) -> int:
        """Remove every finished job (rows and records); returns how many."""
        gone = self._queue.clear_finished()
        for rec in gone:
            if rec.id in self._rows:
                self._remove_row(rec.id)
            bucket = self._known.pop(rec.id, None)
            if bucket is not None:
                self.counts[bucket] -= 1
        self._sync()
        if not self._rows and not self._queue.busy:
            self.empty.show()
        return len(gone)
