"""Evidence report export from the app: the file ``sealcheck report export`` writes.

The report is core's, written by its one road for reports (report_file: the records
read back from the history a batch at a time while the report is signed, hash-chained
and rendered), never rendered here, so a report exported from the app and one from the
CLI are the same for the same entries and ``sealcheck report verify`` checks both. Two
selections, as the CLI offers them: history entries by hand, in the order the page
gives them, or the latest verdict (OK or FAILED) of each version in scope, the ids
``--latest`` reports (``History.latest_ids``), which leaves out runs that could not
check a backup. The formats are core's list (report_names), the ones ``report export
--format`` takes: the name's suffix, the radio button or the save dialog's filter picks
one. A PDF loads reportlab only as it is written (report_file imports its renderers
then), never at the app's start.

The report is signed with the evidence key from custody; when custody cannot give it
the report is written sealed but unsigned and the dialog says why. The file is written
whole or not at all (core's AtomicWriter), on a worker thread (a report reads every
entry's record).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

from sealcheck.core.keys.signing import CustodySigner
from sealcheck.core.records import report_file, report_names
from sealcheck.core.records.history import Entry, History

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext


def name_filters() -> str:
    """The save dialog's filters, one per report format, in core's order (this dialog's
    and the Audit page's)."""
    return ";;".join(_filter(f) for f in report_names.FORMATS)


def _filter(f: report_names.ReportFormat) -> str:
    return f"{f.title} (*.{f.name})"


def chosen_path(name: str, selected_filter: str) -> Path:
    """The file a save dialog gave: its name as typed when that ends in a report format,
    else with the suffix of the filter chosen (the name alone would say no format)."""
    path = Path(name)
    if report_names.of_path(path) is not None:
        return path
    for f in report_names.FORMATS:
        if selected_filter == _filter(f):
            return path.with_name(path.name + "." + f.name)
    return path


@dataclass(frozen=True)
class Written:
    path: Path
    entries: int
    signed_by: str | None  # the evidence signing key's fingerprint; None: sealed, unsigned
    unsigned_why: str = ""
    format: str = "html"  # a report_names name


def write_report(
    history: Path, ids: list[int], fmt: str, path: Path, *, overwrite: bool
) -> Written:
    """Core's signed evidence report of history entries ``ids`` (in that order) to
    ``path`` (whole, or nothing there), as ``sealcheck report export`` writes it; a
    damaged entry is the history's error (HistoryError), with nothing written."""
    signer = CustodySigner()
    hist = History(history)  # a connection of this thread's own
    try:
        done = report_file.write(hist, ids, fmt, path, signer=signer, overwrite=overwrite)
    finally:
        hist.close()
    return Written(path, done.records, done.signed_by, signer.why, fmt)


def _write(
    ctx: WorkerContext, history: Path, ids: list[int], fmt: str, path: Path, ow: bool
) -> Written:
    ctx.cancel.check()
    return write_report(history, ids, fmt, path, overwrite=ow)


class ExportDialog(QDialog):
    """Which entries, which format, where; Export writes on a worker thread."""

    def __init__(
        self,
        history: Path | None,
        selected: list[Entry],
        latest: list[Entry],
        where: str,
        parent: QWidget | None = None,
        *,
        prefer_latest: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export evidence report")
        self._history = history  # None: no history, so nothing selected, nothing latest
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

        # One button per format core writes, in its order; a mnemonic each (C of CSV is
        # taken by Close).
        keys = {"html": "&HTML", "json": "&JSON", "csv": "C&SV", "pdf": "&PDF"}
        self.fmt = QButtonGroup(self)
        self.fmt_buttons: dict[str, QRadioButton] = {}
        for f in report_names.FORMATS:
            b = QRadioButton(f"{keys.get(f.name, f.title)} ({f.use})")
            b.setAccessibleName(f"{f.title} report")
            self.fmt.addButton(b)
            self.fmt_buttons[f.name] = b
        self.fmt_buttons["html"].setChecked(True)
        self.fmt.buttonToggled.connect(self._fix_suffix)

        self.path = QLineEdit(str(Path.home() / "sealcheck-evidence.html"))
        self.path.setAccessibleName("Report file")
        self.path.textChanged.connect(self._format_from_name)
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
        for b in self.fmt_buttons.values():
            fmts.addWidget(b)
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
    def format(self) -> str:
        return next(n for n, b in self.fmt_buttons.items() if b.isChecked())

    def entries(self) -> list[Entry]:
        return self._latest if self.pick_latest.isChecked() else self._selected

    def _fix_suffix(self, button: QRadioButton, checked: bool) -> None:
        """A format chosen: a name ending in another format's suffix follows it."""
        p = Path(self.path.text())
        if checked and report_names.of_path(p) not in (None, self.format):
            self.path.setText(str(p.with_suffix("." + self.format)))

    def _format_from_name(self, text: str) -> None:
        """A name typed (or browsed to) ending in a format's suffix: that format."""
        fmt = report_names.of_path(Path(text.strip()))
        if fmt is not None and fmt != self.format:
            self.fmt_buttons[fmt].setChecked(True)

    def _browse(self) -> None:
        current = next(f for f in report_names.FORMATS if f.name == self.format)
        name, picked = QFileDialog.getSaveFileName(
            self, "Save the evidence report", self.path.text(), name_filters(), _filter(current)
        )
        if name:
            path = chosen_path(name, picked)
            self.path.setText(str(path))  # its suffix picks the format
            # The save dialog has asked "replace it?" already (of the name it gave).
            self.replace_box.setChecked(path.exists())

    # --- writing ----------------------------------------------------------------------

    def export(self) -> None:
        entries = self.entries()
        text = self.path.text().strip()
        if not text or not entries or self._history is None:
            self.message.setText("Choose a file to write the report to.")
            return
        path = Path(text).expanduser()
        self.export_btn.setEnabled(False)
        self.message.setText(f"Writing an evidence report of {len(entries)} entries…")
        ids = [e.id for e in entries]  # the report's order; core reads their records
        # The name's suffix names the format (the buttons follow it); a name with none
        # is written in the format chosen, as `report export --format` writes any name.
        fmt = report_names.of_path(path) or self.format
        w = Worker(_write, self._history, ids, fmt, path, self.replace_box.isChecked())
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
        wrote = (
            f"✔ Wrote an evidence report of {n} {'entry' if n == 1 else 'entries'} to {done.path}."
        )
        if done.format == "csv":
            # The CSV carries no signature (report_formats says why): say where it is.
            signed = f"signed by {done.signed_by}" if done.signed_by else "NOT signed"
            how = (
                "A spreadsheet view, not evidence: each row's record hash is in the signed "
                f"HTML, JSON or PDF report of the same entries ({signed})."
            )
        elif done.signed_by:
            how = (
                f"Signed by {done.signed_by}; 'sealcheck report verify' checks it offline "
                "(publish the key: sealcheck key export-public --signing)."
            )
        else:
            how = f"NOT signed: {done.unsigned_why}"
        self.message.setText(f"{wrote}\n{how}")

    def _on_failed(self, f: Failure) -> None:
        # The details name what failed (a damaged entry: as the CLI says it).
        msg = describe(f.exc)
        self.message.setText(
            f"⚠ Nothing was written: {msg.one_line()}: {msg.details}. {msg.advice}"
        )

    def _on_finished(self) -> None:
        self._worker = None
        self.export_btn.setEnabled(True)

    def done(self, result: int) -> None:
        # Closing while the file is written: it is finished (a second or two), not cut.
        self._pool.waitForDone(30_000)
        super().done(result)
