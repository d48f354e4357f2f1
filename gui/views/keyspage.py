"""The Keys page: keys held in custody, importing a PEM, and the keys a source uses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.keys.custody import HeldKey, KeyStore
from sealcheck.core.keys.pkcs11.inventory import list_tokens

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext
from ..state.settings import KeyChoice
from .dialogs import ask_secret

INVENTORY_COLUMNS = ("Name", "Where", "Type", "Fingerprint", "Use as")


def _button(text: str, description: str) -> QPushButton:
    # The visible text is the accessible name (what a voice-control user says);
    # the longer sentence is the description and the tooltip.
    b = QPushButton(text)
    b.setAccessibleDescription(description)
    b.setToolTip(description)
    return b


def _import(ctx: WorkerContext, store: KeyStore, pem: bytes, name: str, pw: bytes | None) -> Any:
    return store.import_pem(pem, name, (lambda: pw) if pw else None)


def _list_tokens(ctx: WorkerContext, module: str, pin: bytes | None, pin_for: str | None) -> Any:
    return list_tokens(module, (lambda: pin) if pin else None, pin_for=pin_for)


class KeysPage(QWidget):
    """``keys_changed`` carries the new KeyChoice of the current source."""

    keys_changed = Signal(object)
    message = Signal(str)  # for the status bar

    def __init__(self, store: KeyStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store or KeyStore()
        self._choice = KeyChoice()
        self._workers: list[Worker] = []
        self.pool = QThreadPool(self)

        held = QGroupBox("Keys held by Sealcheck (OS keyring) and on tokens")
        self.inventory = QStandardItemModel(0, len(INVENTORY_COLUMNS), self)
        self.inventory.setHorizontalHeaderLabels(list(INVENTORY_COLUMNS))
        self.table = QTableView()
        self.table.setAccessibleName("Key inventory")
        self.table.horizontalHeader().setAccessibleName("Key inventory: columns")
        self.table.verticalHeader().hide()  # row numbers say nothing here
        self.table.setModel(self.inventory)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.import_btn = _button("&Import PEM into keyring…", "Import a PEM key into the keyring")
        self.token_btn = _button("List &token keys…", "List the keys on a PKCS#11 token")
        self.use_btn = _button("&Use for this source", "Use the selected key for this source")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Key status")
        row = QHBoxLayout()
        for b in (self.import_btn, self.token_btn, self.use_btn):
            row.addWidget(b)
        row.addStretch()
        lay = QVBoxLayout(held)
        lay.addWidget(self.table)
        lay.addLayout(row)
        lay.addWidget(self.status)

        used = QGroupBox("Keys this source uses")
        self.specs = QListWidget()
        self.specs.setAccessibleName("Keys used by this source")
        self.add_pem_btn = _button("Add PEM &file…", "Add a PEM key file")
        self.add_token_btn = _button("Add token ke&y…", "Add a PKCS#11 token key by URI")
        self.remove_btn = _button("&Remove", "Remove the selected key from this source")
        self.passfile = QLineEdit()
        self.passfile.setAccessibleName("Passphrase file for symmetric backups")
        self.passfile.setPlaceholderText("passphrase file (openssl enc -pass file:…), optional")
        self.gpgfile = QLineEdit()
        self.gpgfile.setAccessibleName("OpenPGP secret key file")
        self.gpgfile.setPlaceholderText("OpenPGP secret key (.asc), optional")
        brow = QHBoxLayout()
        for b in (self.add_pem_btn, self.add_token_btn, self.remove_btn):
            brow.addWidget(b)
        brow.addStretch()
        ulay = QVBoxLayout(used)
        ulay.addWidget(self.specs)
        ulay.addLayout(brow)
        ulay.addWidget(self.passfile)
        ulay.addWidget(self.gpgfile)

        top = QVBoxLayout(self)
        top.addWidget(held, 3)
        top.addWidget(used, 2)

        self.import_btn.clicked.connect(self._on_import)
        self.token_btn.clicked.connect(self._on_list_token)
        self.use_btn.clicked.connect(self._on_use)
        self.add_pem_btn.clicked.connect(self._on_add_pem)
        self.add_token_btn.clicked.connect(self._on_add_token)
        self.remove_btn.clicked.connect(self._on_remove)
        self.passfile.editingFinished.connect(self._emit_choice)
        self.gpgfile.editingFinished.connect(self._emit_choice)
        self.refresh()

    # --- inventory -----------------------------------------------------------

    def refresh(self) -> None:
        self.inventory.removeRows(0, self.inventory.rowCount())
        for k in self.store.list():
            self._add_row(k.name, k.where, f"RSA-{k.bits}", k.fingerprint, f"keyring:{k.name}")
        if not self.inventory.rowCount():
            self.status.setText("No keys held yet. Import a PEM to keep it in the OS keyring.")

    def _add_row(self, *cells: str) -> None:
        items = [QStandardItem(c) for c in cells]
        for it in items:
            it.setEditable(False)
        self.inventory.appendRow(items)

    def _start(self, fn: Any, *args: Any, done: Any) -> None:
        w = Worker(fn, *args)
        self._workers.append(w)
        w.signals.returned.connect(done)
        w.signals.errored.connect(self._on_failed)
        w.signals.finished.connect(lambda: self._workers.remove(w))
        w.start(self.pool)

    def _on_failed(self, failure: Failure) -> None:
        msg = describe(failure.exc)
        self.status.setText(f"{msg.headline}. {msg.advice}\n{msg.details}")
        self.message.emit(msg.headline)

    def import_pem_file(self, path: Path, name: str) -> None:
        """Import without dialogs for the file and name (the button asks for those)."""
        pem = path.read_bytes()
        pw = None
        if b"ENCRYPTED" in pem:
            pw = ask_secret(self, "Key passphrase", f"Passphrase of {path.name}")
            if pw is None:
                return
        self.status.setText(f"Importing {path.name}…")
        self._start(_import, self.store, pem, name, pw, done=self._on_imported)

    def _on_imported(self, info: HeldKey) -> None:
        self.refresh()
        self.status.setText(
            f"Key {info.name!r} (RSA-{info.bits}) is now held in the OS keyring. "
            f"The PEM file was not changed or copied."
        )
        self.message.emit(f"Imported key {info.name}")

    def _on_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a private key", "", "PEM (*.pem);;All (*)"
        )
        if not path:
            return
        name, ok = QInputDialog.getText(self, "Key name", "Name for this key in Sealcheck:")
        if ok and name.strip():
            self.import_pem_file(Path(path), name.strip())

    def _on_list_token(self) -> None:
        module, ok = QInputDialog.getText(
            self, "PKCS#11 module", "Path of the token's PKCS#11 module (.so):"
        )
        if not ok or not module.strip():
            return
        # First without a PIN: which tokens are there? A PIN then goes to the one token
        # the user names, once (a wrong PIN counts toward that token's lockout).
        self._start(
            _list_tokens, module.strip(), None, None, done=lambda ts: self._pick(module, ts)
        )

    def _pick(self, module: str, tokens: list[Any]) -> None:
        if not tokens:
            self.status.setText("No token is present in that module's slots.")
            return
        public_only = "No PIN: list public keys only"
        labels = [t.label for t in tokens]
        label = labels[0]
        if len(labels) > 1:
            label, ok = QInputDialog.getItem(
                self, "Token", "Which token is the PIN for?", [*labels, public_only], 0, False
            )
            if not ok or label == public_only:
                self._on_token_keys(tokens)
                return
        pin = ask_secret(self, "Token PIN", f"PIN of token '{label}' (asked once; never stored)")
        if pin is None:
            self._on_token_keys(tokens)
            return
        self._start(_list_tokens, module.strip(), pin, label, done=self._on_token_keys)

    def _on_token_keys(self, tokens: list[Any]) -> None:
        count = 0
        notes = []
        for token in tokens:
            if token.note:
                notes.append(token.note)
            for k in token.keys:
                count += 1
                self._add_row(
                    f"{token.label}/{k.object_label or k.id_hex or '?'}",
                    "PKCS#11 token",
                    f"{k.key_type}-{k.size_bits}",
                    str(k.fingerprint),
                    str(k.uri),
                )
        self.status.setText(" ".join([f"{count} key(s) on {len(tokens)} token(s).", *notes]))

    # --- the current source's keys -------------------------------------------

    def set_choice(self, choice: KeyChoice) -> None:
        self._choice = choice
        self.specs.clear()
        self.specs.addItems(list(choice.key_specs))
        self.passfile.setText(choice.passphrase_file or "")
        self.gpgfile.setText(choice.gpg_key_file or "")

    def choice(self) -> KeyChoice:
        return self._choice

    def _emit_choice(self) -> None:
        self._choice = replace(
            self._choice,
            key_specs=tuple(self.specs.item(i).text() for i in range(self.specs.count())),
            passphrase_file=self.passfile.text().strip() or None,
            gpg_key_file=self.gpgfile.text().strip() or None,
        )
        self.keys_changed.emit(self._choice)

    def add_spec(self, spec: str) -> None:
        if spec and not self.specs.findItems(spec, Qt.MatchFlag.MatchExactly):
            self.specs.addItem(spec)
            self._emit_choice()

    def _on_use(self) -> None:
        rows = self.table.selectionModel().selectedRows(4)
        if rows:
            self.add_spec(str(rows[0].data()))

    def _on_add_pem(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Key file", "", "PEM (*.pem *.key);;All (*)")
        if path:
            self.add_spec(path)

    def _on_add_token(self) -> None:
        uri, ok = QInputDialog.getText(self, "Token key", "pkcs11: URI of the key:")
        if ok and uri.strip().startswith("pkcs11:"):
            module, ok = QInputDialog.getText(self, "PKCS#11 module", "Module path (.so):")
            if ok and module.strip():
                self._choice = replace(self._choice, pkcs11_module=module.strip())
            self.add_spec(uri.strip())

    def _on_remove(self) -> None:
        for item in self.specs.selectedItems():
            self.specs.takeItem(self.specs.row(item))
        self._emit_choice()

    def shutdown(self) -> None:
        self.pool.waitForDone(5000)
