"""The Audit page (issue 14): coverage per backup set of the selected source, and
"Audit now" on it.

Coverage and the campaign are core's (core/audit: the API ``sealcheck coverage`` and
``sealcheck audit`` use). Both run on the one worker type, off the GUI thread: the
listing of a large source and a campaign over hundreds of versions would freeze the
window. The campaign is one job with one progress bar, one ETA and Cancel; cancelled,
it is recorded as incomplete and the next "Audit now" with the same choice continues
it (core's resume). When it ends the coverage is read again.

A state is shown as its words and a colour, never the colour alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.audit import coverage as cov
from sealcheck.core.audit import trend
from sealcheck.core.audit.campaign import Campaign, CampaignOptions, population
from sealcheck.core.audit.cluster import ClusterSpec, parse_cluster
from sealcheck.core.audit.pool import Progress
from sealcheck.core.audit.sample import parse_sample
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import KeyUnavailable, SealcheckError, UsageError
from sealcheck.core.keys.signing import CustodySigner
from sealcheck.core.records import report_file, report_names
from sealcheck.core.records.history import History
from sealcheck.core.storage.s3.client import make_client

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext
from ..look.theme import Tone, status_color
from ..state.settings import SourceConfig
from ..state.tablemodel import RowTableModel
from .coveragechart import CoverageChart
from .exportdialog import chosen_path, name_filters
from .historyview import _combo as combo

_TONE = {
    cov.State.OK.value: Tone.OK,
    cov.State.FAILED.value: Tone.FAILED,
    cov.State.PARTLY_OUTDATED.value: Tone.WARNING,
    cov.State.OUTDATED.value: Tone.WARNING,
    cov.State.PARTLY.value: Tone.WARNING,
    cov.State.NEVER.value: Tone.NEUTRAL,
}
SAMPLES = ("Every version", "A random sample of N", "A random sample of P %", "Slice i of k")
VERSIONS = (("All versions", "all"), ("Current versions only", "current"))


@dataclass(frozen=True)
class SetRow:
    """One backup set's coverage: its own state (the worst of its versions') and counts."""

    backup: str
    state: str
    versions: int
    states: dict[str, int]

    @property
    def counts(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))


@dataclass(frozen=True)
class Snapshot:
    """The campaign's progress, copied for the GUI thread (core's Progress keeps moving)."""

    done: int
    total: int
    eta: float | None


def audit_options(src: SourceConfig | None) -> CampaignOptions | None:
    """What a campaign and the coverage need of a source; None for a folder (no
    versions to list) or no source."""
    if src is None or src.is_local:
        return None
    return CampaignOptions(
        location=f"s3://{src.bucket}/{src.prefix}",
        settings=src.s3(),
        rules=src.parsed_rules(),
        source_targets=(src.targets(),),  # the source's RTO/RPO (Edit source → Audit)
    )


def targets_words(opts: CampaignOptions | None) -> str:
    """The selected source's recovery targets, for the page."""
    t = opts.targets_of(opts.location) if opts is not None else None
    if t is None or t.empty:
        return "Recovery targets: none set (Edit source → Audit)."
    rto = f"RTO {t.rto_s:g} s" if t.rto_s is not None else "no RTO"
    rpo = f"RPO {t.rpo_h:g} h" if t.rpo_h is not None else "no RPO"
    return f"Recovery targets: {rto}, {rpo} (Edit source → Audit)."


@dataclass(frozen=True)
class Coverage:
    sets: list[SetRow]  # per backup set, now
    days: list[trend.Day]  # versions per state at the end of each of the last 30 days


def read_coverage(ctx: WorkerContext, history: Path, opts: CampaignOptions) -> Coverage:
    """On a worker thread: the population under the source (never-checked versions
    included) against the history, grouped per backup set, and day by day."""
    pop, _skipped = population(opts, make_client(opts.settings))
    ctx.cancel.check()
    hist = History(history)
    try:
        rows = cov.coverage(hist, source=opts.location + "*", population=pop)
        days = trend.by_day(hist, source=opts.location + "*", population=pop)
    finally:
        hist.close()
    sets = [
        SetRow(backup, b["state"], b["versions"], dict(b["states"]))
        for backup, b in cov.by_backup(rows).items()
    ]
    return Coverage(sets, days)


