"""Choosing a key on a PKCS#11 token from a list: no module path or URI to type.

The usual modules installed here are offered as the command line finds them
(core's ``present_modules``), with Browse… for another. Tokens and their keys come
from core's inventory, first without a PIN (public objects). A PIN, typed in this
dialog, goes to the one selected token, once: a token that refuses it is listed with
its public keys and the inventory's note, and nothing tries it again (a wrong PIN
counts toward the token's lockout). The field is cleared as soon as it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.keys.pkcs11.inventory import TokenKey, TokenListing, list_tokens
from sealcheck.core.keys.pkcs11.modules import present_modules
from sealcheck.core.keys.pkcs11.uri import build_uri

from ..errortext import describe
from ..jobs.worker import Failure, Worker, WorkerContext
from .keydialogs import field_row, label_for, message_label, secret_field, typed_secret


@dataclass(frozen=True)
class TokenChoice:
    module: str
    key: TokenKey


def list_with_pin(_ctx: WorkerContext, module: str, pin: bytes | None, pin_for: str | None) -> Any:
    """Core's inventory on a worker; ``pin`` (typed once) goes to the ``pin_for`` token."""
    return list_tokens(module, typed_secret(pin, f"PIN of {pin_for}"), pin_for=pin_for)


class TokenPickerDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, modules: list[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a token key")
        self.setAccessibleName(self.windowTitle())
        self._pool = QThreadPool(self)
        self._running: Worker | None = None
        self._again = False  # look again when the listing running now ends
        self._tokens: list[TokenListing] = []
        self.module = QComboBox()
        self.module.setAccessibleName("Token module")
        self.module.view().setAccessibleName("Token module: choices")
        self.module.addItems(present_modules() if modules is None else modules)
        self.browse = QPushButton("Bro&wse…")
        self.browse.setAccessibleName("Browse for another token module")
        self.browse.clicked.connect(self._browse)
        mrow = field_row(self.module, self.browse)
        self.token = QComboBox()
        self.token.setAccessibleName("Token")
        self.token.view().setAccessibleName("Token: choices")
        self.pin = secret_field("Token PIN")
        self.pin.setPlaceholderText("only to see keys hidden until login")
        self.unlock = QPushButton("&Log in once")
        self.unlock.setToolTip(
            "Send the PIN to the selected token, once (a wrong PIN counts toward its lockout)"
        )
        self.unlock.clicked.connect(self.log_in)
        prow = field_row(self.pin, self.unlock)
        self.keys = QListWidget()
        self.keys.setAccessibleName("Keys on the token")
        form = QFormLayout()
        form.addRow(label_for("&Module:", self.module), mrow)
        form.addRow(label_for("&Token:", self.token), self.token)
        form.addRow(label_for("&PIN:", self.pin), prow)
        form.addRow(label_for("&Keys:", self.keys), self.keys)
        self.status = message_label("Token status")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("&Use this key")
        self.ok.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.module.currentTextChanged.connect(lambda _t: self.look())
        self.token.currentIndexChanged.connect(lambda _i: self._show_keys())
        self.keys.currentRowChanged.connect(lambda _r: self._can_use())
        if self.module.count():
            self.look()
        else:
            self.status.setText(
                "No usual PKCS#11 module is installed (OpenSC, Yubico ykcs11, SoftHSM2): "
                "Browse… for the token's module."
            )

    @property
    def busy(self) -> bool:
        return self._running is not None

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "PKCS#11 module of the token", "/usr/lib", "Modules (*.so *.dylib *.dll)"
        )
        if path:
            self.set_module(path)

    def set_module(self, path: str) -> None:
        if self.module.findText(path) < 0:
            self.module.addItem(path)
        self.module.setCurrentText(path)

    def look(self) -> None:
        """The module's tokens and their public keys, without a PIN."""
        self._start(None, None, "Looking for tokens…")

    def log_in(self) -> None:
        """Send the PIN to the selected token, once."""
        listing = self.current_token()
        pin = self.pin.text().encode()
        self.pin.clear()
        if listing is None or not pin:
            self.status.setText("Choose a token and type its PIN first.")
            return
        target = build_uri(token=listing.label, serial=listing.serial or None)
        self._start(pin, target, f"Logging in to token {listing.label!r} (once)…")

    def _start(self, pin: bytes | None, target: str | None, text: str) -> None:
        module = self.module.currentText()
        if not module:
            return
        if self._running is not None:
            self._again = pin is None  # a look at another module: once this one ends
            return
        self.status.setText(text)
        self.unlock.setEnabled(False)
        w = Worker(list_with_pin, module, pin, target)
        w.signals.returned.connect(lambda tokens: self._on_listed(tokens, module))
        w.signals.errored.connect(lambda f: self._on_failed(f, module))
        w.signals.finished.connect(self._ended)
        self._running = w
        w.start(self._pool)

    def _ended(self) -> None:
        self._running = None
        self.unlock.setEnabled(True)
        if self._again:
            self._again = False
            self.look()

    def _on_failed(self, failure: Failure, module: str) -> None:
        if module != self.module.currentText():
            return  # the user has moved on to another module
        msg = describe(failure.exc)
        self.status.setText(f"⚠ {msg.headline}. {msg.details}")

    def _on_listed(self, tokens: list[TokenListing], module: str) -> None:
        if module != self.module.currentText():
            return  # the user has moved on to another module
        keep = self.token.currentText()
        self._tokens = tokens
        self.token.blockSignals(True)
        self.token.clear()
        self.token.addItems(
            [f"{t.label} (serial {t.serial})" if t.serial else t.label for t in tokens]
        )
        if keep and self.token.findText(keep) >= 0:
            self.token.setCurrentText(keep)
        self.token.blockSignals(False)
        notes = [t.note for t in tokens if t.note]
        if not tokens:
            self.status.setText("No token is present in this module's slots.")
        else:
            count = sum(len(t.keys) for t in tokens)
            self.status.setText(" ".join([f"{count} key(s) on {len(tokens)} token(s).", *notes]))
        self._show_keys()

    def current_token(self) -> TokenListing | None:
        i = self.token.currentIndex()
        return self._tokens[i] if 0 <= i < len(self._tokens) else None

    def _show_keys(self) -> None:
        self.keys.clear()
        listing = self.current_token()
        for k in listing.keys if listing else ():
            usable = k.key_type.upper().startswith("RSA") and k.can_decrypt is not False
            name = k.object_label or (f"id {k.id_hex}" if k.id_hex else "?")
            text = f"{name} · {k.key_type}-{k.size_bits} · {k.fingerprint}"
            if not usable:
                text += " · cannot decrypt: not usable for backups"
            item = QListWidgetItem(text)
            item.setToolTip(f"{k.fingerprint}\n{k.uri}")
            item.setData(Qt.ItemDataRole.UserRole, k)
            if not usable:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.keys.addItem(item)
        self._can_use()

    def _can_use(self) -> None:
        self.ok.setEnabled(self.chosen() is not None)

    def select_key(self, object_label: str) -> None:
        for r in range(self.keys.count()):
            k = self.keys.item(r).data(Qt.ItemDataRole.UserRole)
            if k.object_label == object_label:
                self.keys.setCurrentRow(r)
                return
        raise LookupError(object_label)

    def chosen(self) -> TokenChoice | None:
        item = self.keys.currentItem()
        if item is None or not item.flags() & Qt.ItemFlag.ItemIsEnabled:
            return None
        return TokenChoice(self.module.currentText(), item.data(Qt.ItemDataRole.UserRole))

    def done(self, result: int) -> None:
        self.pin.clear()
        self._pool.waitForDone(30000)
        super().done(result)
