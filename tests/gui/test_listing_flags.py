"""What the app says about a bucket before any verification (issue 12): objects that are
not backups are listed as such and never offered for verification, a bucket without
versioning is flagged, and a version id is never shown as a literal "null". A real (moto)
S3 bucket, a real backup (real gzip/openssl)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from fixtures.gui_flow import open_window
from fixtures.pipelines import openssl_variant, sh
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceConfig

BACKUP = "nightly/db.sql.gz.enc"


@pytest.fixture
def plain_bucket(demo_s3_bucket, small_dump: Path, tmp_path: Path) -> SourceConfig:
    """A bucket with versioning never enabled: a README, a photo and one backup."""
    name = f"plain-{abs(hash(str(tmp_path))) % 10**8}"
    c = make_client(S3Settings(endpoint_url=demo_s3_bucket.endpoint, region="us-east-1"))
    c.create_bucket(Bucket=name)
    c.put_object(Bucket=name, Key="readme.txt", Body=b"This bucket holds the backups.\n")
    c.put_object(Bucket=name, Key="photos/cat.jpg", Body=b"\xff\xd8\xff\xe0" + bytes(300))
    b = openssl_variant(small_dump, tmp_path / "b", name="db.sql.gz.enc")
    c.put_object(Bucket=name, Key=BACKUP, Body=b.data.read_bytes())
    return SourceConfig(
        name="Plain bucket",
        bucket=name,
        endpoint_url=demo_s3_bucket.endpoint,
        region="us-east-1",
        keys=KeyChoice(passphrase_file=str(b.passphrase_file)),
    )


def _row(win, name: str) -> int:
    m = win.browser.model
    return next(r for r in range(m.rowCount()) if m.index(r, 0).data() == name)


def test_non_backups_are_listed_as_such_and_never_offered(qtbot, tmp_path, plain_bucket):
    win = open_window(qtbot, tmp_path, [plain_bucket])
    m = win.browser.model
    for name in ("readme.txt", "photos/cat.jpg"):
        r = _row(win, name)
        cells = [m.index(r, c).data() for c in range(m.columnCount())]
        assert cells[5] == "not a recognised backup", cells
        assert "encrypted" not in " ".join(cells)
        assert "not offered for verification" in m.index(r, 0).data(Qt.ItemDataRole.ToolTipRole)
        assert win.browser.select_set(name)
        vm = win.browser.versions
        assert vm.rowCount() == 1 and not vm.verifiable(0)
        win.browser.versions_view.selectRow(0)
        assert not win.verify_act.isEnabled() and not win.restore_test_act.isEnabled()
        assert win.verify_selected() == [] and win.queue.records == []
    # A backup beside them is offered as ever.
    assert m.index(_row(win, BACKUP), 5).data() == "gzip, encrypted"
    win.browser.problems.setChecked(True)  # a README is no problem either
    assert win.browser.proxy.rowCount() == 0


def test_an_unversioned_bucket_is_flagged_and_null_is_never_shown(qtbot, tmp_path, plain_bucket):
    win = open_window(qtbot, tmp_path, [plain_bucket])
    note = win.browser.versioning_note
    assert note.isVisibleTo(win)
    assert note.text().startswith(f"⚠ Bucket {plain_bucket.bucket}: versioning is off")
    assert "overwrite or a delete destroys the earlier backup" in note.text()
    assert win.browser.select_set(BACKUP)
    vm = win.browser.versions
    assert vm.index(0, 1).data() == "(unversioned)"
    win.browser.versions_view.selectRow(0)
    assert win.verify_act.isEnabled()
    (rec,) = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert rec.state is JobState.DONE, rec.message
    shown = win.browser.details.toPlainText()
    assert "Version (unversioned)" in shown and "null" not in shown


def test_a_versioned_bucket_has_no_flag(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    assert not win.browser.versioning_note.isVisibleTo(win)


def test_a_sidecar_is_shown_with_its_backup_and_checked(qtbot, tmp_path, plain_bucket):
    """``sha256sum X > X.sha256`` beside the backup (issue 18): no row of its own, named in
    the backup's tooltip, and Verify says it matches."""
    c = make_client(S3Settings(endpoint_url=plain_bucket.endpoint_url, region="us-east-1"))
    folder = tmp_path / "sum"
    folder.mkdir()
    (folder / "db.sql.gz.enc").write_bytes(
        c.get_object(Bucket=plain_bucket.bucket, Key=BACKUP)["Body"].read()
    )
    sh("sha256sum db.sql.gz.enc > db.sql.gz.enc.sha256", folder)
    body = (folder / "db.sql.gz.enc.sha256").read_bytes()
    c.put_object(Bucket=plain_bucket.bucket, Key=BACKUP + ".sha256", Body=body)
    win = open_window(qtbot, tmp_path, [plain_bucket])
    m = win.browser.model
    names = [m.index(r, 0).data() for r in range(m.rowCount())]
    assert BACKUP + ".sha256" not in names
    assert "Sidecars: db.sql.gz.enc.sha256" in m.index(_row(win, BACKUP), 0).data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert win.browser.select_set(BACKUP)
    win.browser.versions_view.selectRow(0)
    (rec,) = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert rec.state is JobState.DONE, rec.message
    assert "sidecar db.sql.gz.enc.sha256: SHA-256 matches" in win.browser.details.toPlainText()
