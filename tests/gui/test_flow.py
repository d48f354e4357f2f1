"""The whole flow on a real (moto) S3 server with the demo's backups, made by the real tools."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from fixtures.gui_flow import open_window, select_version
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceStore
from sealcheck.gui.views.mainwindow import MainWindow


def _run(qtbot, win: MainWindow, start) -> list:
    recs = start()
    assert recs
    recs = recs if isinstance(recs, list) else [recs]
    qtbot.waitUntil(
        lambda: all(r.state not in (JobState.QUEUED, JobState.RUNNING) for r in recs),
        timeout=30000,
    )
    return recs


def test_demo_source_select_version_verify_ok_shown(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    names = {win.browser.model.index(r, 0).data() for r in range(win.browser.model.rowCount())}
    assert {
        "securecircle/1567744961188141183.sql.gz",
        "rds-postgres/shop.sql.bz.enc",
        "dpb587/database.sql.gz.enc",
        "clustercontrol/backup-full.sql.gz.aes256",
    } <= names
    select_version(win, "rds-postgres/shop.sql.bz.enc", 1)
    (rec,) = _run(qtbot, win, win.verify_selected)
    assert rec.state is JobState.DONE, rec.message
    row = win.browser.versions_view.selectionModel().selectedRows()[0].row()
    assert win.browser.versions.index(row, 5).data().startswith("OK")
    html = win.browser.details.toPlainText()
    assert "Key unwrap" in html and "Decompressor check" in html and "Dump complete" in html
    assert "proved" in html
    assert "Verified" in win.job_panel.row(rec).status.text()


def test_every_demo_version_behaves_as_the_demo_expects(qtbot, tmp_path, demo_s3_bucket):
    """Several jobs queue on the one queue; the damaged ones fail with a clear reason."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    recs = []
    for e in demo_s3_bucket.expect:
        select_version(win, e.key, e.version_index)
        recs += win.verify_selected()
    assert sum(r.state is JobState.QUEUED for r in recs) >= len(recs) - 1  # one at a time
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=60000)
    for e, rec in zip(demo_s3_bucket.expect, recs, strict=True):
        assert (rec.state is JobState.DONE) == e.ok, (e, rec.message)
    cut = recs[2]  # securecircle v3: mysqldump killed mid-way
    assert (
        cut.message is not None
        and cut.message.headline == "The dump inside the backup is incomplete"
    )
    flipped = recs[-1]  # clustercontrol v2: a bit flipped in storage
    assert flipped.message is not None and flipped.message.layer == "decompressing"
    row = win.job_panel.row(flipped)
    assert "✘" in row.status.text() and row.toggle.isVisible()
    row.toggle.click()  # the Details expander
    assert row.details.isVisible() and "corrupt" in row.details.toPlainText()
    # ...and the failure is on the backup's row, in words.
    model = win.browser.model
    r = next(i for i in range(model.rowCount()) if model.index(i, 0).data() == e.key)
    assert model.index(r, model.RESULT_COLUMN).data().startswith("FAILED: ")


def test_cancel_mid_restore_leaves_nothing_behind(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.big_source()])
    assert win.browser.select_set("big/warehouse.sql.gz.enc")
    win.browser.versions_view.selectRow(0)
    out = tmp_path / "restore"
    out.mkdir()
    rec = win.restore_selected(out / "warehouse.sql")
    assert rec is not None
    qtbot.waitUntil(lambda: rec.progress is not None and rec.progress.done > 0, timeout=20000)
    assert rec.state is JobState.RUNNING
    row = win.job_panel.row(rec)
    assert "of" in row.status.text() and "/s" in row.status.text()  # stage, throughput
    t0 = time.monotonic()
    qtbot.mouseClick(row.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: rec.state is not JobState.RUNNING, timeout=2000)
    assert time.monotonic() - t0 < 2.0
    assert rec.state is JobState.CANCELLED
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=5000)
    assert list(out.iterdir()) == []  # no partial file, no temp file
    assert "Nothing was left behind" in row.status.text()


