"""Sources as users have them (issue 12), in the app: a folder or an opened (or dropped)
file is a source; date-stamped nights are one backup with its nights as versions, and
Recover restores the newest one that verifies; storage errors and empty places say what
is wrong; Test connection; the demo's sources stay with the demo. Real backups (gzip |
openssl enc), real files, a real (moto) S3."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from fixtures.gui_flow import open_window
from fixtures.pipelines import openssl_variant
from fixtures.s3servers import free_port
from sealcheck.gui.demo import samples as demo
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceConfig, SourceStore, config_path
from sealcheck.gui.views.dialogs import SourceDialog
from sealcheck.gui.views.mainwindow import MainWindow

NIGHTS = ("2025-01-01", "2025-01-02", "2025-01-03")
NAME = "backup-full.sql.gz.aes256"


@pytest.fixture
def nights(tmp_path: Path, small_dump: Path) -> tuple[Path, Path]:
    """Three nights of one backup, a folder each; the newest night is cut short."""
    b = openssl_variant(small_dump, tmp_path / "made", name=NAME)
    assert b.passphrase_file is not None
    root = tmp_path / "backups"
    for night in NIGHTS:
        (root / night).mkdir(parents=True)
        shutil.copy(b.data, root / night / NAME)
    newest = root / NIGHTS[-1] / NAME
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    return root, b.passphrase_file


def test_a_folder_of_nights_is_one_backup_and_recover_restores_the_newest_good(
    qtbot, tmp_path, nights, small_dump
):
    root, passphrase = nights
    src = SourceConfig.local(root, keys=KeyChoice(passphrase_file=str(passphrase)))
    win = open_window(qtbot, tmp_path, [src])
    m = win.browser.model
    assert m.rowCount() == 1 and m.index(0, 0).data() == f"{root}/YYYY-MM-DD/{NAME}"
    assert m.index(0, 4).data() == "3"  # versions: the nights
    assert win.browser.select_set(f"{root}/YYYY-MM-DD/{NAME}")
    vm = win.browser.versions
    assert vm.headerData(1, Qt.Orientation.Horizontal) == "Night · version"
    assert [vm.index(r, 1).data() for r in range(vm.rowCount())] == list(reversed(NIGHTS))
    assert win.recover_act.isEnabled()
    dest = tmp_path / "recovered.sql"
    rec = win.recover_to(dest)
    assert rec is not None
    qtbot.waitUntil(lambda: rec.done, timeout=60000)
    result = rec.result
    assert result.restored is not None, result.text()
    assert result.restored.data.key == f"{root}/{NIGHTS[1]}/{NAME}"
    assert [r.data.key for r, _ in result.failed] == [f"{root}/{NIGHTS[2]}/{NAME}"]
    assert dest.read_bytes() == small_dump.read_bytes()
    assert "the newest version that verifies" in win.statusBar().currentMessage()
    # Each try is a job of its own, named for what it did; the bad night is FAILED.
    assert [r.state for r in win.queue.records] == [JobState.FAILED, JobState.DONE]
    assert win.queue.records[0].spec.title.startswith(f"Recover: Restore {root}/{NIGHTS[2]}/")


def test_an_opened_file_and_a_dropped_folder_become_sources(qtbot, tmp_path, nights):
    root, passphrase = nights
    win = MainWindow(SourceStore(tmp_path / "sources.json"))
    qtbot.addWidget(win)
    win.show()
    good = root / NIGHTS[0] / NAME
    with qtbot.waitSignal(win.browser.listing_finished, timeout=20000):
        win.open_paths([good])
    assert win.current_source() == SourceConfig.local(good)
    # A dated file opened alone is a series of one night, named as its folder's would be.
    assert win.browser.model.index(0, 0).data() == f"{root}/YYYY-MM-DD/{NAME}"
    win._on_keys_changed(KeyChoice(passphrase_file=str(passphrase)))
    win.browser.versions_view.selectRow(0)
    (job,) = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert job.state is JobState.DONE, job.message
    # The file itself, not an s3:// URI.
    assert job.spec.version.bucket is None and job.spec.version.data.key == str(good)
    # Dropping a folder on the window adds it (this session only, never saved).
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    drop = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(win.browser.listing_finished, timeout=20000):
        win.dropEvent(drop)
    assert win.current_source() == SourceConfig.local(root)
    assert len(win.session_sources) == 2 and win.saved == []
    qtbot.waitUntil(lambda: not win.browser.listing, timeout=10000)
    win.close()


def test_listing_errors_say_what_is_wrong_and_an_empty_prefix_what_is_near(
    qtbot, tmp_path, demo_s3_bucket
):
    good = demo_s3_bucket.source()
    wrong = SourceConfig(name="Typo", bucket=demo.BUCKET + "s", endpoint_url=good.endpoint_url)
    dead = SourceConfig(
        name="Dead", bucket=demo.BUCKET, endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    empty = SourceConfig(
        name="Empty", bucket=demo.BUCKET, prefix="securecircl/", endpoint_url=good.endpoint_url
    )
    win = open_window(qtbot, tmp_path, [wrong, dead, empty])
    banner = win.browser.banner
    assert banner.isVisibleTo(win)
    assert banner.text().startswith(
        f"⚠ Cannot list s3://{demo.BUCKET}s/: bucket not found: check the bucket name."
    )
    for row, words in ((1, "cannot reach the endpoint"), (2, None)):
        with qtbot.waitSignal(win.browser.listing_finished, timeout=30000):
            win.sources.setCurrentRow(row)
        qtbot.waitUntil(lambda: not win.browser.listing, timeout=10000)
        if words:
            assert banner.isVisibleTo(win) and words in banner.text(), banner.text()
            assert "download" not in banner.text()
    assert not banner.isVisibleTo(win)
    note = win.browser.empty_note
    assert note.isVisibleTo(win)
    assert note.text().startswith(f"Nothing under s3://{demo.BUCKET}/securecircl/.")
    assert f"One level up, s3://{demo.BUCKET}/ holds: " in note.text()
    assert "securecircle/" in note.text() and "naming rule" in note.text()


def test_test_connection_reports_versioning_count_or_the_error(qtbot, tmp_path, demo_s3_bucket):
    dlg = SourceDialog(demo_s3_bucket.source())
    qtbot.addWidget(dlg)

    def tested() -> str:
        dlg.test_btn.click()
        qtbot.waitUntil(lambda: not dlg.testing, timeout=30000)
        return dlg.test_result.text()

    got = tested()
    assert got.startswith("Connected: ") and "object versions under s3://" in got
    assert got.endswith("Versioning is enabled: every version is kept.")
    dlg.bucket.setText(demo.BUCKET + "s")
    assert "bucket not found: check the bucket name" in tested()
    dlg.is_folder.setChecked(True)
    assert not dlg.bucket.isVisibleTo(dlg) and dlg.folder.isVisibleTo(dlg)
    (tmp_path / "none").mkdir()
    dlg.folder.setText(str(tmp_path / "none"))
    assert tested().startswith(f"The folder {tmp_path}/none is empty.")
    v = dlg.value()
    assert (v.path, v.bucket, v.keys) == (str(tmp_path / "none"), "", dlg.keys.value())
    dlg.reject()


def test_sources_added_in_the_demo_stay_with_the_demo(qtbot, tmp_path, monkeypatch):
    """run_demo points the settings at its temp folder: a source added in its window is
    saved there (and goes with it), never to the user's saved sources."""
    for var in ("SEALCHECK_CONFIG_DIR", "SEALCHECK_DATA_DIR", "SEALCHECK_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    user_file = config_path()
    seen: dict[str, Path] = {}

    def window(
        endpoint: str, keys: dict[str, Path], bucket: str
    ) -> int:  # as run_demo_gui opens it
        win = MainWindow(session_sources=[])
        qtbot.addWidget(win)
        seen["store"] = win.store.path
        win.saved.append(SourceConfig(name="added in the demo", bucket="b"))
        win.store.save(win.saved)
        assert win.store.path.is_file()
        win.close()
        return 0

    @contextlib.contextmanager
    def no_store():
        yield "http://127.0.0.1:1"

    # Only the demo's set-up is under test: no samples, no S3.
    monkeypatch.setattr(demo, "make_samples", lambda work: ([], [], {}))
    monkeypatch.setattr(demo, "demo_s3", no_store)
    monkeypatch.setattr(demo, "_fill_bucket", lambda endpoint, uploads: None)
    monkeypatch.setattr("sealcheck.gui.demo.window.run_demo_gui", window)
    assert demo.run_demo(no_gui=False) == 0
    assert not user_file.exists()
    assert seen["store"].name == "sources.json" and "sealcheck-demo-" in str(seen["store"])
    assert not seen["store"].exists()  # removed with the demo's folder
    assert os.environ.get("SEALCHECK_CONFIG_DIR")  # (monkeypatch restores it after)


def test_a_missing_folder_says_so(qtbot, tmp_path):
    gone = tmp_path / "unmounted" / "backups"
    win = open_window(qtbot, tmp_path, [SourceConfig.local(gone)])
    text = win.browser.banner.text()
    assert text.startswith(f"⚠ Cannot list {gone}: no such file or folder: check the path."), text
    assert "Edit the source (Ctrl+E)" in text
