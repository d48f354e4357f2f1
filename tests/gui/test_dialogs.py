"""Dialogs, typed settings, the error words, the crash dialog and the Keys page."""

from __future__ import annotations

import json
import threading

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from sealcheck.core.errors import (
    AccessDenied,
    Cancelled,
    IncompleteDump,
    IntegrityError,
    KeyUnavailable,
    UsageError,
    WrongKey,
)
from sealcheck.core.keys.custody import KeyStore
from sealcheck.gui.demo.window import demo_keys
from sealcheck.gui.errortext import describe
from sealcheck.gui.state.settings import KeyChoice, SourceConfig, SourceStore, config_path
from sealcheck.gui.views.crash import CrashHandler, ExceptionDialog
from sealcheck.gui.views.dialogs import SecretDialog, SourceDialog
from sealcheck.gui.views.keyspage import KeysPage


def test_source_dialog_validates_and_returns_typed_settings(qtbot):
    dlg = SourceDialog()
    qtbot.addWidget(dlg)
    dlg.bucket.setText("s3://wrong/form")
    dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dlg.error.isVisibleTo(dlg) and "bucket name alone" in dlg.error.text()
    dlg.bucket.setText("backups")
    dlg.prefix.setText("mysql/")
    dlg.endpoint.setText("http://127.0.0.1:9000")
    dlg.rules.setPlainText(".dump.enc:.dump.key\n")
    with qtbot.waitSignal(dlg.accepted, timeout=1000, raising=True):
        dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    v = dlg.value()
    assert v == SourceConfig(
        name="backups",
        bucket="backups",
        prefix="mysql/",
        endpoint_url="http://127.0.0.1:9000",
        rules=(".dump.enc:.dump.key",),
    )
    assert all(w.accessibleName() for w in (dlg.name, dlg.bucket, dlg.prefix, dlg.rules))


def test_settings_round_trip_under_the_config_folder_without_secrets(tmp_path):
    path = config_path()
    assert str(path).startswith(str(tmp_path))  # the fixture redirected XDG_CONFIG_HOME
    src = SourceConfig(
        name="prod",
        bucket="b",
        profile="backup-reader",
        keys=KeyChoice(key_specs=("keyring:prod",), passphrase_file="/etc/backup/pass"),
    )
    SourceStore().save([src])
    assert SourceStore().load() == [src]
    stored = json.loads(path.read_text())
    assert stored["version"] == 1
    assert "password" not in path.read_text().lower() and "secret" not in path.read_text()


def test_settings_upgrade_from_version_0(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"sources": [{"name": "old", "bucket": "b"}]}))
    assert SourceStore(p).load() == [SourceConfig(name="old", bucket="b")]


def test_unreadable_settings_are_kept_aside_never_replaced(tmp_path, qtbot):
    from sealcheck.gui.views.mainwindow import MainWindow

    p = tmp_path / "sources.json"
    typo = '{"version": 1, "sources": [{"name": "prod", "bucket": "b"},]}'  # a hand edit
    p.write_text(typo)
    win = MainWindow(SourceStore(p))
    qtbot.addWidget(win)
    aside = win.store.set_aside
    assert aside is not None and aside.read_text() == typo and not p.exists()
    assert str(aside) in win.statusBar().currentMessage()
    win.store.save([SourceConfig(name="new", bucket="c")])
    assert aside.read_text() == typo  # the next save wrote a new file beside it


def test_settings_kept_as_a_symlink_are_written_where_it_points(tmp_path):
    real = tmp_path / "dotfiles" / "sources.json"
    real.parent.mkdir()
    SourceStore(real).save([SourceConfig(name="a", bucket="b")])
    link = tmp_path / "config" / "sources.json"
    link.parent.mkdir()
    link.symlink_to(real)
    SourceStore(link).save([SourceConfig(name="c", bucket="d")])
    assert link.is_symlink() and SourceStore(real).load() == [SourceConfig(name="c", bucket="d")]


def test_secret_dialog_hides_and_returns_the_text(qtbot):
    dlg = SecretDialog("Token PIN", "PIN of the token")
    qtbot.addWidget(dlg)
    dlg.field.setText("1234")
    assert dlg.field.echoMode() == dlg.field.EchoMode.Password
    assert dlg.secret() == b"1234"
    assert dlg.field.text() == ""


@pytest.mark.parametrize(
    ("exc", "headline", "layer"),
    [
        (WrongKey(), "The key does not open this backup", "unwrapping the key"),
        (
            IncompleteDump(),
            "The dump inside the backup is incomplete",
            "checking the dump is complete",
        ),
        (IntegrityError(layer=None), "The backup is corrupt or was tampered with", None),
        (AccessDenied(), "Access to the storage was denied", "downloading the backup"),
        (KeyUnavailable(), "The key needed for this backup is not available", "unwrapping the key"),
        (Cancelled(), "Cancelled", None),
        (UsageError(), "Sealcheck cannot do that as asked", None),
    ],
)
def test_one_mapping_from_errors_to_words(exc, headline, layer):
    msg = describe(exc)
    assert (msg.headline, msg.layer) == (headline, layer)
    assert msg.advice


def test_unexpected_exception_words():
    msg = describe(ZeroDivisionError("x"))
    assert "bug" in msg.headline and "ZeroDivisionError" in msg.details


