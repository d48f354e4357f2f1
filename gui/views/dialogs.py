"""Small dialogs: add/edit a source (an S3 location or a local folder, with Test
connection), a PIN or passphrase prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.errors import UsageError
from sealcheck.core.keys.custody import KeyStore
from sealcheck.core.storage.listing import Probe, probe_bucket, probe_folder
from sealcheck.core.storage.naming import Rule
from sealcheck.core.storage.s3.client import make_client

from ..errortext import listing_problem
from ..jobs.worker import Failure, Worker, WorkerContext
from ..state.settings import KeyChoice, SourceConfig
from .sourcekeys import SourceKeysEditor

# A connection test waits less than a listing does: the user is watching the dialog.
TEST_CONNECT_TIMEOUT = 5.0
TEST_READ_TIMEOUT = 20.0


def _probe_client(source: SourceConfig) -> Any:
    return make_client(
        replace(source.s3(), connect_timeout=TEST_CONNECT_TIMEOUT, read_timeout=TEST_READ_TIMEOUT)
    )


def probe_source(
    _ctx: WorkerContext, source: SourceConfig, client_factory: Callable[[SourceConfig], Any]
) -> Probe:
    """One page of the source's listing (on a worker thread), and what it showed."""
    if source.path is not None:
        return probe_folder(Path(source.path))
    return probe_bucket(client_factory(source), source.bucket, source.prefix)


def _line(name: str, text: str | None = "", placeholder: str = "") -> QLineEdit:
    w = QLineEdit(text or "")
    w.setAccessibleName(name)
    w.setPlaceholderText(placeholder)
    return w


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


