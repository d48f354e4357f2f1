"""A source's keys, in the source's editor: which keys to try and in what order, the
passphrase file for symmetric backups and the OpenPGP secret key.

Order matters: a job tries the keys top to bottom (a token key last keeps a PIN from
being asked when a software key opens the backup). The list reorders by drag and
drop or by Move up / Move down (keyboard users). Only where keys are is kept
(``keyring:NAME``, a file path, a ``pkcs11:`` URI), never a key, PIN or passphrase.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.keys.custody import KeyStore

from ..state.settings import KeyChoice
from .keydialogs import described_button, field_row, label_for
from .tokenpicker import TokenPickerDialog


class SourceKeysEditor(QGroupBox):
    def __init__(
        self, choice: KeyChoice, key_store: KeyStore | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__("Keys to try, in this order", parent)
        self._choice = choice
        self._store = key_store or KeyStore()
        self.specs = QListWidget()
        self.specs.setAccessibleName("Keys this source tries, in order")
        self.specs.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.specs.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.specs.addItems(list(choice.key_specs))
        self.specs.setMaximumHeight(self.fontMetrics().lineSpacing() * 6)
        self.add_held_btn = described_button("Add &held key…", "Add a key held in the OS keyring")
        self.add_file_btn = described_button("Add a key f&ile…", "Add a PEM private key file")
        self.add_token_btn = described_button("&Add token key…", "Choose a key on a PKCS#11 token")
        self.up_btn = described_button("&Move up", "Try the selected key earlier")
        self.down_btn = described_button("Mo&ve down", "Try the selected key later")
        self.remove_btn = described_button(
            "Remove from &list", "Stop trying the selected key for this source"
        )
        side = QVBoxLayout()
        for b in (
            self.add_held_btn,
            self.add_file_btn,
            self.add_token_btn,
            self.up_btn,
            self.down_btn,
            self.remove_btn,
        ):
            side.addWidget(b)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.specs, 1)
        top.addLayout(side)
        self.passfile = self._path_line(
            "Passphrase file for symmetric backups", choice.passphrase_file, "optional"
        )
        self.gpgfile = self._path_line("OpenPGP secret key file", choice.gpg_key_file, "optional")
        self.passfile_browse = described_button("Browse…", "Choose the passphrase file")
        self.gpg_browse = described_button("Browse…", "Choose the OpenPGP secret key (.asc)")
        self.passfile_browse.setAccessibleName("Browse for the passphrase file")
        self.gpg_browse.setAccessibleName("Browse for the OpenPGP secret key")
        form = QFormLayout()
        form.addRow(
            label_for("Pa&ssphrase file (openssl enc -pass file:…):", self.passfile),
            field_row(self.passfile, self.passfile_browse),
        )
        form.addRow(
            label_for("OpenP&GP secret key (.asc):", self.gpgfile),
            field_row(self.gpgfile, self.gpg_browse),
        )
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(form)
        if not self._store.list():
            self.add_held_btn.setEnabled(False)
            self.add_held_btn.setToolTip("No key is held yet: import one on the Keys page")
        self.add_held_btn.clicked.connect(self._on_add_held)
        self.add_file_btn.clicked.connect(self._on_add_file)
        self.add_token_btn.clicked.connect(self._on_add_token)
        self.up_btn.clicked.connect(lambda: self.move_selected(-1))
        self.down_btn.clicked.connect(lambda: self.move_selected(1))
        self.remove_btn.clicked.connect(self.remove_selected)
        self.passfile_browse.clicked.connect(
            lambda: self._browse(self.passfile, "Passphrase file", "All (*)")
        )
        self.gpg_browse.clicked.connect(
            lambda: self._browse(
                self.gpgfile, "OpenPGP secret key", "OpenPGP (*.asc *.gpg);;All (*)"
            )
        )

    @staticmethod
    def _path_line(name: str, text: str | None, placeholder: str) -> QLineEdit:
        w = QLineEdit(text or "")
        w.setAccessibleName(name)
        w.setPlaceholderText(placeholder)
        return w

    def _browse(self, line: QLineEdit, title: str, filters: str) -> None:
        start = line.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        if path:
            line.setText(path)

    # --- the list ---------------------------------------------------------------

    def key_specs(self) -> tuple[str, ...]:
        return tuple(self.specs.item(i).text() for i in range(self.specs.count()))

    def add_spec(self, spec: str, module: str | None = None) -> None:
        if spec and spec not in self.key_specs():
            self.specs.addItem(spec)
        self.specs.setCurrentRow(self.key_specs().index(spec))
        if module:
            self._choice = replace(self._choice, pkcs11_module=module)

    def move_selected(self, step: int) -> None:
        row = self.specs.currentRow()
        to = row + step
        if row < 0 or not 0 <= to < self.specs.count():
            return
        item = self.specs.takeItem(row)
        self.specs.insertItem(to, item)
        self.specs.setCurrentRow(to)

    def remove_selected(self) -> None:
        row = self.specs.currentRow()
        if row >= 0:
            self.specs.takeItem(row)

    def _on_add_held(self) -> None:
        names = [f"keyring:{k.name}" for k in self._store.list()]
        if not names:
            return
        spec, ok = QInputDialog.getItem(self, "Held key", "Key to try:", names, 0, False)
        if ok:
            self.add_spec(spec)

    def _on_add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Private key file", str(Path.home()), "Keys (*.pem *.key *.der);;All (*)"
        )
        if path:
            self.add_spec(path)

    def token_picker(self) -> TokenPickerDialog:
        dlg = TokenPickerDialog(self)
        dlg.accepted.connect(lambda: self._picked(dlg))
        return dlg

    def _picked(self, dlg: TokenPickerDialog) -> None:
        chosen = dlg.chosen()
        if chosen is not None:
            self.add_spec(chosen.key.uri, chosen.module)

    def _on_add_token(self) -> None:
        dlg = self.token_picker()
        dlg.exec()
        dlg.deleteLater()

    def value(self) -> KeyChoice:
        return replace(
            self._choice,
            key_specs=self.key_specs(),
            passphrase_file=self.passfile.text().strip() or None,
            gpg_key_file=self.gpgfile.text().strip() or None,
        )