def test_exception_dialog_copy_button(qtbot):
    dlg = ExceptionDialog(RuntimeError("boom"), "Traceback ...\nRuntimeError: boom")
    qtbot.addWidget(dlg)
    dlg.copy.click()
    text = QApplication.clipboard().text()
    assert "RuntimeError: boom" in text and "Sealcheck" in text


def test_thread_exceptions_reach_one_dialog(qtbot, capsys):
    handler = CrashHandler()
    handler.install()
    try:
        t = threading.Thread(target=lambda: 1 / 0, name="boom")
        t.start()
        t.join()
        qtbot.waitUntil(lambda: handler._open is not None, timeout=2000)
        t2 = threading.Thread(target=lambda: [][1], name="boom2")
        t2.start()
        t2.join()
        qtbot.waitUntil(lambda: len(handler.shown) == 2, timeout=2000)
        dlg = handler._open
        assert dlg is not None and "ZeroDivisionError" in dlg.text.toPlainText()
        assert "IndexError" in dlg.text.toPlainText()  # appended to the one dialog
        dlg.reject()
    finally:
        handler.uninstall()
        handler.deleteLater()
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_demo_keys_without_a_secure_keyring_are_passed_directly(tmp_path):
    import keyring
    from keyring.backends import fail

    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        pem = tmp_path / "k.pem"
        pem.write_text("not used")
        keys = {"rsa": pem, "pass": tmp_path / "p", "gpg": tmp_path / "g.asc"}
        choice, how, cleanup = demo_keys(keys, KeyStore(tmp_path / "keys"))
    finally:
        keyring.set_keyring(old)
    assert choice.key_specs == (str(pem),)
    assert "passed directly" in how
    cleanup()


def test_keys_page_imports_a_pem_into_the_keyring(qtbot, keyring_session, rsa_key, tmp_path):
    page = KeysPage(KeyStore(tmp_path / "keys"))
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.message, timeout=20000, raising=True):
        page.import_pem_file(rsa_key.private, "backup-2026")
    assert page.inventory.rowCount() == 1
    assert page.inventory.item(0, 4).text() == "keyring:backup-2026"
    page.table.selectRow(0)
    with qtbot.waitSignal(page.keys_changed, timeout=1000, raising=True) as sig:
        page.use_btn.click()
    assert sig.args[0].key_specs == ("keyring:backup-2026",)
    KeyStore(tmp_path / "keys").remove("backup-2026")


def test_keys_page_lists_tokens_and_sends_the_pin_to_the_chosen_one(
    qtbot, softhsm, tmp_path, monkeypatch
):
    """Two tokens: the listing asks which token the PIN is for and logs in to that one only;
    the other is listed with its public keys and a note (a PIN is never tried on it)."""
    from PySide6.QtWidgets import QInputDialog

    import sealcheck.gui.views.keyspage as keyspage

    page = KeysPage(KeyStore(tmp_path / "keys"))
    qtbot.addWidget(page)
    asked: list[list[str]] = []

    def pick(_parent, _title, _label, items, *_a):
        asked.append(list(items))
        return "backup", True

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(pick))
    monkeypatch.setattr(keyspage, "ask_secret", lambda *_a: softhsm.pin.encode())
    tokens = keyspage._list_tokens(None, softhsm.module, None, None)  # as the first look does
    assert len(tokens) >= 2
    page._pick(softhsm.module, tokens)
    qtbot.waitUntil(lambda: "key(s) on" in page.status.text() and not page._workers, timeout=20000)
    assert asked and "backup" in asked[0] and "No PIN: list public keys only" in asked[0]
    rows = [page.inventory.item(r, 0).text() for r in range(page.inventory.rowCount())]
    assert any(r.startswith("backup/") for r in rows)
    assert "pintest" in page.status.text()  # its note: the PIN was not tried there


def test_source_targets_set_in_the_dialog_are_what_the_cli_reads(qtbot, tmp_path):
    """Issue 14: a source's RTO/RPO, set on the source editor's Audit tab, saved in the
    sources file, read back by core as the CLI reads them, shown on the Audit page."""
    from sealcheck.core.records import targets
    from sealcheck.gui.views.auditview import AuditView, audit_options

    dlg = SourceDialog(SourceConfig(name="prod", bucket="b", prefix="mysql/"))
    qtbot.addWidget(dlg)
    assert dlg.tabs.tabText(2) == "A&udit"
    dlg.target_rto.setText("soon")
    dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dlg.error.isVisibleTo(dlg) and "Target RTO 'soon': give a positive" in dlg.error.text()
    dlg.target_rto.setText("3600")
    dlg.target_rpo.setText("26")
    with qtbot.waitSignal(dlg.accepted, timeout=1000, raising=True):
        dlg.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    v = dlg.value()
    assert (v.target_rto_s, v.target_rpo_h) == (3600.0, 26.0)
    store = SourceStore(tmp_path / "sources.json")
    store.save([v])
    assert store.load() == [v]
    assert targets.load(tmp_path / "sources.json") == (
        targets.SourceTargets("prod", "s3://b/mysql/", 3600.0, 26.0),
    )
    again = SourceDialog(v)
    qtbot.addWidget(again)
    assert (again.target_rto.text(), again.target_rpo.text()) == ("3600", "26")
    page = AuditView(None)
    qtbot.addWidget(page)
    assert "none set" in page.targets.text()
    page.set_source(audit_options(v))
    assert page.targets.text() == "Recovery targets: RTO 3600 s, RPO 26 h (Edit source → Audit)."
    assert page.campaign_options().targets_of("s3://b/mysql/x.sql.gz").rpo_from == "source prod"
