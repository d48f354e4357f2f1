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
from .results import duration_text, size_text

STAGE_WORDS = {
    "start": "Starting",
    "download": "Downloading",
    "unlock": "Unwrapping the key",
    "decompress": "Decrypting and decompressing",
    "verify": "Verifying",
    "restore": "Restoring",
}


def progress_text(rec: JobRecord) -> str:
    ev = rec.progress
    if rec.state is JobState.QUEUED:
        return "Waiting in the queue"
    if ev is None:
        return "Starting…"
    stage = STAGE_WORDS.get(ev.stage, ev.stage.capitalize())
    total = f" of {size_text(ev.total)}" if ev.total else ""
    eta = f", {duration_text(ev.eta)} left" if ev.eta is not None else ""
    return f"{stage}: {size_text(ev.done)}{total} at {size_text(ev.rate)}/s{eta}"


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
        self.toggle.setAccessibleName("Show the details of the failure")
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
            self.status.setText(progress_text(rec))
            return
        self.cancel.hide()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(rec.state is JobState.DONE)
        took = duration_text(rec.elapsed)
        if rec.state is JobState.DONE:
            self.bar.setValue(1000)
            what = "Restored" if rec.spec.operation == "restore" else "Verified"
            dest = f" to {rec.spec.destination}" if rec.spec.destination else ""
            self.status.setText(f"✔ {what}{dest}: every layer holds ({took}).")
            return
        msg = rec.message
        if rec.state is JobState.CANCELLED:
            self.bar.setValue(0)
            self.status.setText("Cancelled. Nothing was left behind.")
            return
        self.bar.setValue(0)
        text = msg.one_line() if msg else "Failed"
        advice = f" {msg.advice}" if msg else ""
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
        self.empty = QLabel("No jobs yet. Select a version and press Verify or Restore to file…")
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

    def _on_changed(self, rec: JobRecord) -> None:
        row = self._rows.get(rec.id)
        if row is not None:
            row.refresh()