def test_restore_writes_the_file(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    select_version(win, "dpb587/database.sql.gz.enc", 0)
    dest = tmp_path / "db.sql"
    (rec,) = _run(qtbot, win, lambda: win.restore_selected(dest))
    assert rec.state is JobState.DONE, rec.message
    assert dest.read_text().rstrip().endswith("-- Dump completed on 2026-11-27  3:00:00")


def test_error_state_when_no_key_is_set(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source(KeyChoice())])
    select_version(win, "securecircle/1567744961188141183.sql.gz", 0)
    (rec,) = _run(qtbot, win, win.verify_selected)
    assert rec.state is JobState.FAILED
    assert rec.message is not None
    assert rec.message.headline == "The key needed for this backup is not available"
    assert "Keys page" in win.job_panel.row(rec).status.text()
    row = win.browser.versions_view.selectionModel().selectedRows()[0].row()
    cell = win.browser.versions.index(row, 5)
    # No key is a setup problem, not a verdict on the backup (test_verdict_states).
    assert cell.data().startswith("not checked: setup problem: The key needed")
    assert "Keys page" in cell.data(Qt.ItemDataRole.ToolTipRole)


def test_wrong_key_fails_in_words(qtbot, tmp_path, demo_s3_bucket, other_rsa_key):
    keys = KeyChoice(key_specs=(str(other_rsa_key.private),))
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source(keys)])
    select_version(win, "securecircle/1567744961188141183.sql.gz", 0)
    (rec,) = _run(qtbot, win, win.verify_selected)
    assert rec.state is JobState.FAILED
    assert rec.message is not None and rec.message.headline == "The key does not open this backup"
    assert "FAILED" in win.browser.details.toPlainText()


@pytest.mark.parametrize("bad_endpoint", ["http://127.0.0.1:9"])
def test_listing_error_shows_a_banner(qtbot, tmp_path, demo_s3_bucket, bad_endpoint):
    from dataclasses import replace

    src = replace(demo_s3_bucket.source(), endpoint_url=bad_endpoint)
    win = MainWindow(SourceStore(tmp_path / "s.json"), session_sources=[src])
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.browser.listing_finished, timeout=60000, raising=True) as blocker:
        win.show()
    assert blocker.args == [-1]
    assert win.browser.banner.isVisibleTo(win)
    # What is wrong, where: the endpoint, while listing (not "downloading the backup").
    text = win.browser.banner.text()
    assert text.startswith(f"⚠ Cannot list {src.uri}: cannot reach the endpoint."), text
    assert bad_endpoint in text and "download" not in text


def test_restore_several_versions_to_a_folder(qtbot, tmp_path, demo_s3_bucket):
    """Two versions selected: one file each, named after the object and its version."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    assert win.browser.select_set("dpb587/database.sql.gz.enc")
    vm = win.browser.versions
    rows = [r for r in range(vm.rowCount()) if vm.verifiable(r)]
    assert len(rows) >= 2
    sm = win.browser.versions_view.selectionModel()
    for r in rows[:2]:
        sm.select(
            vm.index(r, 0),
            sm.SelectionFlag.Select | sm.SelectionFlag.Rows,
        )
    out = tmp_path / "restored"
    out.mkdir()
    recs = _run(qtbot, win, lambda: win.restore_selected_to_folder(out))
    assert len(recs) == 2 and all(r.state is JobState.DONE for r in recs), [r.message for r in recs]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 and all(f.startswith("database.") and f.endswith(".sql") for f in files)
    assert files[0] != files[1]
    # Again: the files exist, nothing is overwritten, each job says so.
    again = _run(qtbot, win, lambda: win.restore_selected_to_folder(out))
    assert all(r.state is JobState.FAILED for r in again), [(r.state, r.message) for r in again]
    assert sorted(p.name for p in out.iterdir()) == files
