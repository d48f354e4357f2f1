"""The old OpenPGP key of a rotation over gpg backups, on the wizard's Old keys page.

gpg opens those backups with a secret key file (the source's, Keys page) or a GNUPGHOME
folder (its agent, its smart cards). Resuming an interrupted rotation, the CLI's or the
app's, the box shows what the journal's start recorded (the folder, the key file and its
primary-key fingerprint; never a passphrase: the journal has none) and uses it; another
key or folder is refused here, in the app's words, before any plan (core's
``resumed_gpg``, as ``rotate run --resume`` refuses it). A passphrase is asked through
the app's secret prompt when the user chooses to give one, kept in this box's memory
only, and handed to gpg through a pipe.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from sealcheck.core.decrypt.secrets import GpgOptions
from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.prompt import SecretPrompt, SecretProvider, secret_once
from sealcheck.core.rotation.gpgresume import resumed_gpg
from sealcheck.core.rotation.journal import Start

from .widgets import failure_text, label


def recorded_text(start: Start) -> str:
    """What an interrupted rotation's journal recorded of its old OpenPGP key, in words."""
    parts = []
    if start.gpg_key:
        fpr = start.gpg_fingerprint or "not readable as an OpenPGP key"
        parts.append(f"the key file {start.gpg_key} (primary key {fpr})")
    if start.gpg_homedir:
        parts.append(f"the key folder {start.gpg_homedir}")
    if not parts:
        return ""
    return (
        f"The interrupted rotation was started with {' and '.join(parts)} and carries on "
        "with it (its journal keeps no passphrase)."
    )


class GpgKeyBox(QGroupBox):
    """The OpenPGP key: the source's key file, a GNUPGHOME, an optional passphrase."""

    changed = Signal()

    def __init__(
        self,
        ask: SecretPrompt | None,
        recorded: Start | None = None,
        journal: Path | None = None,
    ) -> None:
        super().__init__("OpenPGP key (gpg backups)")
        self._ask = ask
        self.recorded = recorded if recorded is not None and recorded_text(recorded) else None
        self.journal = journal
        self.key_file: str | None = None  # the source's (the run's, when resuming)
        self._passphrase: SecretProvider | None = None
        self.file_label = label("", "OpenPGP key file")
        self.home = QLineEdit(self.recorded.gpg_homedir if self.recorded else "")
        self.home.setAccessibleName("OpenPGP key folder (GNUPGHOME)")
        self.home.setPlaceholderText("optional: a gpg home folder holding the old secret key")
        browse = QPushButton("Bro&wse…")
        browse.setAccessibleName("Browse for the OpenPGP key folder")
        browse.clicked.connect(self._browse)
        self.ask_button = QPushButton("Enter its pa&ssphrase…")
        self.ask_button.setAccessibleName("Enter the OpenPGP key's passphrase")
        self.ask_button.clicked.connect(self.ask_passphrase)
        self.passphrase_state = label("", "OpenPGP passphrase")
        self.home_keys = label("", "Secret keys in the folder")
        self.recorded_label = label(recorded_text(self.recorded) if self.recorded else "", "")
        self.recorded_label.setAccessibleName("Recorded by the interrupted rotation")
        self.recorded_label.setVisible(self.recorded is not None)
        self.problem = label("", "OpenPGP key problem")
        home_row = QHBoxLayout()
        home_row.addWidget(self.home, 1)
        home_row.addWidget(browse)
        pass_row = QHBoxLayout()
        pass_row.addWidget(self.ask_button)
        pass_row.addWidget(self.passphrase_state, 1)
        self.form = form = QFormLayout(self)
        form.addRow(self.recorded_label)
        form.addRow("Key file:", self.file_label)
        home_name = QLabel("Key &folder:")
        home_name.setBuddy(self.home)
        form.addRow(home_name, home_row)
        form.addRow("", self.home_keys)
        form.addRow("Passphrase:", pass_row)
        form.addRow(self.problem)
        self.home.textChanged.connect(self._home_changed)
        self._show_passphrase()
        self._show_home_keys("")

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "OpenPGP key folder", self.home.text())
        if path:
            self.home.setText(path)

    def _home_changed(self, _text: str) -> None:
        self._show_home_keys("")  # another folder: listed again once typed (the page)
        self.check()

    def set_key_file(self, path: str | None) -> None:
        self.key_file = path or None
        hint = "" if self.recorded else " (a source's is set on its Keys page)"
        self.file_label.setText(path or f"none{hint}")
        self.check()

    def set_home_keys(self, fingerprints: list[str]) -> None:
        home = self.home.text().strip()
        if not home:
            text = ""
        elif fingerprints:
            text = f"Secret keys in it now: {', '.join(fingerprints)}"
        else:
            text = "gpg lists no secret key in this folder."
        self._show_home_keys(text)

    def _show_home_keys(self, text: str) -> None:
        self.home_keys.setText(text)
        self.form.setRowVisible(self.home_keys, bool(text))

    # --- the passphrase: asked when the user says so, held here only ------------------

    def ask_passphrase(self) -> None:
        where = self.key_file or self.home.text().strip() or "the OpenPGP key"
        provider = secret_once(f"Passphrase of the OpenPGP key in {where}", self._ask)
        # Asked now, on the GUI thread: gpg runs on the worker, which cannot ask.
        self._passphrase = provider if provider() else None
        self._show_passphrase()

    def _show_passphrase(self) -> None:
        self.passphrase_state.setText(
            "given (held in memory by this wizard only, never stored)"
            if self._passphrase is not None
            else "none given: gpg's agent asks for it if it can"
        )

    # --- what is used, checked against the journal -----------------------------------

    def _given(self) -> tuple[Path | None, Path | None]:
        home = self.home.text().strip()
        return (Path(self.key_file) if self.key_file else None, Path(home) if home else None)

    def _resolved(self) -> tuple[Path | None, Path | None]:
        """The key file and folder used: as given, each left out taken from the journal's
        start when resuming (ResumeContradicts, RecordedKeyChanged when not the same)."""
        key_file, home = self._given()
        if self.recorded is None or self.journal is None:
            return key_file, home
        if key_file is not None and str(key_file) == self.recorded.gpg_key:
            # The run's own file (Resume.of): read as the journal's, so a file that now
            # holds another key says so (RecordedKeyChanged), as --resume alone does.
            key_file = None
        resumed: tuple[Path | None, Path | None] = resumed_gpg(
            self.recorded, key_file, home, self.journal
        )
        return resumed

    def check(self) -> None:
        try:
            self._resolved()
            self.problem.setText("")
        except SealcheckError as exc:
            self.problem.setText(failure_text(exc))
        self.form.setRowVisible(self.problem, bool(self.problem.text()))
        self.changed.emit()

    @property
    def refused(self) -> bool:
        return bool(self.problem.text())

    def options(self) -> GpgOptions | None:
        """What gpg is run with (None: no OpenPGP key); never while refused."""
        if self.refused:
            return None
        key_file, home = self._resolved()
        if key_file is None and home is None:
            return None
        return GpgOptions(key_file=key_file, homedir=home, passphrase=self._passphrase)