@dataclass(frozen=True)
class Exported:
    path: Path
    signed_by: str | None  # the evidence signing key's fingerprint; None: sealed, unsigned
    unsigned_why: str = ""


def export_report(
    ctx: WorkerContext, history: Path, opts: CampaignOptions, summary: dict[str, Any], out: Path
) -> Exported:
    """On a worker thread: the campaign's report as ``sealcheck audit --report`` writes
    it (its entries, the campaign and the coverage; signed with the evidence key when
    custody can give it), in the format the name ends in, written by core's one road
    for reports (report_file: the records streamed, the file atomic, never partial)."""
    fmt = report_names.of_path(out)
    if fmt is None:
        raise UsageError(f"report {out.name}: the name must end in {report_names.SUFFIXES}")
    pop, _skipped = population(opts, make_client(opts.settings))
    ctx.cancel.check()
    signer = CustodySigner()
    hist = History(history)
    try:
        # Failures first, as the CLI: ordered by what each entry is, its record read
        # only as the report is written (core streams them).
        tags = sorted(hist.tags(campaign=summary["id"]), key=report_file.failures_first)
        rows = cov.coverage(hist, source=opts.location + "*", population=pop)
        done = report_file.write(
            hist,
            [t.id for t in tags],
            fmt,
            out,
            signer=signer,
            sections={"campaign": summary, "coverage": [r.to_dict() for r in rows]},
            overwrite=True,
        )
    finally:
        hist.close()
    return Exported(out, done.signed_by, signer.why)


def run_campaign(
    ctx: WorkerContext, history: Path, opts: CampaignOptions, secrets: Secrets
) -> dict[str, Any]:
    """On a worker thread: core's campaign, its cancel token the job's; the summary."""
    hist = History(history, keep_open=True)

    def report(p: Progress) -> None:
        # The last report always goes out: a campaign whose results all come back within
        # one throttle interval would otherwise leave the bar at its first report.
        last = p.total_versions > 0 and p.done_versions >= p.total_versions
        ctx.progress(Snapshot(p.done_versions, p.total_versions, p.eta), force=last)

    try:
        out = Campaign(opts, secrets, hist, cancel=ctx.cancel, on_progress=report).run()
    finally:
        secrets.wipe()
        hist.close()
    summary: dict[str, Any] = out.summary
    return summary


