"""The wizard's first four pages: scope, the old keys found, the new key and its proof
of possession, and the plan (a dry run, filterable). Each long step runs on the
wizard's worker (wizard.py) while Next stays disabled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWizardPage,
)

from sealcheck.core.decrypt.held import secret_primary_keys
from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.base import KeySource
from sealcheck.core.keys.prompt import SecretPrompt
from sealcheck.core.rotation.engine import Outcome
from sealcheck.core.rotation.journal import Start
from sealcheck.core.rotation.newkey import NewKey
from sealcheck.core.rotation.scope import Scope

from ...jobs.worker import Failure, WorkerContext
from ...state.settings import SourceConfig
from .gpgkey import GpgKeyBox
from .plan import PlanFilter, PlanModel, Show, show_of
from .widgets import failure_text, label
from .work import HeldKey, Where, prove, where_of


class Host(Protocol):
    """What a page asks of its wizard (wizard.RotationWizard), named here so that the
    pages need not import the module that builds them from them."""

    scope_page: ScopePage

    @property
    def busy(self) -> bool: ...

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        returned: Callable[[Any], None],
        errored: Callable[[Any], None],
        aborted: Callable[[], None] | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> Any: ...

    def abort(self) -> None: ...

    def open_source_keys(self, src: SourceConfig) -> tuple[list[KeySource], list[str]]: ...

    def open_new(self, spec: str, public_only: bool) -> NewKey: ...

    def held_fn(self) -> Callable[[WorkerContext], list[KeySource]]: ...

    def plan_fn(self) -> Callable[[WorkerContext], Any]: ...

    def run_fn(self) -> Callable[[WorkerContext], Any]: ...


class WizardPage(QWizardPage):
    def wiz(self) -> Host:
        w = self.wizard()
        assert w is not None
        return cast(Host, w)


class ScopePage(WizardPage):
    def __init__(self, sources: list[SourceConfig], resuming: str | None) -> None:
        super().__init__()
        self.setTitle("Which backups are re-wrapped?")
        self.setSubTitle(
            "Each backup's data key is unwrapped with an old key and wrapped again for a new "
            "key pair; the data is not re-encrypted and nothing in the bucket is replaced."
        )
        self.sources = [s for s in sources if not s.is_local]
        self.source = QComboBox()
        self.source.setAccessibleName("Source")
        for s in self.sources:
            self.source.addItem(f"{s.name} ({s.uri})")
        self.prefix = QLineEdit()
        self.prefix.setAccessibleName("Prefix")
        self.prefix.setPlaceholderText("every object of the bucket")
        self.current = QRadioButton("&Current versions: the newest of each backup")
        self.current.setAccessibleName("Current versions only")
        self.all = QRadioButton("&All versions: every version still in the bucket")
        self.all.setAccessibleName("All versions")
        self.current.setChecked(True)
        form = QFormLayout()
        form.addRow("&Source:", self.source)
        form.addRow("&Prefix:", self.prefix)
        lay = QVBoxLayout(self)
        self.banner = label(resuming or "", "Resuming")
        self.banner.setVisible(bool(resuming))
        lay.addWidget(self.banner)
        lay.addLayout(form)
        lay.addWidget(self.current)
        lay.addWidget(self.all)
        lay.addWidget(
            label(
                "Older versions keep their producer's key too: choose All versions so a "
                "restore of last month's backup also opens with the new key alone.",
                "About versions",
            )
        )
        lay.addStretch()
        self.source.currentIndexChanged.connect(self._source_changed)
        self._source_changed(0)

    def _source_changed(self, _i: int) -> None:
        src = self.chosen()
        self.prefix.setText(src.prefix if src else "")
        self.completeChanged.emit()

    def chosen(self) -> SourceConfig | None:
        i = self.source.currentIndex()
        return self.sources[i] if 0 <= i < len(self.sources) else None

    def where(self) -> Where:
        src = self.chosen()
        assert src is not None
        return Where(
            bucket=src.bucket,
            prefix=self.prefix.text().strip(),
            s3=src.s3(),
            rules=src.parsed_rules(),
            scope=Scope.ALL if self.all.isChecked() else Scope.CURRENT,
        )

    def isComplete(self) -> bool:
        return self.chosen() is not None


class OldKeysPage(WizardPage):
    """The keys held: the source's own (PEM files, keyring names, token URIs), every key
    in custody and, with a PKCS#11 module, the token's keys. All are tried unless unticked.
    Below them the OpenPGP key for gpg backups (gpgkey.py): resuming, the journal's."""

    def __init__(
        self,
        ask_passphrase: SecretPrompt | None = None,
        recorded: Start | None = None,
        journal: Path | None = None,
    ) -> None:
        super().__init__()
        self.setTitle("Old keys found")
        self.setSubTitle(
            "The rotation opens each backup with whichever of these keys fits; untick a key "
            "to leave it out."
        )
        self.list = QListWidget()
        self.list.setAccessibleName("Old keys")
        self.status = label("", "Search status")
        self.gpg = GpgKeyBox(ask_passphrase, recorded, journal)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.gpg)
        self.found: list[HeldKey] = []
        self.searching = False
        self.list.itemChanged.connect(lambda _i: self.completeChanged.emit())
        self.gpg.changed.connect(self.completeChanged.emit)
        self.gpg.home.editingFinished.connect(self._list_home)

    @property
    def gpg_file(self) -> str | None:
        """The source's OpenPGP secret key file (gpg backups)."""
        return self.gpg.key_file

    def initializePage(self) -> None:
        wiz = self.wiz()
        src = wiz.scope_page.chosen()
        self.found = []
        problems: list[str] = []
        self.list.clear()
        self.gpg.set_key_file(src.keys.gpg_key_file if src is not None else None)
        if src is not None:
            opened, problems = wiz.open_source_keys(src)
            self._add([HeldKey(k, f"{where_of(k)} (this source's key)") for k in opened])
        if self.gpg_file:
            problems.append(
                f"OpenPGP secret key {self.gpg_file} (this source's): opens gpg backups"
            )
        self.status.setText("\n".join(problems) + ("\n" if problems else "") + "Looking…")
        self.searching = True
        held, home = wiz.held_fn(), self._home()
        wiz.start(
            lambda ctx: (held(ctx), secret_primary_keys(home) if home else []),
            returned=self._held,
            errored=self._failed,
        )

    def _home(self) -> Path | None:
        home = self.gpg.home.text().strip()
        return Path(home) if home else None

    def _list_home(self) -> None:
        """The secret keys of the folder typed or chosen (on the worker: gpg runs)."""
        home, wiz = self._home(), self.wiz()
        if home is None or wiz.busy:
            self.gpg.set_home_keys([])
            return
        wiz.start(
            lambda _ctx: secret_primary_keys(home),
            returned=self.gpg.set_home_keys,
            errored=lambda _f: self.gpg.set_home_keys([]),
        )

    def _held(self, found: tuple[list[KeySource], list[str]]) -> None:
        keys, home_keys = found
        self._add([HeldKey(k, where_of(k)) for k in keys])
        self.gpg.set_home_keys(home_keys)
        self._done("")

    def _failed(self, failure: Failure) -> None:
        self._done(failure_text(failure))

    def _done(self, problem: str) -> None:
        self.searching = False
        text = self.status.text().removesuffix("Looking…")
        n = len(self.found)
        text += problem or f"{n} key{'s' if n != 1 else ''} found."
        self.status.setText(text.strip())
        self.completeChanged.emit()

    def _add(self, keys: list[HeldKey]) -> None:
        known = {h.key.fingerprint for h in self.found}
        for h in keys:
            if h.key.fingerprint in known:
                continue
            known.add(h.key.fingerprint)
            self.found.append(h)
            item = QListWidgetItem(
                f"{h.key.label}  —  RSA-{h.bits}, {h.where}\n    SPKI SHA-256 {h.key.fingerprint}"
            )
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)

    def chosen(self) -> list[KeySource]:
        return [
            h.key
            for i, h in enumerate(self.found)
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def isComplete(self) -> bool:
        if self.searching or self.gpg.refused:
            return False
        return bool(self.chosen()) or self.gpg.options() is not None


class NewKeyPage(WizardPage):
    def __init__(self, spec: str = "", public_only: bool = False) -> None:
        super().__init__()
        self.setTitle("New key and proof of possession")
        self.setSubTitle(
            "Before anything is written, the new key proves someone holds it: a random "
            "challenge encrypted to its public key must decrypt with its private half."
        )
        self.spec = QLineEdit(spec)
        self.spec.setAccessibleName("New key")
        self.spec.setPlaceholderText("new.pem, keyring:NAME or a pkcs11: URI")
        browse = QPushButton("B&rowse…")
        browse.clicked.connect(self._browse)
        self.public_only = QCheckBox(
            "&Public key only: the private half is kept offline (possession is not proved)"
        )
        self.public_only.setChecked(public_only)
        self.public_warning = label(
            "⚠ With a public key only, nobody here proves holding the new private key. If it "
            "is lost, every re-wrapped key is useless (the old keys still open the backups). "
            "The report records this choice.",
            "Public-only warning",
        )
        self.check = QPushButton("&Check the new key")
        self.check.setAccessibleName("Check the new key")
        self.result = label("", "Proof of possession")
        row = QHBoxLayout()
        row.addWidget(self.spec, 1)
        row.addWidget(browse)
        lay = QVBoxLayout(self)
        name = QLabel("New &key:")
        name.setBuddy(self.spec)
        lay.addWidget(name)
        lay.addLayout(row)
        lay.addWidget(self.public_only)
        lay.addWidget(self.public_warning)
        lay.addWidget(self.check)
        lay.addWidget(self.result)
        lay.addStretch()
        self.new: NewKey | None = None
        self.proof = ""
        self.checking = False
        self.spec.textChanged.connect(self._reset)
        self.public_only.toggled.connect(self._reset)
        self.check.clicked.connect(self.start_check)
        self._reset()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "New key (PEM)", self.spec.text())
        if path:
            self.spec.setText(path)

    def _reset(self, *_a: object) -> None:
        self.new, self.proof = None, ""
        self.public_warning.setVisible(self.public_only.isChecked())
        self.result.setText("")
        self.completeChanged.emit()

    def start_check(self) -> None:
        self._reset()
        wiz = self.wiz()
        try:
            new = wiz.open_new(self.spec.text().strip(), self.public_only.isChecked())
        except SealcheckError as exc:
            self.result.setText(failure_text(exc))
            return
        self.checking = True
        self.check.setEnabled(False)
        self.result.setText("Proving possession…")
        wiz.start(prove, new, returned=lambda text: self._proved(new, text), errored=self._failed)

    def _proved(self, new: NewKey, text: str) -> None:
        self.new, self.proof, self.checking = new, text, False
        self.check.setEnabled(True)
        self.result.setText(f"{text}\n{new.label}: RSA-{new.bits}, SPKI SHA-256 {new.fingerprint}")
        self.completeChanged.emit()

    def _failed(self, failure: Failure) -> None:
        self.checking = False
        self.check.setEnabled(True)
        self.result.setText(failure_text(failure))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.new is not None and not self.checking


class PlanPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Plan: what will happen to each version")
        self.setSubTitle("A dry run: every version in scope is checked, nothing is written.")
        self.setCommitPage(True)  # after this the run has written: no going back
        self.model = PlanModel(self)
        self.proxy = PlanFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setAccessibleName("Plan")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.outcome_filter = QComboBox()
        self.outcome_filter.setAccessibleName("Show")
        for s in Show:
            self.outcome_filter.addItem(s.value, s)
        self.text = QLineEdit()
        self.text.setAccessibleName("Filter")
        self.text.setPlaceholderText("Filter by name, version, key or reason")
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Planning progress")
        self.summary = label("", "Plan summary")
        top = QHBoxLayout()
        top.addWidget(self.outcome_filter)
        top.addWidget(self.text, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.bar)
        lay.addWidget(self.summary)
        self.outcome_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_show(self.outcome_filter.currentData())
        )
        self.text.textChanged.connect(self.proxy.setFilterFixedString)
        self.outcome: Outcome | None = None

    def initializePage(self) -> None:
        wiz = self.wiz()
        self.outcome = None
        self.model.set_items([])
        self.bar.setRange(0, 0)
        self.bar.show()
        self.summary.setText("Listing the versions and opening each with an old key…")
        wiz.start(
            wiz.plan_fn(),
            returned=self._planned,
            errored=self._failed,
            progress=self._progress,
        )

    def _progress(self, value: object) -> None:
        if isinstance(value, tuple) and value[0] == "plan":
            _, n, total = value
            self.bar.setRange(0, total)
            self.bar.setValue(n)
            self.summary.setText(f"Checked {n} of {total} versions…")

    def _planned(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.model.set_items(outcome.items)
        self.table.resizeColumnsToContents()
        self.bar.hide()
        counts: dict[Show, int] = dict.fromkeys(Show, 0)
        for i in outcome.items:
            counts[show_of(i)] += 1
        self.summary.setText(
            f"{len(outcome.items)} version(s): {counts[Show.ROTATE]} to be re-wrapped, "
            f"{counts[Show.ALREADY]} already rotated, {counts[Show.CANNOT]} cannot be rotated "
            "(they keep their original key; the table says why)."
        )
        self.completeChanged.emit()

    def _failed(self, failure: Failure) -> None:
        self.bar.hide()
        self.summary.setText(failure_text(failure) + "\nGo Back and try again.")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.outcome is not None and not self.wiz().busy
