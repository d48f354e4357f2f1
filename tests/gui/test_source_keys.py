"""A source's keys in its editor, and token keys picked from a list.

Real parts: a SoftHSM2 token store made by softhsm2-util and pkcs11-tool (softhsm),
listed through core's inventory; nothing is typed but a PIN.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtWidgets import QLabel

from sealcheck.core.keys.custody import KeyStore
from sealcheck.core.keys.pkcs11.modules import present_modules
from sealcheck.gui.state.settings import KeyChoice, SourceConfig
from sealcheck.gui.views.dialogs import SourceDialog
from sealcheck.gui.views.tokenpicker import TokenPickerDialog


def _dialog(qtbot, tmp_path: Path, keys: KeyChoice) -> SourceDialog:
    src = SourceConfig.local(tmp_path, "Nightly", keys=keys)
    dlg = SourceDialog(src, key_store=KeyStore(tmp_path / "keys"))
    qtbot.addWidget(dlg)
    return dlg


def _label_of(dlg: SourceDialog, field) -> str:
    (label,) = [w for w in dlg.findChildren(QLabel) if w.buddy() is field]
    return label.text().replace("&", "")


def test_the_editor_orders_the_keys_and_labels_the_file_fields(qtbot, tmp_path: Path):
    dlg = _dialog(
        qtbot,
        tmp_path,
        KeyChoice(("keyring:a", "/keys/b.pem", "keyring:c"), passphrase_file="/etc/pass"),
    )
    ed = dlg.keys
    assert ed.key_specs() == ("keyring:a", "/keys/b.pem", "keyring:c")
    assert _label_of(dlg, ed.passfile).startswith("Passphrase file")
    assert _label_of(dlg, ed.gpgfile).startswith("OpenPGP secret key")
    assert ed.passfile_browse.text() == ed.gpg_browse.text() == "Browse…"
    assert ed.passfile.text() == "/etc/pass"
    ed.specs.setCurrentRow(2)
    ed.move_selected(-1)
    ed.move_selected(-1)
    ed.move_selected(-1)  # already first: stays
    assert ed.key_specs() == ("keyring:c", "keyring:a", "/keys/b.pem")
    ed.specs.setCurrentRow(1)
    ed.remove_selected()
    ed.gpgfile.setText("/keys/ops.asc")
    ed.passfile.setText("")
    keys = dlg.value().keys
    assert keys.key_specs == ("keyring:c", "/keys/b.pem")
    assert (keys.passphrase_file, keys.gpg_key_file) == (None, "/keys/ops.asc")
    assert not ed.add_held_btn.isEnabled()  # nothing held in this store yet


def test_a_token_key_is_picked_from_the_list_with_the_pin_sent_once(qtbot, softhsm, tmp_path: Path):
    # The usual modules are found as the CLI finds them, SoftHSM2 among them.
    if softhsm.module in present_modules():
        offered = TokenPickerDialog()
        qtbot.addWidget(offered)
        assert offered.module.findText(softhsm.module) >= 0
        qtbot.waitUntil(lambda: not offered.busy, timeout=20000)
        offered.reject()

    dlg = _dialog(qtbot, tmp_path, KeyChoice(("keyring:first",)))
    picker = dlg.keys.token_picker()
    picker.set_module(softhsm.module)
    qtbot.waitUntil(lambda: not picker.busy and picker.token.count() >= 2, timeout=20000)
    tokens = [picker.token.itemText(i) for i in range(picker.token.count())]
    picker.token.setCurrentIndex(next(i for i, t in enumerate(tokens) if t.startswith("backup")))
    picker.pin.setText(softhsm.pin)
    picker.log_in()
    assert picker.pin.text() == ""  # used once, then gone from the field
    qtbot.waitUntil(lambda: not picker.busy, timeout=20000)
    assert picker.current_token() is not None and picker.current_token().logged_in
    texts = [picker.keys.item(r).text() for r in range(picker.keys.count())]
    assert any(t.startswith("signonly") and "cannot decrypt" in t for t in texts)
    picker.select_key("rsakey")
    chosen = picker.chosen()
    assert chosen is not None and chosen.key.fingerprint.startswith("SHA256:")
    assert chosen.key.fingerprint in picker.keys.currentItem().text()  # never cut short
    picker.accept()
    keys = dlg.value().keys
    assert keys.key_specs == ("keyring:first", chosen.key.uri)
    assert keys.pkcs11_module == softhsm.module


def test_a_refused_pin_is_not_tried_again(qtbot, softhsm, caplog):
    caplog.set_level(logging.DEBUG)
    picker = TokenPickerDialog(modules=[softhsm.module])
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: not picker.busy and picker.token.count() >= 2, timeout=20000)
    labels = [picker.token.itemText(i) for i in range(picker.token.count())]
    picker.token.setCurrentIndex(next(i for i, t in enumerate(labels) if t.startswith("pintest")))
    picker.pin.setText("0007391")  # a wrong PIN that is found nowhere else
    picker.log_in()
    qtbot.waitUntil(lambda: not picker.busy, timeout=20000)
    assert "PIN not accepted for token 'pintest'" in picker.status.text()
    assert "not retried" in picker.status.text()
    assert picker.pin.text() == ""
    picker.log_in()  # nothing typed again: nothing is sent
    assert not picker.busy and "type its PIN first" in picker.status.text()
    picker.reject()
    assert "0007391" not in caplog.text  # never logged, at any level


def test_the_source_editor_mnemonics_are_unique_across_its_tabs(qtbot, tmp_path: Path):
    import re

    from PySide6.QtWidgets import QAbstractButton

    dlg = _dialog(qtbot, tmp_path, KeyChoice())
    texts = [dlg.tabs.tabText(i) for i in range(dlg.tabs.count())]
    texts += [b.text() for b in dlg.findChildren(QAbstractButton)]
    texts += [lab.text() for lab in dlg.findChildren(QLabel) if lab.buddy() is not None]
    keys = [m.group(1).casefold() for t in texts if (m := re.search(r"&([^&\s])", t))]
    assert len(keys) == len(set(keys)), sorted(keys)
