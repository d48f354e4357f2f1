"""The Keys page for security staff: import that can be retried, rename, export, copy
the full fingerprint, remove with a question, and where each key is used.

Real parts only: a gnome-keyring Secret Service on a private D-Bus (keyring_session),
keys made by openssl, backups by the real producer pipelines, a real history file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from fixtures.gui_flow import answer
from fixtures.pipelines import make_rsa_key, securecircle, sh
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.keys.custody import KeyringKey, KeyStore
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records.history import FILENAME, History
from sealcheck.core.storage.source import LocalFile
from sealcheck.gui.state.settings import KeyChoice, SourceConfig, SourceStore
from sealcheck.gui.views.keyspage import FINGERPRINT, USED_BY, KeysPage
from sealcheck.gui.views.mainwindow import MainWindow


@pytest.fixture
def page(qtbot, keyring_session, tmp_path: Path):
    store = KeyStore(tmp_path / "keys")
    p = KeysPage(store, history=History(tmp_path / "data" / FILENAME))
    qtbot.addWidget(p)
    yield p
    p.shutdown()
    for k in store.list():  # the keyring is the session's: leave no entry behind
        store.remove(k.name)


def unique(tmp_path: Path, stem: str) -> str:
    """Key names are keyring accounts shared by the test session: one per test."""
    return f"{stem}-{os.getpid()}-{tmp_path.name[-8:]}".replace("_", "")


def import_with(qtbot, page: KeysPage, path: Path, name: str, passphrase: str = ""):
    dlg = page.import_dialog(path)
    dlg.name.setText(name)
    dlg.passphrase.setText(passphrase)
    dlg.show()
    dlg.try_import()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20000)
    return dlg


def select(page: KeysPage, name: str) -> None:
    rows = [r for r in range(page.inventory.rowCount()) if page.inventory.item(r, 0).text() == name]
    page.table.selectRow(rows[0])


def test_a_wrong_passphrase_or_a_non_key_is_said_and_the_dialog_stays_for_a_retry(
    qtbot, page: KeysPage, tmp_path: Path
):
    key = make_rsa_key(tmp_path, "enc", 2048, passphrase="right horse")
    name = unique(tmp_path, "enc")
    dlg = import_with(qtbot, page, key.private, name, "wrong horse")
    assert dlg.isVisible() and dlg.imported is None
    assert "The passphrase does not open this private key" in dlg.problem.text()
    assert dlg.path.text() == str(key.private)  # kept: only the passphrase is typed again
    assert dlg.passphrase.text() == "" and dlg.passphrase.hasFocus()

    dlg.passphrase.setText("right horse")
    dlg.try_import()
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=20000)
    assert dlg.imported is not None and dlg.imported.name == name
    assert [page.inventory.item(r, 0).text() for r in range(page.inventory.rowCount())] == [name]

    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a key\n")
    dlg = import_with(qtbot, page, notes, unique(tmp_path, "notes"))
    assert dlg.isVisible() and "This file is not a private key" in dlg.problem.text()
    assert "passphrase" not in dlg.problem.text().lower()
    dlg.reject()

    plain = make_rsa_key(tmp_path, "plain", 2048)
    dlg = import_with(qtbot, page, plain.private, "two words")
    assert dlg.isVisible() and "key name 'two words': use letters" in dlg.problem.text()
    assert dlg.name.hasFocus() and dlg.path.text() == str(plain.private)
    dlg.reject()


def test_the_same_key_twice_is_refused_naming_the_first(
    qtbot, page: KeysPage, rsa_key, tmp_path: Path
):
    first = unique(tmp_path, "first")
    assert import_with(qtbot, page, rsa_key.private, first).imported is not None
    # The same key in another encoding: refused by its SPKI fingerprint, not its bytes.
    der = tmp_path / "same.der"
    sh(f"openssl pkey -in {rsa_key.private} -outform DER -out {der}", tmp_path)
    dlg = import_with(qtbot, page, der, unique(tmp_path, "second"))
    assert dlg.isVisible()
    assert "already held under another name" in dlg.problem.text()
    assert repr(first) in dlg.problem.text()
    assert dlg.path.text() == str(der)
    dlg.reject()
    assert [k.name for k in page.store.list()] == [first]


def test_fingerprint_is_whole_in_the_tooltip_and_the_copy(
    qtbot, page: KeysPage, rsa_key, tmp_path: Path
):
    name = unique(tmp_path, "fp")
    info = import_with(qtbot, page, rsa_key.private, name).imported
    assert info is not None and len(info.fingerprint) == len("SHA256:") + 64
    page.resize(300, 400)  # a narrow page elides the column, never the tooltip
    select(page, name)
    cell = page.inventory.item(0, FINGERPRINT)
    assert cell.text() == cell.toolTip() == info.fingerprint
    page.copy_btn.click()
    assert QGuiApplication.clipboard().text() == info.fingerprint
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(page.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    # QTest leaves Qt thinking Ctrl is still held (later tests' clicks would add to
    # selections); a key pressed without modifiers clears that.
    qtbot.keyClick(page.table, Qt.Key.Key_Shift)
    assert QGuiApplication.keyboardModifiers() == Qt.KeyboardModifier.NoModifier
    assert QGuiApplication.clipboard().text() == info.fingerprint  # Ctrl+C in the table too
    assert info.fingerprint in page.status.text()


def test_export_writes_the_public_key_whole_and_refuses_to_overwrite_unasked(
    qtbot, page: KeysPage, rsa_key, tmp_path: Path
):
    name = unique(tmp_path, "exp")
    import_with(qtbot, page, rsa_key.private, name)
    select(page, name)
    out = tmp_path / "out"
    out.mkdir()
    page.export_selected(out / "pub.pem")
    qtbot.waitUntil(lambda: "is saved in" in page.status.text(), timeout=10000)
    assert (out / "pub.pem").read_text() == rsa_key.public.read_text()
    (out / "pub.pem").write_text("older\n")
    page.export_selected(out / "pub.pem")
    qtbot.waitUntil(lambda: "already exists" in page.status.text(), timeout=10000)
    assert (out / "pub.pem").read_text() == "older\n"
    assert sorted(p.name for p in out.iterdir()) == ["pub.pem"]  # no temp file left


def test_removing_the_only_key_of_a_source_says_so_and_keep_keeps_it(
    qtbot, page: KeysPage, rsa_key, tmp_path: Path
):
    name = unique(tmp_path, "only")
    import_with(qtbot, page, rsa_key.private, name)
    spec = f"keyring:{name}"
    page.set_sources(
        [
            SourceConfig.local(tmp_path, "Nightly", keys=KeyChoice((spec,))),
            SourceConfig.local(tmp_path / "x", "Archive", keys=KeyChoice(("/k.pem", spec))),
        ]
    )
    select(page, name)
    assert page.inventory.item(0, USED_BY).text() == "Nightly, Archive"
    seen: list[str] = []
    answer("Keep it", seen)
    page.remove_key_btn.click()
    assert "It is the only key of source 'Nightly'" in seen[0]
    assert "source 'Archive' also tries it" in seen[0]
    assert [k.name for k in page.store.list()] == [name]
    answer("Remove anyway", seen)
    page.remove_key_btn.click()
    qtbot.waitUntil(lambda: f"Key {name!r} was removed" in page.status.text(), timeout=10000)
    assert page.inventory.rowCount() == 0 and not page.store.list()
    assert "source 'Nightly' and source 'Archive' still list keyring:" in page.status.text()


def test_usage_names_the_sources_and_the_versions_the_key_opened_last(
    qtbot, page: KeysPage, rsa_key, other_rsa_key, small_dump, tmp_path: Path
):
    name = unique(tmp_path, "used")
    import_with(qtbot, page, rsa_key.private, name)
    folder = tmp_path / "backups"
    backups = [securecircle(small_dump, folder, rsa_key, name=str(n)) for n in (101, 102)]
    assert page.history is not None
    key = KeyringKey(name, page.store)
    for b in backups:
        report = run(
            Job(
                data=LocalFile(b.data),
                secrets=Secrets(keys=[key]),
                wrapped_key=LocalFile(b.wrapped_key),
            )
        )
        assert report.ok
        page.history.record(report)
    page.set_sources(
        [
            SourceConfig.local(
                folder, "Nightly", keys=KeyChoice(("/other.pem", f"keyring:{name}"))
            ),
            SourceConfig.local(tmp_path / "elsewhere", "Empty"),
        ]
    )
    select(page, name)
    page.reload_usage()
    qtbot.waitUntil(lambda: "opened 2 versions last" in page.usage.text(), timeout=10000)
    assert "Nightly: tried 2nd of 2; opened 2 versions last" in page.usage.text()
    assert "Empty" not in page.usage.text()


def test_renaming_a_key_renames_it_in_every_source_that_names_it(
    qtbot, keyring_session, rsa_key, tmp_path: Path
):
    store = KeyStore(tmp_path / "keys")
    old, new = unique(tmp_path, "old"), unique(tmp_path, "new")
    store.import_pem(rsa_key.private.read_bytes(), old)
    saved = [
        SourceConfig.local(tmp_path / "a", "A", keys=KeyChoice((f"keyring:{old}", "/x.pem"))),
        SourceConfig.local(tmp_path / "b", "B", keys=KeyChoice(("/y.pem",))),
    ]
    for s in saved:
        Path(s.path or "").mkdir()
    sources = SourceStore(tmp_path / "sources.json")
    sources.save(saved)
    win = MainWindow(sources, key_store=store)
    qtbot.addWidget(win, before_close_func=lambda w: w.close_without_asking())
    try:
        select(win.keys_page, old)
        win.keys_page.rename_selected(new)
        qtbot.waitUntil(lambda: f"is now {new!r}" in win.keys_page.status.text(), timeout=10000)
        assert [k.name for k in store.list()] == [new]
        a, b = SourceStore(tmp_path / "sources.json").load()
        assert a.keys.key_specs == (f"keyring:{new}", "/x.pem")  # the order kept
        assert b.keys.key_specs == ("/y.pem",)
    finally:
        for k in store.list():
            store.remove(k.name)


def test_list_token_keys_offers_the_usual_modules_found_here(
    qtbot, softhsm, tmp_path: Path, monkeypatch
):
    from PySide6.QtWidgets import QInputDialog

    from sealcheck.core.keys.pkcs11.modules import present_modules

    if softhsm.module not in present_modules():
        pytest.skip("SoftHSM2 is not installed at one of the usual paths")
    page = KeysPage(KeyStore(tmp_path / "keys"))
    qtbot.addWidget(page)
    offered: list[list[str]] = []

    def pick(_parent, _title, _label, items, *_a):
        offered.append(list(items))
        if len(offered) == 1:
            return softhsm.module, True
        return "No PIN: list public keys only", True  # which token the PIN is for: none

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(pick))
    page.token_btn.click()
    qtbot.waitUntil(lambda: "key(s) on" in page.status.text() and not page._workers, timeout=20000)
    assert offered[0] == [*present_modules(), "Other module…"]
    rows = [page.inventory.item(r, 0).text() for r in range(page.inventory.rowCount())]
    assert "backup/rsakey" in rows
    page.shutdown()
