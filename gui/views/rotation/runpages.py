"""The run page (progress, ETA, Pause = cancel, resumable) and the result page (what was
done, the report export, and the plain word that re-wrapping is not revocation)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Protocol, cast

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from sealcheck.core.rotation.engine import NOT_REVOCATION
from sealcheck.core.rotation.journal import Step

from ...jobs.worker import Failure
from ...state.results import duration_text
from .pages import Host, WizardPage
from .plan import reason_text
from .widgets import failure_text, label
from .work import RunResult, RunStats, export


class RunPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Rotating")
        self.setSubTitle(
            "Each version: unwrap with the old key, check it opens the data, wrap for the new "
            "key, write create-only, read back. Pause stops between versions; nothing is "
            "half-written, and Resume (now or after a restart) carries on from the journal."
        )
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Rotation progress")
        self.status = label("", "Rotation status")
        self.pause = QPushButton("&Pause")
        self.pause.setAccessibleName("Pause the rotation")
        self.resume = QPushButton("&Resume")
        self.resume.setAccessibleName("Resume the rotation")
        row = QHBoxLayout()
        row.addWidget(self.pause)
        row.addWidget(self.resume)
        row.addStretch()
        lay = QVBoxLayout(self)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addLayout(row)
        lay.addStretch()
        self.pause.clicked.connect(self.request_pause)
        self.resume.clicked.connect(self.start_run)
        self.result: RunResult | None = None
        self.paused = False

    def initializePage(self) -> None:
        self.start_run()

    def start_run(self) -> None:
        wiz = self.wiz()
        self.result, self.paused = None, False
        self.bar.setRange(0, 0)
        self.status.setText("Checking the bucket (versioning, create-only writes, the lock)…")
        self.pause.setEnabled(True)
        self.resume.setEnabled(False)
        wiz.start(
            wiz.run_fn(),
            returned=self._finished,
            errored=self._failed,
            aborted=self._paused,
            progress=self._progress,
        )
        self.completeChanged.emit()

    def request_pause(self) -> None:
        self.pause.setEnabled(False)
        self.status.setText("Pausing: the versions in flight finish their step…")
        self.wiz().abort()

    def _progress(self, s: object) -> None:
        if not isinstance(s, RunStats):
            return
        self.bar.setRange(0, s.total)
        self.bar.setValue(s.done)
        eta = s.eta
        left = f", about {duration_text(eta)} left" if eta is not None else ""
        self.status.setText(f"{s.done} of {s.total} versions finished{left}.")

    def _finished(self, result: RunResult) -> None:
        self.result = result
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.status.setText("Finished. Next shows the result and the report.")
        self.pause.setEnabled(False)
        self.completeChanged.emit()

    def _paused(self) -> None:
        self.paused = True
        self.pause.setEnabled(False)
        self.resume.setEnabled(True)
        self.status.setText(
            "Paused: nothing is half-written. Resume carries on from the journal, now or the "
            "next time Sealcheck starts (or: sealcheck rotate run … --resume)."
        )
        self.completeChanged.emit()

    def _failed(self, failure: Failure) -> None:
        self.pause.setEnabled(False)
        self.resume.setEnabled(True)
        self.bar.setRange(0, 1)
        self.status.setText(failure_text(failure) + "\nResume tries again from the journal.")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.result is not None and not self.wiz().busy


class RunHost(Host, Protocol):
    """The wizard as the result page sees it: with the run page whose result it shows."""

    run_page: RunPage


class ResultPage(WizardPage):
    def host(self) -> RunHost:
        return cast(RunHost, self.wiz())

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Result")
        self.text = label("", "Rotation result")
        self.revocation = label("", "Not revocation")
        self.json = QPushButton("Export report as &JSON…")
        self.html = QPushButton("Export report as &HTML…")
        self.saved = label("", "Export status")
        row = QHBoxLayout()
        row.addWidget(self.json)
        row.addWidget(self.html)
        row.addStretch()
        lay = QVBoxLayout(self)
        lay.addWidget(self.revocation)
        lay.addWidget(self.text)
        lay.addLayout(row)
        lay.addWidget(self.saved)
        lay.addStretch()
        self.json.clicked.connect(lambda: self._export("json"))
        self.html.clicked.connect(lambda: self._export("html"))

    def initializePage(self) -> None:
        result = self.host().run_page.result
        assert result is not None
        self.revocation.setText(f"<b>⚠ {html.escape(NOT_REVOCATION)}</b>")
        items = result.outcome.items
        counts = result.report["counts"]
        lines = [
            f"<p>{len(items)} version(s) of {html.escape(result.report['source'])}: "
            + ", ".join(f"{n} {html.escape(k)}" for k, n in sorted(counts.items()))
            + ".</p>",
            f"<p>New key: {html.escape(result.report['new_key']['label'])}, "
            f"{html.escape(result.report['new_key']['proof_of_possession'])}.</p>",
        ]
        cannot = [i for i in items if i.step is Step.CANNOT]
        if cannot:
            lines.append("<p>Not rotated (they keep their original key):</p><ul>")
            lines += [
                f"<li>{html.escape(i.data_key)} @ {html.escape(i.data_version)}: "
                f"{html.escape(reason_text(i))}</li>"
                for i in cannot[:20]
            ]
            lines.append("</ul>")
        lines.append(f"<p>{html.escape(result.recorded)}</p>")
        lines.append(f"<p class='small'>Journal: {html.escape(str(result.journal))}</p>")
        self.text.setText("".join(lines))

    def export(self, path: Path, fmt: str) -> None:
        result = self.host().run_page.result
        assert result is not None
        export(result.report, path, fmt)
        self.saved.setText(f"Saved {path}")

    def _export(self, fmt: str) -> None:
        filters = {"json": "JSON (*.json)", "html": "HTML (*.html)"}
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the rotation report", str(Path.home() / f"rotation.{fmt}"), filters[fmt]
        )
        if path:
            try:
                self.export(Path(path), fmt)
            except Exception as exc:  # noqa: BLE001 - said in words, the wizard stays
                self.saved.setText(failure_text(exc))
