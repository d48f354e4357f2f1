"""The key-rotation wizard: scope → old keys found → new key and proof of possession →
plan (filterable) → run (progress, ETA, Pause = cancel, resumable) → result and report.

Every long step (finding token keys, the proof, the plan, the run) runs on the one
worker type while Next/Finish stay disabled (each page's ``isComplete`` asks ``busy``).
Keys are opened on the GUI thread, where a passphrase or PIN is asked once; the worker
gets core KeySources only. On start the app offers to resume an interrupted rotation
(``offer_resume``): core's journal says which are pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QThreadPool
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.base import KeySource, close_key
from sealcheck.core.keys.prompt import SecretPrompt, secret_once
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.records.history import History
from sealcheck.core.rotation.journal import Start, pending
from sealcheck.core.rotation.newkey import NewKey, open_new_key
from sealcheck.core.rotation.scope import Scope
from sealcheck.core.storage.s3.client import parse_uri

from ...jobs.worker import Worker, WorkerContext
from ...look.sizes import fit_to_screen, text_lines, text_width
from ...state.keysession import KeySession
from ...state.settings import KeyChoice, SourceConfig
from .pages import NewKeyPage, OldKeysPage, PlanPage, ScopePage
from .runpages import ResultPage, RunHost, RunPage
from .widgets import failure_text
from .work import find_held, plan_job, run_job, settings_for


class Page(IntEnum):
    SCOPE = 0
    OLD_KEYS = 1
    NEW_KEY = 2
    PLAN = 3
    RUN = 4
    RESULT = 5


@dataclass(frozen=True)
class Resume:
    """An interrupted rotation the app can resume (from its journal's meta)."""

    journal: Path
    source: SourceConfig  # bucket, prefix and S3 settings of the run
    scope: Scope
    to: str
    public_only: bool
    new_label: str = ""
    rules: tuple[str, ...] = field(default=())
    recorded: Start | None = None  # its start: the old OpenPGP key it was given, too

    @classmethod
    def of(cls, path: Path, meta: dict[str, str]) -> Resume | None:
        """From a journal's recorded start, the app's or the CLI's (journal.Start)."""
        start = Start.read(meta)
        if start is None:
            return None  # an older CLI run: resumed with 'sealcheck rotate run … --resume'
        uri = parse_uri(start.source)
        src = SourceConfig(
            name=f"{start.source} (interrupted rotation)",
            bucket=uri.bucket,
            prefix=uri.key,
            endpoint_url=start.endpoint or None,
            region=start.region or None,
            profile=start.profile or None,
            rules=start.rules,
            # The old keys the run was given (--from, --gpg-key), so the wizard opens them too.
            keys=KeyChoice(
                key_specs=start.old,
                pkcs11_module=start.pkcs11_module or None,
                gpg_key_file=start.gpg_key or None,
            ),
        )
        return cls(
            path,
            src,
            Scope(start.scope),
            start.to,
            start.public_only,
            start.new_label,
            start.rules,
            start,
        )


def _first(
    sources: list[SourceConfig], run: SourceConfig, gpg_homedir: str = ""
) -> list[SourceConfig]:
    """The saved source the interrupted run was on first (with its keys), else the run's
    own location; the run's own first when it names its old keys (--from, --gpg-key,
    --gpg-homedir: a saved source's OpenPGP key file would stand in for the folder)."""
    same = [s for s in sources if (s.bucket, s.endpoint_url) == (run.bucket, run.endpoint_url)]
    rest = [s for s in sources if s not in same]
    if run.keys.key_specs or run.keys.gpg_key_file or gpg_homedir:
        return [run, *same, *rest]
    return [*(same[:1] or [run]), *rest]


def pending_resumes(folder: Path | None = None) -> list[Resume]:
    return [r for p, m in pending(folder) if (r := Resume.of(p, m)) is not None]


class RotationWizard(QWizard):
    def __init__(
        self,
        sources: list[SourceConfig],
        keys: KeySession,
        *,
        ask_passphrase: SecretPrompt | None = None,
        ask_pin: SecretPrompt | None = None,
        resume: Resume | None = None,
        journal_dir: Path | None = None,
        history: History | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Rotate key pair")
        self.setAccessibleName("Key rotation wizard")
        self.setMinimumSize(fit_to_screen(self, QSize(text_width(self, 100), text_lines(self, 30))))
        # Opened roomier than its least: the Old keys page's OpenPGP key and a refusal
        # in words (gpgkey.py) would be clipped at that size.
        self.resize(fit_to_screen(self, QSize(text_width(self, 130), text_lines(self, 42))))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "&Start rotation")
        self.keys = keys
        self._ask_passphrase = ask_passphrase
        self._pin = secret_once("PIN of the token", ask_pin)  # one PIN per run, never retried
        self.journal_dir = journal_dir
        self.history = history  # where a run's report is recorded (None: nowhere)
        self.resume = resume
        banner = None
        if resume is not None:
            homedir = resume.recorded.gpg_homedir if resume.recorded else ""
            sources = _first(sources, resume.source, homedir)
            banner = (
                f"Resuming the interrupted rotation of {resume.source.uri} to {resume.to}: "
                "check the keys and the plan again; the run carries on from its journal."
            )
        self.scope_page = ScopePage(sources, banner)
        if resume is not None:
            (
                self.scope_page.all if resume.scope is Scope.ALL else self.scope_page.current
            ).setChecked(True)
            self.scope_page.prefix.setText(resume.source.prefix)  # the run's, not the source's
        self.old_page = OldKeysPage(
            ask_passphrase,
            resume.recorded if resume else None,
            resume.journal if resume else None,
        )
        self.new_page = NewKeyPage(
            resume.to if resume else "", resume.public_only if resume else False
        )
        self.plan_page = PlanPage()
        self.run_page = RunPage()
        self.result_page = ResultPage()
        for pid, page in (
            (Page.SCOPE, self.scope_page),
            (Page.OLD_KEYS, self.old_page),
            (Page.NEW_KEY, self.new_page),
            (Page.PLAN, self.plan_page),
            (Page.RUN, self.run_page),
            (Page.RESULT, self.result_page),
        ):
            self.setPage(pid, page)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: Worker | None = None
        self._workers: list[Worker] = []
        self.workers = 8  # versions in flight during the run (core's default)
        self.currentIdChanged.connect(lambda _id: self._update_buttons())

    # --- the one worker ---------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        returned: Callable[[Any], None],
        errored: Callable[[Any], None],
        aborted: Callable[[], None] | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> Worker:
        assert self._worker is None, "one long step at a time"
        w = Worker(fn, *args)
        # The step has ended once it returned, failed or stopped: the wizard is free at
        # once, so a page's slot (Resume, Next) may start the next step from there.
        w.signals.returned.connect(lambda value: self._ended(returned, value))
        w.signals.errored.connect(lambda failure: self._ended(errored, failure))
        w.signals.aborted.connect(lambda: self._ended(aborted))
        if progress is not None:
            w.signals.progress.connect(progress)
        self._worker = w
        self._workers.append(w)  # kept while the pool may still run it (autoDelete off)
        self._update_buttons()
        w.start(self._pool)
        return w

    def _ended(self, slot: Callable[..., None] | None, *value: Any) -> None:
        self._worker = None
        if slot is not None:
            slot(*value)
        page = self.currentPage()
        if page is not None:
            page.completeChanged.emit()
        self._update_buttons()

    def _update_buttons(self) -> None:
        # Back waits too (a page's step reports to that page), and once the run has
        # started there is no going back: what it wrote stays written.
        back = not self.busy and self.currentId() < Page.RUN
        self.button(QWizard.WizardButton.BackButton).setEnabled(back)

    def abort(self) -> None:
        if self._worker is not None:
            self._worker.abort()

    # --- what the pages ask for --------------------------------------------------------

    def open_source_keys(self, src: SourceConfig) -> tuple[list[KeySource], list[str]]:
        """The source's own keys, opened here (a passphrase or PIN asked once per session)."""
        keys: list[KeySource] = []
        problems = []
        for spec in src.keys.key_specs:
            choice = KeyChoice(key_specs=(spec,), pkcs11_module=src.keys.pkcs11_module)
            try:
                keys += self.keys.secrets(choice).keys
            except SealcheckError as exc:
                problems.append(f"{spec}: {failure_text(exc)}")
        return keys, problems

    def open_new(self, spec: str, public_only: bool) -> NewKey:
        src = self.scope_page.chosen()
        ctx = KeyContext(
            pem_passphrase=secret_once(f"Passphrase for the new key {spec}", self._ask_passphrase),
            pin=self._pin,
            pkcs11_module=src.keys.pkcs11_module if src else None,
        )
        return open_new_key(spec, ctx, public_only=public_only)

    def _token_pin(self) -> None:
        """A token key logs in on the worker: its PIN is asked here, once, beforehand."""
        if any(getattr(k, "hardware", False) for k in self.old_page.chosen()):
            self._pin()

    def held_fn(self) -> Callable[[WorkerContext], list[KeySource]]:
        src = self.scope_page.chosen()
        module = src.keys.pkcs11_module if src else None
        pin = self._pin
        return lambda ctx: find_held(ctx, module, pin)

    def _settings(self) -> Any:
        new = self.new_page.new
        assert new is not None
        self._token_pin()
        settings = settings_for(self.scope_page.where(), new, self.old_page.chosen())
        settings.workers = self.workers
        settings.gpg = self.old_page.gpg.options()
        return settings

    def plan_fn(self) -> Callable[[WorkerContext], Any]:
        settings, s3 = self._settings(), self.scope_page.where().s3
        return lambda ctx: plan_job(ctx, settings, s3)

    def run_fn(self) -> Callable[[WorkerContext], Any]:
        settings, s3, folder = self._settings(), self.scope_page.where().s3, self.journal_dir
        src = self.scope_page.chosen()
        start = settings.start(
            s3,
            to=self.new_page.spec.text().strip(),
            pkcs11_module=src.keys.pkcs11_module if src else None,
        )
        history = self.history
        return lambda ctx: run_job(ctx, settings, s3, start, folder, history)

    # --- closing --------------------------------------------------------------------

    def reject(self) -> None:
        """Cancel while the run goes = Pause: the wizard stays, to resume or close."""
        if self.busy and self.currentId() == Page.RUN:
            self.run_page.request_pause()
            return
        super().reject()

    def done(self, result: int) -> None:
        for w in self._workers:
            w.abort()
            w.wait(30)
        self._pool.waitForDone(30_000)
        # The new key was opened by this wizard (open_new): a token key logs out now
        # that nothing runs with it any more.
        new = self.new_page.new
        if new is not None:
            close_key(new.private)
        super().done(result)


def offer_resume(
    parent: QWidget, open_wizard: Callable[[Resume], object], folder: Path | None = None
) -> QMessageBox | None:
    """Ask (without blocking) whether to resume the first interrupted rotation."""
    found = pending_resumes(folder)
    if not found:
        return None
    r = found[0]
    box = QMessageBox(parent)
    box.setObjectName("rotation-resume")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Resume the key rotation?")
    box.setText(f"A key rotation of {r.source.uri} to {r.new_label or r.to} was interrupted.")
    box.setInformativeText(
        "Nothing is half-written: resuming carries on from its journal. Resume it now?"
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.accepted.connect(lambda: open_wizard(r))
    box.open()
    return box


def _is_host(w: RotationWizard) -> RunHost:
    """Never called: mypy checks here that the wizard is what its pages ask of it."""
    return w
