"""The job panel: one row per job with stage, throughput, one ETA, Cancel and Details."""

from __future__ import annotations

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

from .jobs import JobQueue, JobRecord, JobState
from .restoredetails import plural
from .results import duration_text, size_text

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
        self.title = QLabel(rec.spec.title or rec.spec.data)
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


class JobPanel(QScrollArea):
    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Jobs")
        self.setWidgetResizable(True)
        self._queue = queue
        self._rows: dict[int, JobRow] = {}
        inner = QWidget()
        self._lay = QVBoxLayout(inner)
        self._lay.setContentsMargins(4, 4, 4, 4)
        self.empty = QLabel(
            "No jobs yet. Select a version and press Verify, Restore to file… or Restore test…"
        )
        self._lay.addWidget(self.empty)
        self._lay.addStretch()
        self.setWidget(inner)
        queue.added.connect(self._on_added)
        queue.changed.connect(self._on_changed)

    def row(self, rec: JobRecord) -> JobRow:
        return self._rows[rec.id]

    def _on_added(self, rec: JobRecord) -> None:
        self.empty.hide()
        row = JobRow(rec, self._queue)
        self._rows[rec.id] = row
        self._lay.insertWidget(0, row)
        # Newest on top, and first for Tab too: panel → this row → the older rows.
        QWidget.setTabOrder(self, row.toggle)
        QWidget.setTabOrder(row.toggle, row.cancel)
        QWidget.setTabOrder(row.cancel, row.details)

    def _on_changed(self, rec: JobRecord) -> None:
        row = self._rows.get(rec.id)
        if row is not None:
            row.refresh()
