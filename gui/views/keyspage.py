"""The Keys page: keys held in custody and on tokens, what can be done with each, and
where each is used.

A held key can be renamed (the sources that name it follow), its public key exported
(written whole or not at all) and its full fingerprint copied (the table may elide it;
the tooltip and the copy never do). Removing asks first, and says so plainly when the
key is the only one a source tries. Which keys a source tries, and in what order, is
set beside the source, in its editor (sourcekeys.py); "Use for this source" adds the
selected key there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import (
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShowEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.errors import KeyUnavailable
from sealcheck.core.keys.custody import HeldKey, KeyStore
from sealcheck.core.keys.pkcs11.modules import present_modules
from sealcheck.core.records.history import History, Subject

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext
from ..state.keyusage import KeyUse, key_use
from ..state.settings import KeyChoice, SourceConfig
from .dialogs import ask_secret
from .keydialogs import ImportKeyDialog, described_button, message_label, typed_secret
from .tokenpicker import list_with_pin

INVENTORY_COLUMNS = ("Name", "Where", "Type", "Fingerprint", "Use as", "Used by")
FINGERPRINT, USE_AS, USED_BY = 3, 4, 5
OTHER_MODULE = "Other module…"


def _import(ctx: WorkerContext, store: KeyStore, pem: bytes, name: str, pw: bytes | None) -> Any:
    return store.import_pem(pem, name, typed_secret(pw, f"Passphrase of {name}"))


_list_tokens = list_with_pin  # the inventory as the token picker reads it


def _opened(_ctx: WorkerContext, history: History) -> Any:
    return history.opened_by_key()


class _KeyTable(QTableView):
    """Ctrl+C copies what an admin compares, the whole fingerprint, not the current cell."""

    copy_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class KeysPage(QWidget):
    """``keys_changed`` carries the new KeyChoice of the current source;
    ``key_renamed`` the old and new spec of a renamed key (``keyring:OLD``,
    ``keyring:NEW``), for every source that names it."""

    keys_changed = Signal(object)
    key_renamed = Signal(str, str)
    message = Signal(str)  # for the status bar

    def __init__(
        self,
        store: KeyStore | None = None,
        parent: QWidget | None = None,
        *,
        history: History | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store or KeyStore()
        self.history = history
        self._choice = KeyChoice()
        self._sources: list[SourceConfig] = []
        self._opened: dict[str, list[Subject]] = {}
        self._workers: list[Worker] = []
        self.pool = QThreadPool(self)

        held = QGroupBox("Keys held by Sealcheck (OS keyring) and on tokens")
        self.inventory = QStandardItemModel(0, len(INVENTORY_COLUMNS), self)
        self.inventory.setHorizontalHeaderLabels(list(INVENTORY_COLUMNS))
        self.table = _KeyTable()
        self.table.setAccessibleName("Key inventory")
        self.table.horizontalHeader().setAccessibleName("Key inventory: columns")
        self.table.verticalHeader().hide()  # row numbers say nothing here
        self.table.setModel(self.inventory)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # A narrow window elides the middle of a fingerprint, never silently its end:
        # the tooltip and "Copy fingerprint" always give all of it.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(FINGERPRINT, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(FINGERPRINT, self.fontMetrics().horizontalAdvance("S" * 40))
        self.import_btn = described_button(
            "&Import key…", "Import a private key (PEM) into the keyring"
        )
        self.token_btn = described_button("List &token keys…", "List the keys on a PKCS#11 token")
        self.use_btn = described_button(
            "&Use for this source", "Add the selected key to this source's keys"
        )
        self.rename_btn = described_button("Re&name…", "Give the selected key another name")
        self.export_btn = described_button(
            "E&xport public key…", "Save the selected key's public key (PEM)"
        )
        self.copy_btn = described_button(
            "&Copy fingerprint", "Copy the selected key's full fingerprint"
        )
        self.remove_key_btn = described_button("Remo&ve…", "Remove the selected key from custody")
        self.status = message_label("Key status")
        row = QHBoxLayout()
        for b in (self.import_btn, self.token_btn, self.use_btn):
            row.addWidget(b)
        row.addStretch()
        row2 = QHBoxLayout()
        for b in (self.rename_btn, self.export_btn, self.copy_btn, self.remove_key_btn):
            row2.addWidget(b)
        row2.addStretch()
        lay = QVBoxLayout(held)
        lay.addWidget(self.table)
        lay.addLayout(row)
        lay.addLayout(row2)
        lay.addWidget(self.status)

        used = QGroupBox("Where the selected key is used")
        self.usage = message_label("Where the selected key is used")
        note = QLabel(
            "The keys a source tries, and their order, are set in the source's editor "
            "(Source → Edit source…, Ctrl+E), beside the source they belong to."
        )
        note.setWordWrap(True)
        ulay = QVBoxLayout(used)
        ulay.addWidget(self.usage)
        ulay.addWidget(note)

        top = QVBoxLayout(self)
        top.addWidget(held, 3)
        top.addWidget(used, 1)

        self.import_btn.clicked.connect(self._on_import)
        self.token_btn.clicked.connect(self._on_list_token)
        self.use_btn.clicked.connect(self._on_use)
        self.rename_btn.clicked.connect(self._on_rename)
        self.export_btn.clicked.connect(self._on_export)
        self.copy_btn.clicked.connect(self.copy_fingerprint)
        self.remove_key_btn.clicked.connect(self._on_remove_key)
        self.table.selectionModel().selectionChanged.connect(self._on_selected)
        self.table.copy_requested.connect(self.copy_fingerprint)
        self.refresh()

    # --- inventory -----------------------------------------------------------

    def refresh(self) -> None:
        self.inventory.removeRows(0, self.inventory.rowCount())
        for k in self.store.list():
            self._add_row(k.name, k.where, f"RSA-{k.bits}", k.fingerprint, f"keyring:{k.name}")
        if not self.inventory.rowCount():
            self.status.setText("No keys held yet. Import a PEM to keep it in the OS keyring.")
        self._show_usage()

    def _add_row(self, *cells: str) -> None:
        items = [QStandardItem(c) for c in cells]
        items[FINGERPRINT].setToolTip(cells[FINGERPRINT])
        items[USE_AS].setToolTip(cells[USE_AS])
        items.append(QStandardItem(""))
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

    def import_dialog(self, path: Path | None = None) -> ImportKeyDialog:
        """The import dialog, not yet shown (tests drive it; the button runs it)."""
        dlg = ImportKeyDialog(self.store, self, path)
        dlg.accepted.connect(lambda: self._on_imported(dlg.imported) if dlg.imported else None)
        return dlg

    def _on_import(self) -> None:
        dlg = self.import_dialog()
        dlg.exec()
        dlg.deleteLater()

    # --- the selected key ------------------------------------------------------

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _cell(self, row: int, col: int) -> str:
        return self.inventory.item(row, col).text()

    def selected_held(self) -> HeldKey | None:
        """The selected key if it is one in custody (not a token's)."""
        row = self.selected_row()
        if row is None or not self._cell(row, USE_AS).startswith("keyring:"):
            return None
        try:
            return self.store.get(self._cell(row, USE_AS)[len("keyring:") :])
        except KeyUnavailable:  # removed meanwhile (the CLI): the refresh shows it
            return None

    def _on_selected(self, *_args: object) -> None:
        row = self.selected_row()
        held = row is not None and self._cell(row, USE_AS).startswith("keyring:")
        for b in (self.rename_btn, self.export_btn, self.remove_key_btn):
            b.setEnabled(held)
        self.copy_btn.setEnabled(row is not None)
        self.use_btn.setEnabled(row is not None)
        self._show_usage()

    def copy_fingerprint(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        fp = self._cell(row, FINGERPRINT)
        QGuiApplication.clipboard().setText(fp)
        self.status.setText(f"Copied the fingerprint of {self._cell(row, 0)!r}: {fp}")
        self.message.emit("Fingerprint copied")

    def rename_selected(self, new: str) -> None:
        info = self.selected_held()
        if info is None or not new or new == info.name:
            return
        self._start(self._rename, info.name, new, done=self._on_renamed)

    def _rename(self, _ctx: WorkerContext, old: str, new: str) -> tuple[str, HeldKey]:
        return old, self.store.rename(old, new)

    def _on_renamed(self, result: tuple[str, HeldKey]) -> None:
        old, info = result
        self.refresh()
        self.key_renamed.emit(f"keyring:{old}", f"keyring:{info.name}")
        self.status.setText(
            f"Key {old!r} is now {info.name!r}; the sources that used it follow the new name."
        )
        self.message.emit(f"Renamed key {old} to {info.name}")

    def _on_rename(self) -> None:
        info = self.selected_held()
        if info is None:
            return
        new, ok = QInputDialog.getText(
            self, "Rename key", f"New name for {info.name!r}:", text=info.name
        )
        if ok:
            self.rename_selected(new.strip())

    def export_selected(self, dest: Path, *, overwrite: bool = False) -> None:
        info = self.selected_held()
        if info is not None:
            self._start(_export, self.store, info.name, dest, overwrite, done=self._on_exported)

    def _on_exported(self, result: tuple[HeldKey, Path]) -> None:
        info, dest = result
        self.status.setText(f"The public key of {info.name!r} is saved in {dest}.")
        self.message.emit(f"Exported the public key of {info.name}")

    def _on_export(self) -> None:
        info = self.selected_held()
        if info is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export public key", str(Path.home() / f"{info.name}.pub.pem"), "PEM (*.pem)"
        )
        if path:
            # The save dialog has asked before replacing a file that is there.
            self.export_selected(Path(path), overwrite=True)

    def removal_question(self, info: HeldKey) -> tuple[str, bool]:
        """The question before removing ``info``, and whether it is the only key of a
        source (then the answer button says so: "Remove anyway")."""
        use = self.use_of(f"keyring:{info.name}", info.fingerprint)
        only = [u.source for u in use.sources if u.only_key]
        text = (
            f"Remove key {info.name!r} ({info.fingerprint}) from custody? Backups wrapped only "
            "to this key cannot be opened without another copy of it."
        )
        if only:
            text += (
                f"\n\nIt is the only key of {_names(only)}: "
                f"{'its' if len(only) == 1 else 'their'} backups cannot be verified or "
                "restored after this, until another key is set."
            )
        others = [u.source for u in use.sources if u.position is not None and not u.only_key]
        if others:
            text += f"\n\n{_names(others)} also {'tries' if len(others) == 1 else 'try'} it."
        return text, bool(only)

    def _on_remove_key(self) -> None:
        info = self.selected_held()
        if info is None:
            return
        text, only = self.removal_question(info)
        box = QMessageBox(self)
        box.setObjectName("confirm-remove-key")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Remove key?")
        box.setText(text)
        remove = box.addButton(
            "Remove anyway" if only else "Remove", QMessageBox.ButtonRole.DestructiveRole
        )
        keep = box.addButton("Keep it", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.exec()
        agreed = box.clickedButton() is remove
        box.deleteLater()
        if agreed:
            self._start(_remove, self.store, info.name, done=self._on_removed)
        else:
            self.status.setText(f"Key {info.name!r} was kept.")

    def _on_removed(self, name: str) -> None:
        self.refresh()
        spec = f"keyring:{name}"
        still = [s.name for s in self._sources if spec in s.keys.key_specs]
        text = f"Key {name!r} was removed from custody."
        if still:
            # Left in their lists on purpose: the next run says the key is missing,
            # rather than trying the other keys as if nothing had changed.
            text += (
                f" {_names(still)} still {'lists' if len(still) == 1 else 'list'} {spec}: "
                "choose another key in the source's editor (Ctrl+E)."
            )
        self.status.setText(text)
        self.message.emit(f"Removed key {name}")

    # --- where each key is used ------------------------------------------------

    def set_sources(self, sources: list[SourceConfig]) -> None:
        self._sources = list(sources)
        self._show_usage()

    def use_of(self, spec: str, fingerprint: str) -> KeyUse:
        return key_use(spec, fingerprint, self._sources, self._opened)

    def reload_usage(self) -> None:
        """Read which key opened which versions (history, on a worker)."""
        if self.history is not None:
            self._start(_opened, self.history, done=self._on_opened)

    def _on_opened(self, opened: dict[str, list[Subject]]) -> None:
        self._opened = opened
        self._show_usage()

    def _show_usage(self) -> None:
        for r in range(self.inventory.rowCount()):
            use = self.use_of(self._cell(r, USE_AS), self._cell(r, FINGERPRINT))
            self.inventory.item(r, USED_BY).setText(use.names())
            self.inventory.item(r, USED_BY).setToolTip(use.text())
        row = self.selected_row()
        if row is None:
            self.usage.setText("Select a key to see the sources that try it.")
        else:
            use = self.use_of(self._cell(row, USE_AS), self._cell(row, FINGERPRINT))
            self.usage.setText(f"{self._cell(row, 0)}:\n{use.text()}")

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.reload_usage()

    # --- tokens ----------------------------------------------------------------

    def _on_list_token(self) -> None:
        # The usual modules installed here, as the command line finds them.
        found = present_modules()
        module = ""
        if found:
            module, ok = QInputDialog.getItem(
                self, "PKCS#11 module", "Token module:", [*found, OTHER_MODULE], 0, False
            )
            if not ok:
                return
        if module in ("", OTHER_MODULE):
            module, _ = QFileDialog.getOpenFileName(
                self, "PKCS#11 module of the token", "/usr/lib", "Modules (*.so *.dylib *.dll)"
            )
        if not module:
            return
        # First without a PIN: which tokens are there? A PIN then goes to the one token
        # the user names, once (a wrong PIN counts toward that token's lockout).
        self._start(_list_tokens, module, None, None, done=lambda ts: self._pick(module, ts))

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
        self._show_usage()
        self.status.setText(" ".join([f"{count} key(s) on {len(tokens)} token(s).", *notes]))

    # --- the current source ----------------------------------------------------

    def set_choice(self, choice: KeyChoice) -> None:
        self._choice = choice

    def choice(self) -> KeyChoice:
        return self._choice

    def add_spec(self, spec: str, module: str | None = None) -> None:
        """Add a key to the current source's list (last: the others keep their order)."""
        if spec and spec not in self._choice.key_specs:
            self._choice = replace(
                self._choice,
                key_specs=(*self._choice.key_specs, spec),
                pkcs11_module=module or self._choice.pkcs11_module,
            )
            self.keys_changed.emit(self._choice)
            self.status.setText(f"This source now tries {spec} too (its editor sets the order).")

    def _on_use(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.add_spec(self._cell(row, USE_AS))

    def shutdown(self) -> None:
        self.pool.waitForDone(5000)


def _export(_ctx: WorkerContext, store: KeyStore, name: str, dest: Path, ow: bool) -> Any:
    return store.export_public(name, dest, overwrite=ow), dest


def _remove(_ctx: WorkerContext, store: KeyStore, name: str) -> str:
    store.remove(name)
    return name


def _names(names: list[str]) -> str:
    quoted = [f"source {n!r}" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
