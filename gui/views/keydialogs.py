"""Importing a private key into custody: one dialog that stays open until it worked.

A wrong passphrase, a file that is not a key or a name already taken is said in its
own words under the form, and the user corrects that one field (the path stays) and
tries again, rather than starting over from the file dialog. The passphrase typed
here goes only to core's import, in a closure, and is cleared from the field after
each try.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.errors import (
    KeyUnavailable,
    NotAPrivateKey,
    PassphraseNeeded,
    WrongPassphrase,
)
from sealcheck.core.keys.custody import BadKeyName, DuplicateKey, HeldKey, KeyStore
from sealcheck.core.keys.prompt import SecretProvider, secret_once

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext


def _import(_ctx: WorkerContext, store: KeyStore, path: Path, name: str, pw: bytes) -> HeldKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the key file {path}: {exc.strerror}") from None
    return store.import_pem(pem, name, typed_secret(pw, f"Passphrase of {path.name}"))


def typed_secret(secret: bytes | None, text: str) -> SecretProvider | None:
    """What the user typed in a dialog, as core's one-secret provider (asked once,
    kept in memory only); None when nothing was typed."""
    return secret_once(text, lambda _text: secret) if secret else None


def secret_field(name: str) -> QLineEdit:
    """A password field without input-method suggestions or history."""
    w = QLineEdit()
    w.setEchoMode(QLineEdit.EchoMode.Password)
    w.setAccessibleName(name)
    w.setInputMethodHints(Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData)
    return w


def described_button(text: str, description: str) -> QPushButton:
    """The visible text is the accessible name (what a voice-control user says); the
    longer sentence is the description and the tooltip."""
    b = QPushButton(text)
    b.setAccessibleDescription(description)
    b.setToolTip(description)
    return b


def field_row(field: QWidget, button: QPushButton) -> QHBoxLayout:
    """A field with its button (Browse…, Log in) on one form row."""
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(field, 1)
    row.addWidget(button)
    return row


def message_label(name: str) -> QLabel:
    """A label for what happened (a problem, a status): wrapped, selectable, named."""
    lab = QLabel()
    lab.setAccessibleName(name)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


def label_for(text: str, buddy: QWidget) -> QLabel:
    lab = QLabel(text)
    lab.setBuddy(buddy)
    return lab


class ImportKeyDialog(QDialog):
    """Path, name and (for an encrypted file) passphrase; ``imported`` once it worked."""

    def __init__(
        self, store: KeyStore, parent: QWidget | None = None, path: Path | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a private key")
        self.setAccessibleName(self.windowTitle())
        self.store = store
        self.imported: HeldKey | None = None
        self._pool = QThreadPool(self)
        self._running: Worker | None = None
        self.path = QLineEdit(str(path) if path else "")
        self.path.setAccessibleName("Key file")
        self.path.setPlaceholderText("/path/to/backup-key.pem")
        self.browse = QPushButton("Bro&wse…")
        self.browse.setAccessibleName("Browse for the key file")
        self.browse.clicked.connect(self._browse)
        row = field_row(self.path, self.browse)
        self.name = QLineEdit(path.stem if path else "")
        self.name.setAccessibleName("Key name")
        self.name.setPlaceholderText("backup-2026 (letters, digits, '.', '_', '-')")
        self.passphrase = secret_field("Key passphrase")
        self.passphrase.setPlaceholderText("only if the key file is encrypted")
        form = QFormLayout()
        form.addRow(label_for("Key &file:", self.path), row)
        form.addRow(label_for("&Name in Sealcheck:", self.name), self.name)
        form.addRow(label_for("&Passphrase:", self.passphrase), self.passphrase)
        note = QLabel(
            "The key is kept encrypted in Sealcheck's data folder, its passphrase in the OS "
            "keyring; the file you pick is not changed or copied."
        )
        note.setWordWrap(True)
        self.problem = message_label("Problem")
        self.problem.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_btn = self.buttons.addButton("&Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_btn.setDefault(True)
        self.buttons.accepted.connect(self.try_import)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.problem)
        lay.addWidget(self.buttons)
        (self.name if path else self.path).setFocus()

    def _browse(self) -> None:
        start = self.path.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Private key file", start, "Keys (*.pem *.key *.der);;All (*)"
        )
        if path:
            self.path.setText(path)
            if not self.name.text().strip():
                self.name.setText(Path(path).stem)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def try_import(self) -> None:
        """Import on a worker; the dialog closes only when the key is held."""
        path, name = self.path.text().strip(), self.name.text().strip()
        if not path:
            self._say("Choose the key file (Browse…).", self.path)
            return
        if not name:
            self._say("Give the key a name: sources and the command line use it.", self.name)
            return
        pw = self.passphrase.text().encode()
        self.passphrase.clear()
        self.problem.hide()
        self.import_btn.setEnabled(False)
        w = Worker(_import, self.store, Path(path).expanduser(), name, pw)
        del pw
        w.signals.returned.connect(self._on_imported)
        w.signals.errored.connect(self._on_failed)
        w.signals.finished.connect(self._ended)
        self._running = w
        w.start(self._pool)

    def _ended(self) -> None:
        self._running = None
        self.import_btn.setEnabled(True)

    def _on_imported(self, info: HeldKey) -> None:
        self.imported = info
        self.accept()

    def _on_failed(self, failure: Failure) -> None:
        exc = failure.exc
        msg = describe(exc)
        text = f"{msg.headline}. {msg.advice}"
        if isinstance(exc, (WrongPassphrase, PassphraseNeeded)):
            self._say(text, self.passphrase)
        elif isinstance(exc, DuplicateKey):
            self._say(f"{msg.headline}: {exc.existing.name!r}. {msg.advice}", self.name)
        elif isinstance(exc, BadKeyName):
            self._say(f"{exc.detail}.", self.name)  # a name not allowed, or already taken
        elif isinstance(exc, NotAPrivateKey):
            self._say(text, self.path)
        else:
            self._say(f"{text}\n{msg.details}", None)

    def _say(self, text: str, field: QLineEdit | None) -> None:
        self.problem.setText(f"⚠ {text}")
        self.problem.show()
        if field is not None:
            field.setFocus()
            field.selectAll()

    def done(self, result: int) -> None:
        self.passphrase.clear()
        self._pool.waitForDone(30000)  # an import in flight ends before the dialog goes
        super().done(result)
