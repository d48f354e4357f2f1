"""No lost work: closing the window or "Cancel jobs" while a restore runs asks first;
SIGTERM/SIGINT close the app as the close button does, without asking.

A real restore of the ~48 MB backup on the moto S3 (gzip | openssl enc, real tools)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from fixtures.gui_flow import answer, open_window, select_version
from sealcheck.gui.app import run_window
from sealcheck.gui.jobs.queue import JobRecord, JobState
from sealcheck.gui.state.settings import SourceStore
from sealcheck.gui.views.mainwindow import MainWindow
from sealcheck.gui.views.stopjobs import lost_work

BIG_KEY = "big/warehouse.sql.gz.enc"  # conftest.BIG_KEY: ~48 MB, a restore of a few seconds


def _restore_running(qtbot, win: MainWindow, dest: Path) -> JobRecord:
    select_version(win, BIG_KEY, 0)
    rec = win.restore_selected(dest)
    assert rec is not None
    qtbot.waitUntil(
        lambda: rec.progress is not None and (rec.progress.fraction or 0) > 0.02, timeout=20000
    )
    assert rec.state is JobState.RUNNING
    return rec


def test_closing_during_a_restore_asks_and_keep_running_keeps_it(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.big_source()])
    dest = tmp_path / "restored.sql"
    rec = _restore_running(qtbot, win, dest)
    text = lost_work(win.queue)
    assert text is not None and text.startswith("1 restore is running (") and " %)" in text

    seen: list[str] = []
    answer("Keep running", seen)
    assert not win.close()
    assert win.isVisible() and rec.state is JobState.RUNNING
    assert len(seen) == 1 and seen[0].startswith("1 restore is running (")
    assert seen[0].endswith("%). Stop it and quit?")

    answer("Stop and quit", seen)
    assert win.close()  # waited for the job to stop; its last signals follow
    qtbot.waitUntil(lambda: rec.state is JobState.CANCELLED, timeout=5000)
    assert not dest.exists() and not list(tmp_path.glob("restored.sql*"))  # no partial file


def test_cancel_jobs_during_a_restore_asks_first(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.big_source()])
    rec = _restore_running(qtbot, win, tmp_path / "restored.sql")
    seen: list[str] = []
    answer("Keep running", seen)
    win.cancel_act.trigger()
    assert rec.state is JobState.RUNNING and seen[0].endswith("%). Stop it?")
    answer("Stop it", seen)
    win.cancel_act.trigger()
    qtbot.waitUntil(lambda: rec.state is JobState.CANCELLED, timeout=10000)
    assert len(seen) == 2
    assert win.close()  # nothing runs any more: no question


def test_a_verify_is_stopped_without_a_question(qtbot, tmp_path, demo_s3_bucket):
    """A verify writes nothing and can simply run again."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.big_source()])
    select_version(win, BIG_KEY, 0)
    (rec,) = win.verify_selected()
    qtbot.waitUntil(lambda: rec.state is JobState.RUNNING, timeout=10000)
    assert lost_work(win.queue) is None
    assert win.close()
    qtbot.waitUntil(lambda: rec.state is JobState.CANCELLED, timeout=5000)


def test_sigterm_closes_the_app_like_its_close_button(qtbot, tmp_path, demo_s3_bucket):
    """run_window as ``sealcheck gui`` runs it: SIGTERM mid-restore (the question open
    would block a logout) stops the restore, leaves no partial file and exits 143."""
    dest = tmp_path / "restored.sql"
    made: list[MainWindow] = []
    recs: list[JobRecord] = []

    def make() -> MainWindow:
        win = MainWindow(
            SourceStore(tmp_path / "sources.json"), session_sources=[demo_s3_bucket.big_source()]
        )
        made.append(win)
        return win

    def step() -> None:
        win = made[0]
        if not recs:
            if win.browser.listing or not win.browser.select_set(BIG_KEY):
                QTimer.singleShot(50, step)
                return
            win.browser.versions_view.selectRow(0)
            rec = win.restore_selected(dest)
            assert rec is not None
            recs.append(rec)
        rec = recs[0]
        if rec.progress is None or (rec.progress.fraction or 0) < 0.02:
            QTimer.singleShot(20, step)
            return
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    watchdog = QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(lambda: QApplication.exit(99))
    watchdog.start(60_000)
    try:
        code = run_window(make, on_shown=step)
    finally:
        watchdog.stop()
    assert code == 128 + signal.SIGTERM
    win = made[0]
    assert not win.isVisible()
    assert recs
    qtbot.waitUntil(lambda: recs[0].state is JobState.CANCELLED, timeout=5000)
    assert not dest.exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are given back
    assert signal.set_wakeup_fd(-1) == -1  # the app gave the wakeup fd back
    win.deleteLater()