class SourceDialog(QDialog):
    """Add or edit a source: an S3 location (credentials come from the AWS profile, never
    from here) or a local folder, with the same naming rules. Test connection lists one
    page and says what it found, or what is wrong, in the listing's words."""

    def __init__(
        self,
        source: SourceConfig | None = None,
        parent: QWidget | None = None,
        *,
        client_factory: Callable[[SourceConfig], Any] = _probe_client,
        key_store: KeyStore | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit source" if source else "Add source")
        self.setAccessibleName(self.windowTitle())
        s = source or SourceConfig(name="", bucket="")
        # The keys to try sit beside the source they belong to (sourcekeys.py).
        self.keys = SourceKeysEditor(s.keys, key_store)
        self._client_factory = client_factory
        self._pool = QThreadPool(self)
        self._testing: Worker | None = None
        self.is_s3 = QRadioButton("S3 buc&ket")
        self.is_folder = QRadioButton("Local fol&der")
        kinds = QButtonGroup(self)
        kinds.addButton(self.is_s3)
        kinds.addButton(self.is_folder)
        (self.is_folder if s.is_local else self.is_s3).setChecked(True)
        kind_row = QHBoxLayout()
        kind_row.addWidget(self.is_s3)
        kind_row.addWidget(self.is_folder)
        kind_row.addStretch(1)
        self.folder = _line("Folder", s.path, "/srv/backups")
        self.browse = QPushButton("Bro&wse…")
        self.browse.setAccessibleName("Browse for the folder")
        self.browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.setContentsMargins(0, 0, 0, 0)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.browse)
        self._folder_box = QWidget()
        self._folder_box.setLayout(folder_row)
        self.name = _line("Source name", s.name, "Production backups")
        self.bucket = _line("Bucket", s.bucket, "my-backups")
        self.prefix = _line("Prefix", s.prefix, "mysql/ (optional)")
        self.endpoint = _line("Endpoint URL", s.endpoint_url, "https://s3.example.com (optional)")
        self.profile = _line("AWS profile", s.profile, "default chain (optional)")
        self.region = _line("Region", s.region, "us-east-1 (optional)")
        self.rules = QPlainTextEdit("\n".join(s.rules))
        self.rules.setAccessibleName("Naming rules")
        self.rules.setPlaceholderText("one DATA_SUFFIX:KEY_SUFFIX per line (optional)")
        self.rules.setTabChangesFocus(True)
        self.rules.setFixedHeight(self.fontMetrics().lineSpacing() * 4)
        form = QFormLayout()
        self.form = form
        form.addRow(QLabel("Where:"), kind_row)
        for label, w in (
            ("&Name:", self.name),
            ("&Bucket:", self.bucket),
            ("&Prefix:", self.prefix),
            ("&Endpoint URL:", self.endpoint),
            ("AWS pro&file:", self.profile),
            ("&Region:", self.region),
            ("F&older:", self._folder_box),
            ("E&xtra naming rules:", self.rules),
        ):
            lab = QLabel(label)
            lab.setBuddy(self.folder if w is self._folder_box else w)
            form.addRow(lab, w)
        self.note = QLabel(
            "Credentials come from the AWS profile or environment; none are stored here."
        )
        self.note.setWordWrap(True)
        self.error = QLabel()
        self.error.setAccessibleName("Problem")
        self.error.setWordWrap(True)
        self.error.hide()
        self.test_result = QLabel()
        self.test_result.setAccessibleName("Connection test")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.test_btn = self.buttons.addButton(
            "&Test connection", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.test_btn.setToolTip("List one page of the source and say what is there")
        self.test_btn.clicked.connect(self.test_connection)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        where = QWidget()
        wlay = QVBoxLayout(where)
        wlay.addLayout(form)
        wlay.addWidget(self.note)
        wlay.addStretch(1)
        # Two tabs keep the dialog within a 200 % laptop screen.
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Source settings")
        self.tabs.addTab(where, "Lo&cation")
        self.tabs.addTab(self.keys, "Ke&ys")
        self.tabs.addTab(self._audit_tab(s), "A&udit")
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs)
        lay.addWidget(self.error)
        lay.addWidget(self.test_result)
        lay.addWidget(self.buttons)
        self.is_s3.toggled.connect(self._show_kind)
        self._show_kind()
        self.name.setFocus()

    def _audit_tab(self, s: SourceConfig) -> QWidget:
        """The recovery targets an audit measures this source's backups against (kept in
        the sources file, which ``sealcheck audit`` reads too)."""
        self.target_rto = _line(
            "Target RTO in seconds", _num(s.target_rto_s), "e.g. 3600 (optional)"
        )
        self.target_rpo = _line("Target RPO in hours", _num(s.target_rpo_h), "e.g. 26 (optional)")
        tab = QWidget()
        form = QFormLayout(tab)
        # No mnemonics here: every letter of these labels is taken on the other tabs
        # (tests/gui/test_source_keys.py); Alt+U opens the tab, Tab reaches the fields.
        for label, w in (
            ("Target RTO (s):", self.target_rto),
            ("Target RPO (h):", self.target_rpo),
        ):
            lab = QLabel(label)
            lab.setBuddy(w)
            form.addRow(lab, w)
        note = QLabel(
            "An audit reports each restore test's recovery time against the RTO and each "
            "backup's age against the RPO (a missed target is reported, never a failure). "
            "sealcheck audit reads them from the same settings; its --target-rto and "
            "--target-rpo override them."
        )
        note.setWordWrap(True)
        form.addRow(note)
        return tab

    def _targets(self) -> dict[str, float | None]:
        """The Audit tab's targets, as SourceConfig's fields (UsageError if not a number)."""
        out: dict[str, float | None] = {}
        for key, w, what in (
            ("target_rto_s", self.target_rto, "Target RTO"),
            ("target_rpo_h", self.target_rpo, "Target RPO"),
        ):
            text = w.text().strip()
            try:
                v = float(text) if text else None
            except ValueError:
                v = -1.0
            if v is not None and not v > 0:
                raise UsageError(f"{what} {text!r}: give a positive number, or leave it empty")
            out[key] = v
        return out

    def _show_kind(self, *_args: object) -> None:
        s3 = self.is_s3.isChecked()
        for w in (self.bucket, self.prefix, self.endpoint, self.profile, self.region):
            self.form.setRowVisible(w, s3)
        self.form.setRowVisible(self._folder_box, not s3)
        self.note.setVisible(s3)
        self.test_result.hide()
        self.adjustSize()

    def _browse(self) -> None:
        start = self.folder.text().strip() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Folder of backups", start)
        if folder:
            self.folder.setText(folder)

    def value(self) -> SourceConfig:
        """The typed source; raises UsageError with a sentence for the user."""
        name, bucket = self.name.text().strip(), self.bucket.text().strip()
        rules = tuple(r.strip() for r in self.rules.toPlainText().splitlines() if r.strip())
        targets = self._targets()
        for r in rules:
            Rule.parse(r)
        if self.is_folder.isChecked():
            folder = self.folder.text().strip()
            if not folder:
                raise UsageError("a folder is needed (Browse… picks one)")
            return SourceConfig.local(
                Path(folder),
                name or None,
                rules=rules,
                keys=self.keys.value(),
                target_rto_s=targets["target_rto_s"],
                target_rpo_h=targets["target_rpo_h"],
            )
        if not bucket:
            raise UsageError("a bucket name is needed")
        if "/" in bucket or bucket.startswith("s3:"):
            raise UsageError("give the bucket name alone; put folders in Prefix")
        return SourceConfig(
            name=name or bucket,
            bucket=bucket,
            prefix=self.prefix.text().strip(),
            endpoint_url=self.endpoint.text().strip() or None,
            profile=self.profile.text().strip() or None,
            region=self.region.text().strip() or None,
            rules=rules,
            keys=self.keys.value(),
            target_rto_s=targets["target_rto_s"],
            target_rpo_h=targets["target_rpo_h"],
        )

    def accept(self) -> None:
        try:
            self.value()
        except UsageError as exc:
            self.error.setText(exc.detail or exc.summary)
            self.error.show()
            return
        super().accept()

    # --- Test connection ---------------------------------------------------------------

    @property
    def testing(self) -> bool:
        return self._testing is not None

    def test_connection(self) -> None:
        """List one page on a worker; the result (or the error) shows under the form."""
        try:
            source = self.value()
        except UsageError as exc:
            self._tested(f"⚠ {exc.detail or exc.summary}")
            return
        self.error.hide()
        self._stop_test()
        self.test_btn.setEnabled(False)
        self.test_result.setText(f"Testing {source.uri}…")
        self.test_result.show()
        w = Worker(probe_source, source, self._client_factory)
        w.signals.returned.connect(lambda probe, w=w: self._on_probe(w, probe))
        w.signals.errored.connect(lambda f, w=w, s=source: self._on_probe_failed(w, f, s))
        w.signals.finished.connect(lambda w=w: self._test_ended(w))
        self._testing = w
        w.start(self._pool)

    def _on_probe(self, w: Worker, probe: Probe | None) -> None:
        if w is self._testing and probe is not None:
            self._tested(probe.text())

    def _on_probe_failed(self, w: Worker, failure: Failure, source: SourceConfig) -> None:
        if w is self._testing:
            self._tested(f"⚠ {listing_problem(failure.exc, source.uri)}")

    def _tested(self, text: str) -> None:
        self.test_result.setText(text)
        self.test_result.show()

    def _test_ended(self, w: Worker) -> None:
        if w is self._testing:
            self._testing = None
            self.test_btn.setEnabled(True)

    def _stop_test(self) -> None:
        if self._testing is not None:
            self._testing.abort()
            self._testing = None
        self.test_btn.setEnabled(True)

    def done(self, result: int) -> None:
        # A test still running finishes in the background; wait so no thread outlives us.
        self._stop_test()
        self._pool.waitForDone(int((TEST_CONNECT_TIMEOUT + TEST_READ_TIMEOUT) * 1000))
        super().done(result)


class SecretDialog(QDialog):
    """Asks for a PIN or a passphrase. The text never leaves this dialog except to its caller."""

    def __init__(self, title: str, prompt: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        label = QLabel(prompt)
        label.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setAccessibleName(title)
        # No input-method suggestions or autocomplete history for secrets.
        self.field.setInputMethodHints(
            Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
        )
        label.setBuddy(self.field)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addWidget(self.field)
        lay.addWidget(buttons)

    def secret(self) -> bytes:
        data = self.field.text().encode()
        self.field.clear()
        return data


def ask_secret(parent: QWidget | None, title: str, prompt: str) -> bytes | None:
    dlg = SecretDialog(title, prompt, parent)
    try:
        return dlg.secret() if dlg.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dlg.deleteLater()


def with_keys(source: SourceConfig, keys: KeyChoice) -> SourceConfig:
    from dataclasses import replace

    return replace(source, keys=keys)