class CoverageModel(RowTableModel[SetRow]):
    COLUMNS = ("Backup", "State", "Versions", "Versions by state")
    STATE_COLUMN = 1

    def set_rows(self, rows: list[SetRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[SetRow]:
        return list(self._rows)

    def cell_text(self, i: int, row: SetRow, col: int) -> str:
        return (row.backup, row.state.upper(), str(row.versions), row.counts)[col]

    def cell_data(self, i: int, row: SetRow, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and col == self.STATE_COLUMN:
            return QBrush(status_color(_TONE[row.state]))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.backup}: {row.state} ({row.counts})"
        return None


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


class AuditView(QWidget):
    """The page. ``set_source`` follows the window's selected source."""

    coverage_loaded = Signal(int)  # backup sets shown; -1 when it could not be read
    audit_finished = Signal(object)  # the campaign's summary, or None (failed, cancelled)
    exported = Signal(object)  # Exported, or None when the report could not be written

    def __init__(
        self,
        history: History | None,
        secrets_for: Callable[[], Secrets] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.history = history
        self.secrets_for = secrets_for
        self.options: CampaignOptions | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)  # the coverage may be read while a campaign runs
        self._reading: Worker | None = None
        self._again = False
        self.audit_job: Worker | None = None
        self.last_summary: dict[str, Any] | None = None

        self.versions = combo("Versions to audit", (t for t, _ in VERSIONS))
        self.sample = combo("Sample", SAMPLES)
        self.amount = QLineEdit()
        self.amount.setAccessibleName("Sample size, percentage or slice")
        self.amount.setPlaceholderText("N, P or i/k")
        self.seed = QLineEdit()
        self.seed.setAccessibleName("Seed")
        self.seed.setPlaceholderText("seed (optional)")
        self.cluster = QLineEdit()
        self.cluster.setAccessibleName("Cluster")
        self.cluster.setPlaceholderText("cluster (optional): local:N, tls://HOST:PORT")
        self.cluster.setToolTip(
            "Run the campaign's versions on a Dask cluster (the dask extra), as "
            "'sealcheck audit --cluster' does: N worker processes here, or a running "
            "scheduler (tls:// takes its certificates from Dask's configuration). Keys stay "
            "here; each worker gets only its backup's data key."
        )
        self.audit_btn = QPushButton("&Audit now")
        self.audit_btn.setAccessibleName("Audit now")
        self.audit_btn.clicked.connect(self.audit_now)
        self.cancel_btn = QPushButton("Cancel audit")
        self.cancel_btn.setAccessibleName("Cancel audit")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel_audit)
        self.export_btn = QPushButton("E&xport report…")
        self.export_btn.setAccessibleName("Export report")
        self.export_btn.setToolTip(
            "The last campaign's report (HTML, PDF, JSON or CSV), signed, as "
            "'sealcheck audit --report' writes it"
        )
        self.export_btn.clicked.connect(self._ask_export)
        self.exporting: Worker | None = None
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Audit progress")
        self.bar.setVisible(False)
        self.table = QTableView()
        self.table.setAccessibleName("Coverage per backup set")
        self.model = CoverageModel(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setTabKeyNavigation(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.chart = CoverageChart()
        self.audit_status = QLabel()
        self.audit_status.setAccessibleName("Audit progress and result")
        self.audit_status.setWordWrap(True)
        self.targets = QLabel(targets_words(None))
        self.targets.setAccessibleName("Recovery targets")
        self.status = QLabel("Select a bucket source.")
        self.status.setAccessibleName("Audit status")
        self.status.setWordWrap(True)

        top = QHBoxLayout()
        for w in (self.versions, self.sample, self.amount, self.seed, self.cluster, self.audit_btn):
            top.addWidget(w)
        top.addWidget(self.cancel_btn)
        top.addWidget(self.export_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.audit_status)
        lay.addWidget(self.targets)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.chart)
        lay.addWidget(self.status)
        self._enable()

    # --- the source -------------------------------------------------------------------

    def set_source(self, options: CampaignOptions | None) -> None:
        """The selected source's location, S3 settings and naming rules (None: no
        bucket source; a folder has no versions to audit)."""
        if options == self.options:
            return
        self.options = options
        self.last_summary = None  # another source's campaign: nothing to export here
        self.targets.setText(targets_words(options))
        self.model.set_rows([])
        self.chart.set_days([])
        self._enable()
        self.reload()

    def _enable(self) -> None:
        idle = self.audit_job is None
        self.audit_btn.setEnabled(idle and self.options is not None and self.history is not None)
        self.cancel_btn.setEnabled(not idle)
        self.export_btn.setEnabled(
            idle and self.last_summary is not None and self.exporting is None
        )

    def campaign_options(self) -> CampaignOptions:
        """The source's options with the sample chosen on the page (UsageError if the
        sample's words are not a count, a percentage or a slice)."""
        assert self.options is not None
        choice = self.sample.currentIndex()
        amount = self.amount.text().strip()
        seed_text = self.seed.text().strip()
        if seed_text and not seed_text.isdigit():
            raise UsageError(f"seed {seed_text!r}: give a whole number")
        seed = int(seed_text) if seed_text and choice in (1, 2) else None
        sample = {
            0: lambda: parse_sample(None, None, None),
            1: lambda: parse_sample(amount, seed, None),
            2: lambda: parse_sample(amount.rstrip("%") + "%", seed, None),
            3: lambda: parse_sample(None, None, amount),
        }[choice]()
        return CampaignOptions(
            location=self.options.location,
            settings=self.options.settings,
            rules=self.options.rules,
            versions=VERSIONS[self.versions.currentIndex()][1],
            sample=sample,
            parallel=2,
            source_targets=self.options.source_targets,
            cluster=self.cluster_spec(),
        )

    def cluster_spec(self) -> ClusterSpec | None:
        """The cluster field, read as --cluster is (UsageError naming what it takes)."""
        text = self.cluster.text().strip()
        try:
            return parse_cluster(text) if text else None
        except UsageError as exc:
            raise UsageError(exc.detail.replace("--cluster ", "cluster ", 1)) from None

    # --- coverage ---------------------------------------------------------------------

    def reload(self) -> None:
        if self.options is None or self.history is None:
            self.status.setText(
                "Select a bucket source." if self.history else "No verification history."
            )
            return
        if self._reading is not None:
            self._again = True
            return
        w = Worker(read_coverage, self.history.path, self.options)
        # A lambda is not disconnected when this view is destroyed (a window closed
        # while the history is read): each answer's slot first checks the view still exists.
        w.signals.returned.connect(lambda rows, w=w: self._on_coverage(w, rows))
        w.signals.errored.connect(lambda f, w=w: self._on_coverage_failed(w, f))
        w.signals.finished.connect(lambda w=w: self._on_read_finished(w))
        self._reading = w
        self.status.setText("Reading the coverage…")
        w.start(self._pool)

    def _alive(self) -> bool:
        return shiboken6.isValid(self) and shiboken6.isValid(self.model)

    @property
    def reading(self) -> bool:
        return self._reading is not None

    def _on_coverage(self, w: Worker, got: Coverage) -> None:
        if not self._alive():
            return
        if w is not self._reading or self._again:
            return
        rows = got.sets
        self.model.set_rows(rows)
        self.chart.set_days(got.days)
        self.table.resizeColumnsToContents()
        n = len(rows)
        self.status.setText(f"{n} backup {'set' if n == 1 else 'sets'} under {self.options_uri}")
        self.coverage_loaded.emit(n)

    @property
    def options_uri(self) -> str:
        return self.options.location if self.options else ""

    def _on_coverage_failed(self, w: Worker, f: Failure) -> None:
        if not self._alive():
            return
        if w is not self._reading:
            return
        msg = describe(f.exc)
        self.model.set_rows([])
        self.chart.set_days([])
        self.status.setText(f"⚠ The coverage could not be read: {msg.one_line()}. {msg.advice}")
        self.coverage_loaded.emit(-1)

    def _on_read_finished(self, w: Worker) -> None:
        if not self._alive():
            return
        if self._reading is w:
            self._reading = None
        if self._again:
            self._again = False
            self.reload()

    # --- the campaign -----------------------------------------------------------------

    def audit_now(self) -> None:
        if self.audit_job is not None or self.options is None or self.history is None:
            return
        try:
            opts = self.campaign_options()
            if self.secrets_for is None:
                raise KeyUnavailable("no key is set for this source: add one on the Keys page")
            secrets = self.secrets_for()
        except UsageError as exc:
            # The sample's or the cluster's words: core's message names what it takes.
            field = "Cluster" if exc.detail.startswith("cluster ") else "Sample"
            self.audit_status.setText(f"⚠ {field}: {exc}")
            return
        except SealcheckError as exc:
            msg = describe(exc)
            self.audit_status.setText(f"⚠ {msg.one_line()}. {msg.advice}")
            return
        w = Worker(run_campaign, self.history.path, opts, secrets)
        w.signals.progress.connect(self._on_progress)
        w.signals.returned.connect(self._on_audited)
        w.signals.errored.connect(self._on_audit_failed)
        w.signals.aborted.connect(self._on_audit_cancelled)
        w.signals.finished.connect(lambda w=w: self._on_audit_finished(w))
        self.audit_job = w
        self.bar.setRange(0, 0)
        self.bar.setVisible(True)
        self.audit_status.setText("Audit: listing the versions and drawing the sample…")
        self._enable()
        w.start(self._pool)

    def cancel_audit(self) -> None:
        if self.audit_job is not None:
            self.audit_job.abort()
            self.audit_status.setText("Audit: cancelling (the next Audit now continues it)…")

    def _on_progress(self, s: Any) -> None:
        if not isinstance(s, Snapshot) or self.audit_job is None:
            return
        self.bar.setRange(0, max(s.total, 1))
        self.bar.setValue(s.done)
        self.audit_status.setText(f"Audit: {s.done}/{s.total} versions, ETA {_fmt_eta(s.eta)}")

    def _on_audited(self, summary: dict[str, Any]) -> None:
        self.last_summary = summary
        t = summary["totals"]
        head = {0: "Audit OK", 1: "Audit FAILED", 130: "Audit cancelled"}.get(
            summary["exit_code"], "Audit incomplete (setup problems)"
        )
        left = summary["not_yet_checked"]
        more = f"; {left} left: Audit now again continues it" if left else ""
        on = f" (on {summary['cluster']})" if summary.get("cluster") else ""
        self._ended(
            f"{head}{on}: sample {summary['sample_size']} of {summary['population']} "
            f"({summary['method']}); OK {t.get('ok', 0)}, FAILED {t.get('failed', 0)}, "
            f"NOT CHECKED (setup) {t.get('not-checked', 0)}{more}",
            summary,
        )

    def _on_audit_failed(self, f: Failure) -> None:
        msg = describe(f.exc)
        self._ended(f"⚠ Audit could not run: {msg.one_line()}. {msg.advice}", None)

    def _on_audit_cancelled(self) -> None:
        self._ended("Audit cancelled: Audit now again continues the same campaign.", None)

    def _ended(self, text: str, summary: dict[str, Any] | None) -> None:
        self.bar.setVisible(False)
        self.audit_status.setText(text)
        self.audit_finished.emit(summary)

    def _on_audit_finished(self, w: Worker) -> None:
        if self.audit_job is w:
            self.audit_job = None
        self._enable()
        self.reload()  # the coverage after the campaign

    # --- the report -------------------------------------------------------------------

    def _ask_export(self) -> None:
        name, picked = QFileDialog.getSaveFileName(
            self,
            "Export the audit report",
            str(Path.home() / "sealcheck-audit.html"),
            name_filters(),
        )
        if name:
            self.export_to(chosen_path(name, picked))

    def export_to(self, path: Path) -> None:
        """Write the last campaign's report to ``path`` (its suffix is the format)."""
        if self.last_summary is None or self.options is None or self.history is None:
            return
        if report_names.of_path(path) is None:
            self.audit_status.setText(
                f"⚠ Report {path.name}: the name must end in {report_names.SUFFIXES}"
            )
            self.exported.emit(None)
            return
        w = Worker(export_report, self.history.path, self.options, self.last_summary, path)
        w.signals.returned.connect(self._on_exported)
        w.signals.errored.connect(self._on_export_failed)
        w.signals.finished.connect(lambda w=w: self._on_export_finished(w))
        self.exporting = w
        self._enable()
        self.audit_status.setText(f"Writing the report {path}…")
        w.start(self._pool)

    def _on_exported(self, done: Exported) -> None:
        how = (
            f"signed by {done.signed_by}" if done.signed_by else f"NOT signed: {done.unsigned_why}"
        )
        self.audit_status.setText(f"Report written: {done.path} ({how})")
        self.exported.emit(done)

    def _on_export_failed(self, f: Failure) -> None:
        msg = describe(f.exc)
        self.audit_status.setText(f"⚠ The report was not written: {msg.one_line()}. {msg.advice}")
        self.exported.emit(None)

    def _on_export_finished(self, w: Worker) -> None:
        if self.exporting is w:
            self.exporting = None
        self._enable()

    def shutdown(self) -> None:
        for w in (self.audit_job, self._reading, self.exporting):
            if w is not None:
                w.abort()
        self._pool.waitForDone(10000)
