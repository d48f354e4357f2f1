"""Evidence report export from the app: the files ``sealcheck report export`` writes.

The report is core's (evidence.py: ``build`` then ``to_html`` or ``to_json``), never
rendered here, so a report exported from the app and one from the CLI read and check
the same (``sealcheck report check``). Two selections, as the CLI offers them: history
entries by hand, or the latest verdict (OK or FAILED) of each version in scope, which
leaves out runs that could not check a backup, as ``--latest`` does.

The file is written whole or not at all (core's AtomicWriter), on a worker thread
(building a report parses every entry's result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.plumbing.atomic import AtomicWriter
from sealcheck.core.records import evidence
from sealcheck.core.records.history import Entry

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext

Format = Literal["html", "json"]


@dataclass(frozen=True)
class Written:
    path: Path
    entries: int
    sha256: str  # the seal: what to file elsewhere (and what report check prints)


def write_report(entries: list[Entry], fmt: Format, path: Path, *, overwrite: bool) -> Written:
    """Core's evidence report of ``entries`` to ``path`` (whole, or nothing there)."""
    try:
        body = evidence.build(entries)
    except ValueError as exc:  # a damaged entry: as the CLI says it
        raise ValueError(f"an entry of the history is damaged ({exc})") from None
    data = evidence.to_html(body) if fmt == "html" else evidence.to_json(body)
    with AtomicWriter(path, overwrite=overwrite) as f:
        f.write(data)
    return Written(path, len(entries), _seal(data, fmt))


def _seal(data: bytes, fmt: Format) -> str:
    if fmt == "html":
        return data[-evidence.SEAL_LINE_BYTES :].decode().strip()
    return str(json.loads(data)["sha256"])


def _write(ctx: WorkerContext, entries: list[Entry], fmt: Format, path: Path, ow: bool) -> Written:
    ctx.cancel.check()
    return write_report(entries, fmt, path, overwrite=ow)


class ExportDialog(QDialog):
    """Which entries, which format, where; Export writes on a worker thread."""

    def __init__(
        self,
        selected: list[Entry],
        latest: list[Entry],
        where: str,
        parent: QWidget | None = None,
        *,
        prefer_latest: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export evidence report")
        self._selected = selected
        self._latest = latest
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: Worker | None = None
        self.written: Written | None = None

        self.pick_selected = QRadioButton(f"The selected history entries ({len(selected)})")
        self.pick_latest = QRadioButton(
            f"The latest verdict of each version {where} ({len(latest)}): OK or FAILED; "
            "runs that could not check a backup are left out"
        )
        self.which = QButtonGroup(self)
        for b in (self.pick_selected, self.pick_latest):
            self.which.addButton(b)
        self.pick_selected.setEnabled(bool(selected))
        self.pick_latest.setEnabled(bool(latest))
        use_latest = prefer_latest or not selected
        (self.pick_latest if use_latest and latest else self.pick_selected).setChecked(True)

        self.html = QRadioButton("&HTML (for people; the seal checks with standard tools)")
        self.json = QRadioButton("&JSON (for programs)")
        self.fmt = QButtonGroup(self)
        self.fmt.addButton(self.html)
        self.fmt.addButton(self.json)
        self.html.setChecked(True)
        self.html.toggled.connect(self._fix_suffix)

        self.path = QLineEdit(str(Path.home() / "sealcheck-evidence.html"))
        self.path.setAccessibleName("Report file")
        browse = QPushButton("&Browse…")
        browse.setAccessibleName("Choose the report file")
        browse.clicked.connect(self._browse)
        self.replace_box = QCheckBox("&Replace the file if it exists")
        self.message = QLabel()
        self.message.setAccessibleName("Export result")
        self.message.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        which = QVBoxLayout()
        which.addWidget(self.pick_selected)
        which.addWidget(self.pick_latest)
        form.addRow("Entries:", which)
        fmts = QVBoxLayout()
        fmts.addWidget(self.html)
        fmts.addWidget(self.json)
        form.addRow("Format:", fmts)
        file_label = QLabel("&File:")
        file_label.setBuddy(self.path)
        form.addRow(file_label, row)
        form.addRow("", self.replace_box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_btn = self.buttons.addButton("E&xport", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_btn.setDefault(True)
        self.export_btn.clicked.connect(self.export)
        self.export_btn.setEnabled(bool(selected or latest))
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        if not (selected or latest):
            self.message.setText(
                "Nothing to export here: no entry is selected and no version in this view "
                "has a verdict yet."
            )

    # --- choices ----------------------------------------------------------------------

    @property
    def format(self) -> Format:
        return "html" if self.html.isChecked() else "json"

    def entries(self) -> list[Entry]:
        return self._latest if self.pick_latest.isChecked() else self._selected

    def _fix_suffix(self) -> None:
        p = Path(self.path.text())
        if p.suffix.lower() in (".html", ".json", ".htm"):
            self.path.setText(str(p.with_suffix("." + self.format)))

    def _browse(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self,
            "Save the evidence report",
            self.path.text(),
            "HTML (*.html)" if self.format == "html" else "JSON (*.json)",
        )
        if name:
            self.path.setText(name)
            # The save dialog has asked "replace it?" already.
            self.replace_box.setChecked(Path(name).exists())

    # --- writing ----------------------------------------------------------------------

    def export(self) -> None:
        entries = self.entries()
        text = self.path.text().strip()
        if not text or not entries:
            self.message.setText("Choose a file to write the report to.")
            return
        path = Path(text).expanduser()
        self.export_btn.setEnabled(False)
        self.message.setText(f"Writing an evidence report of {len(entries)} entries…")
        w = Worker(_write, entries, self.format, path, self.replace_box.isChecked())
        w.signals.returned.connect(self._on_written)
        w.signals.errored.connect(self._on_failed)
        w.signals.finished.connect(self._on_finished)
        self._worker = w
        w.start(self._pool)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _on_written(self, done: Written) -> None:
        self.written = done
        n = done.entries
        self.message.setText(
            f"✔ Wrote an evidence report of {n} {'entry' if n == 1 else 'entries'} to "
            f"{done.path}.\nSHA-256 seal: {done.sha256}\nFile the seal elsewhere (a ticket, "
            "a signed mail); 'sealcheck report check' checks the file against it offline."
        )

    def _on_failed(self, f: Failure) -> None:
        if isinstance(f.exc, ValueError):
            self.message.setText(f"⚠ Nothing was written: {f.exc}.")
            return
        msg = describe(f.exc)
        self.message.setText(f"⚠ Nothing was written: {msg.one_line()}. {msg.advice}")

    def _on_finished(self) -> None:
        self._worker = None
        self.export_btn.setEnabled(True)

    def done(self, result: int) -> None:
        # Closing while the file is written: it is finished (a second or two), not cut.
        self._pool.waitForDone(30_000)
        super().done(result)
