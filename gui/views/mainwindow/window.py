"""The main window: Sources, Backups (with Versions and Details), Keys, and the Jobs panel.

Keyboard: Tab goes Sources → page tabs → filter → Backups → Versions → Details → Jobs
(each job's Details and Cancel). Every action has a shortcut (Ctrl+R verify, Ctrl+T
restore test, F5 refresh, Ctrl+F find, ...; see the menus). Enter on a backup moves to
its versions; Enter on a version verifies it (as Ctrl+R does: a verify writes nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
)
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.custody import KeyStore
from sealcheck.core.records.targets import targets_for
from sealcheck.core.storage.listing import BackupSet
from sealcheck.core.storage.s3.client import make_client

from ...errortext import describe
from ...jobs import queue as jobs_mod
from ...jobs.queue import JobQueue, JobRecord, JobState
from ...jobs.recover import Recovery, RecoveryResult, recovery_candidates
from ...jobs.spec import JobSpec, RestoreTestSpec
from ...look.icons import icon
from ...look.sizes import fit_to_screen, text_lines, text_width
from ...state.keysession import KeySession
from ...state.models import guess_database, looks_physical
from ...state.results import Outcome, ResultStore, duration_text
from ...state.selection import selection_summary
from ...state.settings import KeyChoice, SourceConfig, SourceStore
from ...state.versions import VersionKey, VersionRow
from ..auditview import AuditView, audit_options
from ..browser import BackupBrowser
from ..dialogs import SourceDialog, ask_secret
from ..exportdialog import ExportDialog
from ..historyview import Context as HistoryContext
from ..historyview import HistoryView, Scope
from ..jobpanel import JobPanel, job_summary
from ..jobpanel import bucket as job_bucket
from ..keyspage import KeysPage
from ..notify import Notifier
from ..preflight import key_problem
from ..preflight import warn as preflight_warn
from ..restorewizard import RestoreTestWizard
from ..rotation import RotationWizard, offer_resume
from ..rotation.wizard import Resume
from ..stopjobs import confirm_stop
from .actions import ActionWindow
from .compose import (
    VERBS,
    job_spec,
    job_title,
    newest_of_each,
    oldest_first,
    restore_specs,
    restore_test_specs,
    restored_name,
)

DETAILS_EVERY_MS = 500  # the Details pane's refresh while a batch of jobs runs


def default_client(source: SourceConfig) -> Any:
    return make_client(source.s3())


class MainWindow(ActionWindow):
    closed = Signal()

    def __init__(
        self,
        store: SourceStore | None = None,
        *,
        session_sources: list[SourceConfig] | None = None,
        key_store: KeyStore | None = None,
        client_factory: Any = default_client,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._toolbar_full: int | None = None  # the toolbar's width with every action's words
        self.setWindowTitle("Sealcheck")
        self.setWindowIcon(icon("app"))
        # ~180 characters by ~46 lines of the UI font, never more than the screen shows
        # (a 1920x1080 laptop at 200 % has 960x540 logical pixels).
        self.resize(fit_to_screen(self, QSize(text_width(self, 180), text_lines(self, 46))))
        self.store = store or SourceStore()
        self.saved = self.store.load()
        self.session_sources = list(session_sources or [])
        self.results = ResultStore.persistent(self)
        self.results.targets_of = lambda uri: targets_for(
            uri, [s.targets() for s in self.all_sources()]
        )
        self.queue = JobQueue(self.results, self)
        self.keys = KeySession(self._ask_passphrase, self._ask_pin)
        # The wizard's last choices, for this session only (paths and a DSN, no password).
        self.restore_test_choice = RestoreTestSpec()
        self.restore_wizard: RestoreTestWizard | None = None
        self.rotation_wizard: RotationWizard | None = None
        self._ask_before_close = True  # False when a signal closes the window (app.py)

        self.sources = QListWidget()
        self.sources.setAccessibleName("Sources")
        self.sources.setMinimumWidth(text_width(self.sources, 22))
        self.browser = BackupBrowser(self.results, client_factory)
        self.keys_page = KeysPage(key_store, history=self.results.history)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Pages")
        self._tab_icons: tuple[str, ...] = ("source", "key")
        self.tabs.addTab(self.browser, icon("source"), "&Backups")
        # The Keys page needs more height than a 200 % laptop screen leaves: it scrolls.
        self.keys_scroll = QScrollArea()
        self.keys_scroll.setAccessibleName("Keys page")
        self.keys_scroll.setWidgetResizable(True)
        self.keys_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.keys_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to its controls
        self.keys_scroll.setWidget(self.keys_page)
        self.tabs.addTab(self.keys_scroll, icon("key"), "&Keys")
        # Every recorded result, filtered; evidence export (historyview.py, exportdialog.py).
        self.history_view = HistoryView(self.results.history)
        # No Alt+letter of its own (every letter of "History" is taken): Ctrl+H goes there.
        self.tabs.addTab(self.history_view, icon("history"), "History")
        self.tabs.setTabToolTip(2, "Every recorded result, and evidence export (Ctrl+H)")
        # Coverage per backup set and "Audit now" on the source (auditview.py, issue 14).
        self.audit_view = AuditView(
            self.results.history, lambda: self.keys.secrets(self._source_keys())
        )
        self.tabs.addTab(self.audit_view, icon("history"), "Audit")
        self.tabs.setTabToolTip(3, "Coverage per backup set, and an audit campaign on the source")
        self._tab_icons = ("source", "key", "history", "history")
        self.export_dialog: ExportDialog | None = None
        # "3 selected: 2 OK, 1 FAILED" for a multi-selection (selection.py).
        self.selection_note = QLabel()
        self.selection_note.setAccessibleName("Selection summary")
        # Its text never widens the window (a 200 % laptop screen has 960 logical pixels).
        self.selection_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.selection_note.setMinimumWidth(text_width(self.selection_note, 24))
        self.statusBar().addPermanentWidget(self.selection_note)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        label = QLabel("S&ources")  # Alt+O: Alt+S opens the Source menu
        label.setBuddy(self.sources)
        ll.addWidget(label)
        ll.addWidget(self.sources)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.setSizes([220, 1060])
        self.setCentralWidget(split)

        self.job_panel = JobPanel(self.queue)
        dock = QDockWidget("Jobs", self)
        dock.setObjectName("jobs")
        dock.setAccessibleName("Jobs panel")
        dock.setWidget(self.job_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        # Room for a job or two; less on a short screen, where the backups come first.
        jobs_height = min(text_lines(self, 11), int(self.height() * 0.28))
        self.resizeDocks([dock], [jobs_height], Qt.Orientation.Vertical)
        self.notifier = Notifier(self.statusBar(), icon("app"), self)
        self.recovery: Recovery | None = None  # Recover's run, one at a time
        self._make_actions()
        self._make_history_actions()
        self.setAcceptDrops(True)  # backup files and folders dropped become sources

        self.sources.currentRowChanged.connect(self._on_source_changed)
        self.browser.status.connect(lambda t: self.statusBar().showMessage(t))
        self.keys_page.keys_changed.connect(self._on_keys_changed)
        self.keys_page.key_renamed.connect(self._on_key_renamed)
        self.keys_page.message.connect(lambda t: self.statusBar().showMessage(t, 8000))
        # A history that cannot be read or written: say so once; results stay in memory.
        self.results.warning.connect(self._history_problem)
        if self.results.problem:
            self._history_problem(self.results.problem)
        self.queue.ended.connect(self._on_job_ended)
        self._batch: list[JobRecord] = []  # jobs ended since the queue was last idle
        self.preflight_box: QMessageBox | None = None
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(300)
        self._fit_timer.timeout.connect(self.browser.fit_columns)
        # The Details pane follows each result at once, but while a batch runs (a result
        # every few tens of ms, hundreds of versions selected, each redraw reading the
        # whole selection) at most every DETAILS_EVERY_MS: the event loop stays free.
        self.results.changed.disconnect(self.browser._on_result)
        self._details_timer = QTimer(self)
        self._details_timer.setSingleShot(True)
        self._details_timer.setInterval(DETAILS_EVERY_MS)
        self._details_timer.timeout.connect(self._on_results_settled)
        self.results.changed.connect(self._on_result)
        self.history_view.export_requested.connect(self.export_evidence)
        # The OS switched light/dark (Qt 6.5+); the palette change event covers the rest.
        QGuiApplication.styleHints().colorSchemeChanged.connect(self.retint)
        self._fill_sources()

    # --- sources ------------------------------------------------------------------

    def all_sources(self) -> list[SourceConfig]:
        return self.session_sources + self.saved

    def _fill_sources(self, select: int = 0) -> None:
        self.keys_page.set_sources(self.all_sources())
        self.sources.blockSignals(True)
        self.sources.clear()
        for i, s in enumerate(self.all_sources()):
            item = QListWidgetItem(icon("source"), s.name)
            item.setToolTip(s.uri + (f"\n{s.endpoint_url}" if s.endpoint_url else ""))
            if i < len(self.session_sources):
                item.setToolTip(item.toolTip() + "\n(this session only; not saved)")
            self.sources.addItem(item)
        self.sources.blockSignals(False)
        if self.sources.count():
            self.sources.setCurrentRow(min(select, self.sources.count() - 1))
        else:
            self._on_source_changed(-1)
            aside = self.store.set_aside
            # An unreadable sources file was kept, not lost: say where, so it can be mended.
            first = f"The sources file could not be read; it is kept as {aside}. " if aside else ""
            self.statusBar().showMessage(
                first + "No sources yet: add one with Source → Add source… (Ctrl+N)"
            )

    def current_source(self) -> SourceConfig | None:
        i = self.sources.currentRow()
        srcs = self.all_sources()
        return srcs[i] if 0 <= i < len(srcs) else None

    def _on_source_changed(self, _row: int) -> None:
        src = self.current_source()
        self.keys_page.set_choice(src.keys if src else KeyChoice())
        self.browser.load(src)
        self.audit_view.set_source(audit_options(src))

    def _source_keys(self) -> KeyChoice:
        src = self.current_source()
        return src.keys if src else KeyChoice()

    def _replace_source(self, old: SourceConfig, new: SourceConfig) -> None:
        if old in self.session_sources:
            self.session_sources[self.session_sources.index(old)] = new
        else:
            self.saved[self.saved.index(old)] = new
            self.store.save(self.saved)
        self.keys_page.set_sources(self.all_sources())

    def add_source(self) -> None:
        dlg = SourceDialog(parent=self, key_store=self.keys_page.store)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.saved.append(dlg.value())
            self.store.save(self.saved)
            self._fill_sources(len(self.all_sources()) - 1)
        dlg.deleteLater()

    def edit_source(self) -> None:
        src = self.current_source()
        if src is None:
            return
        row = self.sources.currentRow()
        dlg = SourceDialog(src, self, key_store=self.keys_page.store)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self._replace_source(src, dlg.value())
            self._fill_sources(row)
        dlg.deleteLater()

    def remove_source(self) -> None:
        src = self.current_source()
        if src is None:
            return
        if src in self.session_sources:
            self.session_sources.remove(src)
        else:
            self.saved.remove(src)
            self.store.save(self.saved)
        self._fill_sources()

    def open_backup_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open backup file", str(Path.home()))
        if path:
            self.open_paths([Path(path)])

    def open_paths(self, paths: list[Path]) -> None:
        """Files and folders as sources of this session (opened or dropped): listed as a
        folder is, a file with its wrapped key beside it. One already there is selected."""
        row = None
        for p in paths:
            src = SourceConfig.local(p)
            known = [s.path for s in self.all_sources()]
            if src.path in known:
                row = known.index(src.path)
                continue
            self.session_sources.append(src)
            row = len(self.session_sources) - 1
        if row is not None:
            self._fill_sources(row)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def _on_keys_changed(self, choice: KeyChoice) -> None:
        src = self.current_source()
        if src is not None and src.keys != choice:
            self._replace_source(src, replace(src, keys=choice))
            self.keys.forget()

    def _on_key_renamed(self, old: str, new: str) -> None:
        """Every source that named the key follows its new name."""
        for src in self.all_sources():
            if old in src.keys.key_specs:
                self._replace_source(src, replace(src, keys=src.keys.renamed(old, new)))
        self.keys.forget()
        current = self.current_source()
        self.keys_page.set_choice(current.keys if current else KeyChoice())

    # --- jobs -------------------------------------------------------------------

    def _ask_passphrase(self, prompt: str) -> bytes | None:
        return ask_secret(self, "Key passphrase", prompt)

    def _ask_pin(self, prompt: str) -> bytes | None:
        return ask_secret(self, "Token PIN", prompt + "\nThe PIN is asked once and never stored.")

    def _source(self) -> SourceConfig:
        src = self.current_source()
        assert src is not None  # a version is listed only while its source is shown
        return src

    def _shown_backups(self) -> list[BackupSet | None]:
        """The backup whose versions are shown, then the selected backups."""
        return [self.browser.versions.backup, *self.browser.selected_sets()]

    def submit(self, spec: JobSpec) -> JobRecord | None:
        src = self.current_source()
        try:
            secrets = self.keys.secrets(src.keys if src else KeyChoice())
        except SealcheckError as exc:
            msg = describe(exc)
            self.results.put(
                (spec.object_key, spec.version_id), Outcome(None, msg, jobs_mod.utc_now())
            )
            rec = self.queue.submit_failed(spec, msg)
            self.statusBar().showMessage(msg.one_line(), 10000)
            return rec
        return self.queue.submit(spec, secrets)

    def targets(self) -> list[VersionRow]:
        """The selected versions; with several backups selected, the newest of each."""
        sets = self.browser.selected_sets()
        if len(sets) <= 1:
            vm = self.browser.versions
            return [vm.row_at(r) for r in self._version_rows() if vm.verifiable(r)]
        return newest_of_each(sets)

    def _preflight(self, count: int, what: str) -> bool:
        """Several jobs: check once that the source's keys can be gathered; if not,
        say so once and queue nothing (one job shows the reason in its own row)."""
        src = self.current_source()
        if count < 2 or src is None:
            return True
        problem = key_problem(self.keys, src.keys)
        if problem is None:
            return True
        self.preflight_box = preflight_warn(self, count, what, src.name, problem)
        self.statusBar().showMessage(f"Nothing queued: {problem.one_line()}", 10000)
        return False

    def verify_selected(self) -> list[JobRecord]:
        out: list[JobRecord] = []
        rows = self.targets()
        if not self._preflight(len(rows), "verifications"):
            return out
        out = self.submit_all([job_spec(self._source(), row, "verify") for row in rows])
        if not out:
            self.statusBar().showMessage("Select a version (or a backup) to verify", 6000)
        return out

    def submit_all(self, specs: list[JobSpec]) -> list[JobRecord]:
        """One job as ``submit`` does; a batch through the queue's ``submit_many``,
        whose jobs gather their secrets as they start (cheap to queue, see jobs.py)."""
        if len(specs) == 1:
            rec = self.submit(specs[0])
            return [rec] if rec is not None else []
        src = self.current_source()
        choice = src.keys if src else KeyChoice()
        return self.queue.submit_many(specs, lambda _spec: self.keys.secrets(choice))

    def restore_selected(self, dest: Path) -> JobRecord | None:
        rows = self.browser.selected_versions()
        if not rows:
            self.statusBar().showMessage("Select one version to restore", 6000)
            return None
        return self.submit(job_spec(self._source(), rows[0], "restore", dest))

    def restore_selected_to_folder(self, folder: Path) -> list[JobRecord]:
        """One restore per selected version (or the newest of each selected backup), each
        to its own file named after the object and the version; an existing file is never
        overwritten (that job fails and says so)."""
        out: list[JobRecord] = []
        rows = self.targets()
        if not self._preflight(len(rows), "restores"):
            return out
        out = self.submit_all(restore_specs(self._source(), rows, folder) if rows else [])
        if not out:
            self.statusBar().showMessage("Select the versions to restore", 6000)
        return out

    def restore_selected_dialog(self) -> None:
        rows = self.targets()
        if not rows:
            self.statusBar().showMessage("Select one version to restore", 6000)
            return
        if len(rows) > 1:
            folder = QFileDialog.getExistingDirectory(
                self, f"Restore {len(rows)} versions to folder", str(Path.home())
            )
            if folder:
                self.restore_selected_to_folder(Path(folder))
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Restore to file", str(Path.home() / restored_name(rows[0].data.key))
        )
        if path:
            self.restore_selected(Path(path))

    def restore_test_dialog(self) -> RestoreTestWizard | None:
        """Open the wizard on the selected versions; Start queues one job per version."""
        rows = self.targets()
        if not rows:
            self.statusBar().showMessage("Select one or more versions to restore-test", 6000)
            return None
        rows = oldest_first(rows, self._shown_backups())  # the order they will run in
        titles = [job_title(VERBS["restore-test"], r.data) for r in rows]
        guesses = [
            guess_database(r.data.key, self.results.get((r.data.key, r.data.version_id)))
            for r in rows
        ]
        hints = [g for g in guesses if g != "–"]  # "–": nothing to go by
        physical = sum(
            looks_physical(r.data.key, self.results.get((r.data.key, r.data.version_id)))
            for r in rows
        )
        wiz = RestoreTestWizard(titles, hints, self.restore_test_choice, self, physical)
        self.restore_wizard = wiz

        def finished(result: int) -> None:
            if result == QDialog.DialogCode.Accepted:
                self.restore_test_choice = wiz.value()
                self.restore_test_selected(self.restore_test_choice, rows)
            self.restore_wizard = None
            wiz.deleteLater()

        wiz.finished.connect(finished)
        wiz.open()
        return wiz

    def restore_test_selected(
        self, options: RestoreTestSpec, rows: list[VersionRow] | None = None
    ) -> list[JobRecord]:
        out: list[JobRecord] = []
        chosen = rows if rows is not None else self.targets()
        if not self._preflight(len(chosen), "restore tests"):
            return out
        if not chosen:
            return out
        return self.submit_all(
            restore_test_specs(self._source(), chosen, options, self._shown_backups())
        )

    def rotate_keys_dialog(self, resume: Resume | None = None) -> RotationWizard:
        """Keys → Rotate key pair…: the wizard on the saved S3 sources (issue 13)."""
        if self.rotation_wizard is not None:
            self.rotation_wizard.raise_()
            return self.rotation_wizard
        wiz = RotationWizard(
            self.all_sources(),
            self.keys,
            ask_passphrase=self._ask_passphrase,
            ask_pin=self._ask_pin,
            resume=resume,
            history=self.results.history,
            parent=self,
        )
        self.rotation_wizard = wiz

        def finished(_result: int) -> None:
            self.rotation_wizard = None
            wiz.deleteLater()
            self.history_view.reload_soon()  # a run's report is a history record

        wiz.finished.connect(finished)
        wiz.open()
        return wiz

    def offer_rotation_resume(self) -> QMessageBox | None:
        """At start: an interrupted rotation (core's journal says so) is offered to resume."""
        return offer_resume(self, lambda r: self.rotate_keys_dialog(r))

    def recover_dialog(self) -> None:
        rows = recovery_candidates(self.browser.versions.backup)
        if not rows:
            self.statusBar().showMessage("Select a backup to recover", 6000)
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Recover to file", str(Path.home() / restored_name(rows[0].data.key))
        )
        if path:
            self.recover_to(Path(path))

    def recover_to(self, dest: Path) -> Recovery | None:
        """Restore the newest version of the shown backup that verifies into ``dest``
        (gui/jobs/recover.py: newest first, the next only after a FAILED verdict)."""
        rows = recovery_candidates(self.browser.versions.backup)
        if not rows or (self.recovery is not None and not self.recovery.done):
            return None
        rec = Recovery(
            self.queue,
            rows,
            dest,
            lambda r: job_spec(self._source(), r, "restore", dest),
            self.submit,
            self,
        )
        rec.step.connect(lambda text: self.statusBar().showMessage(text))
        rec.finished.connect(self._recovered)
        self.recovery = rec
        self._update_actions()
        rec.start()
        return rec

    def _recovered(self, result: RecoveryResult) -> None:
        text = result.text()
        self.statusBar().showMessage(text, 30000)
        self.notifier.notify("Sealcheck recover", text, failed=result.restored is None)
        self._update_actions()

    def _history_problem(self, text: str) -> None:
        self.statusBar().showMessage(
            f"Verification history unavailable: {text} Results are kept for this session only.",
            20000,
        )

    def _version_rows(self) -> list[int]:
        """The selected rows of the versions table, from the selection's ranges: with
        700 rows selected, ``selectedRows()`` calls into the model ~100,000 times (20 ms
        and more), the ranges are a handful."""
        rows: set[int] = set()
        sel = self.browser.versions_view.selectionModel().selection()
        for i in range(sel.count()):
            rng = sel.at(i)
            rows.update(range(rng.top(), rng.bottom() + 1))
        return sorted(rows)

    def _on_result(self, _key: VersionKey) -> None:
        if self.queue.pending():
            if not self._details_timer.isActive():
                self._details_timer.start()
            return
        self._details_timer.stop()
        self._on_results_settled()

    def _on_results_settled(self) -> None:
        """What the browser's own handler shows (the first selected version), cheaply."""
        rows = self._version_rows()
        vm = self.browser.versions
        if rows:
            self.browser.details.show_version(vm.row_at(rows[0]), vm.state(rows[0]))
        else:
            self.browser.details.show_version(None, None)
        self._update_selection_info(self.targets())
        self.history_view.reload_soon()

    # --- history and evidence ---------------------------------------------------------

    def _update_selection_info(self, targets: list[VersionRow]) -> None:
        """The selection summary and the History page's scopes follow the selection."""
        several_sets = len(self.browser.selected_sets()) > 1
        keys = [(r.data.key, r.data.version_id) for r in targets]
        note = ""
        if len(keys) > 1:
            note = selection_summary(self.results, keys, "backups" if several_sets else "")
        self.selection_note.setText(note)
        self.selection_note.setVisible(bool(note))
        src = self.current_source()
        backup = self.browser.versions.backup
        self.history_view.set_context(
            HistoryContext(
                source_uri=src.uri if src is not None else None,
                source_name=src.name if src is not None else "",
                backup=backup.name if backup is not None else None,
                backup_keys=frozenset(p.data.key for p in backup.pairs) if backup else frozenset(),
                versions=frozenset(keys),
            )
        )

    def show_history(self) -> None:
        """The History page on the selected versions (or the source, with none)."""
        self.history_view.set_scope(Scope.VERSIONS if self.targets() else Scope.SOURCE)
        self.tabs.setCurrentWidget(self.history_view)

    def export_evidence(self) -> ExportDialog | None:
        """The export dialog on the History page's selection and latest verdicts; from
        the Backups page, for the selected versions (read first, off the GUI thread)."""
        hv = self.history_view
        if self.tabs.currentWidget() is not hv:
            self.show_history()
        if hv.loading or hv._reload_timer.isActive() or hv._stale:
            hv.loaded.connect(self._export_when_loaded)
            if not hv.loading:
                hv.reload()
            return None
        return self._open_export(prefer_latest=not hv.selected_entries())

    def _export_when_loaded(self, _n: int) -> None:
        self.history_view.loaded.disconnect(self._export_when_loaded)
        self._open_export(prefer_latest=True)

    def _open_export(self, *, prefer_latest: bool) -> ExportDialog:
        hv = self.history_view
        where = {
            Scope.VERSIONS: "selected",
            Scope.BACKUP: "of this backup",
            Scope.SOURCE: "of this source",
            Scope.ALL: "in the history",
        }[hv.query().scope]
        picked = hv.selected_entries()
        path = hv.history.path if hv.history is not None else None
        dlg = ExportDialog(path, picked, hv.latest, where, self, prefer_latest=prefer_latest)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialog = dlg
        dlg.finished.connect(lambda _r: setattr(self, "export_dialog", None))
        dlg.open()
        return dlg

    def _on_job_ended(self, rec: JobRecord) -> None:
        if rec.state is JobState.CANCELLED and rec.started is None:
            return  # a queued job cancelled ran nothing: nothing to tell, nothing to fit
        # Sizing the columns measures every row: once after a burst of jobs, not per job.
        self._fit_timer.start()
        self._batch.append(rec)
        msg = rec.message
        if rec.state is JobState.DONE:
            text = f"{rec.spec.title}: OK ({duration_text(rec.elapsed)})"
        elif rec.state is JobState.CANCELLED:
            text = f"{rec.spec.title}: cancelled"
        else:
            text = f"{rec.spec.title}: {msg.one_line() if msg else 'failed'}"
        failed = rec.state is JobState.FAILED
        if self.queue.busy:  # more to come: one notification when the queue is done
            if rec.elapsed >= jobs_mod.LONG_JOB_S:
                self.notifier.notify("Sealcheck job finished", text, failed=failed)
            else:
                self.statusBar().showMessage(text, 10000)
            return
        batch, self._batch = self._batch, []
        if len(batch) > 1:
            text = f"{len(batch)} jobs finished: {job_summary(Counter(map(job_bucket, batch)))}"
            failed = any(r.state is JobState.FAILED for r in batch)
        took = sum(r.elapsed for r in batch) if batch else rec.elapsed
        if took >= jobs_mod.LONG_JOB_S or not self.isActiveWindow():
            title = "Sealcheck jobs finished" if len(batch) > 1 else "Sealcheck job finished"
            self.notifier.notify(title, text, failed=failed)
        else:
            self.statusBar().showMessage(text, 10000)

    # --- closing ------------------------------------------------------------------

    def cancel_jobs(self) -> bool:
        """Cancel every job; a running restore or restore test is stopped only if the
        user agrees (its work would be lost)."""
        if not confirm_stop(self, self.queue, quitting=False):
            return False
        self.queue.cancel_all()
        return True

    def close_without_asking(self) -> bool:
        """Close as the close button does, without the question (SIGTERM, a logout)."""
        self._ask_before_close = False
        return self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._ask_before_close and not confirm_stop(self, self.queue, quitting=True):
            event.ignore()
            return
        self._fit_timer.stop()
        self._details_timer.stop()
        self.history_view.shutdown()
        self.audit_view.shutdown()
        if self.rotation_wizard is not None:
            self.rotation_wizard.done(0)  # a run pauses between versions (resumable)
        self.statusBar().showMessage("Stopping jobs…")
        self.queue.shutdown(5.0)
        self.browser.shutdown()
        self.keys_page.shutdown()
        self.notifier.close()
        super().closeEvent(event)
        self.closed.emit()
