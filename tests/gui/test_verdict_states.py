"""A run that could not check a version is not a verdict on it, in the app (issue 12):
the row keeps its last real verdict with a note, in a neutral colour when there is none,
"Problems only" leaves it out, the Details pane gives the reason and what to do, and the
history keeps it apart. The app is driven against a real (moto) S3 with the demo's
backups; the setup problems are real: a key that is not there, an endpoint that does not
answer, a restore-test server that does not exist."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from PySide6.QtCore import Qt

from fixtures.common import listed_file
from fixtures.dumps import mysql_like
from fixtures.gui_flow import open_window, select_version
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.records.history import History
from sealcheck.core.records.verdict import Verdict
from sealcheck.core.storage.listing import ObjectVersion
from sealcheck.gui.jobs.queue import JobQueue, JobState
from sealcheck.gui.jobs.spec import JobSpec, RestoreTestSpec
from sealcheck.gui.look import theme
from sealcheck.gui.state.results import ResultStore
from sealcheck.gui.state.settings import KeyChoice
from sealcheck.gui.state.versions import VersionRow
from sealcheck.gui.views.details import DetailsPane
from sealcheck.gui.views.jobpanel import JobPanel
from sealcheck.gui.views.mainwindow import MainWindow

SC = "securecircle/1567744961188141183.sql.gz"
RDS = "rds-postgres/shop.sql.bz.enc"  # RSA-wrapped data key; both versions good
CC = "clustercontrol/backup-full.sql.gz.aes256"
LATEST_NOTE = "latest attempt could not check: setup problem"


def _verify(qtbot, win: MainWindow, backup: str, index: int):
    select_version(win, backup, index)
    (rec,) = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    return rec


def _result_cell(win: MainWindow):
    vm = win.browser.versions
    return vm.index(win.browser.selected_version_rows()[0], vm.RESULT_COLUMN)


def _set_row(win: MainWindow, name: str) -> int:
    m = win.browser.model
    return next(r for r in range(m.rowCount()) if m.index(r, 0).data() == name)


def _shown_sets(win: MainWindow) -> set[str]:
    p = win.browser.proxy
    return {p.index(r, 0).data() for r in range(p.rowCount())}


def test_a_setup_problem_keeps_the_last_ok_beside_it(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    newest = len([e for e in demo_s3_bucket.expect if e.key == RDS]) - 1
    ok = _verify(qtbot, win, RDS, newest)  # the newest version, which the Backups row shows
    assert ok.state is JobState.DONE, ok.message

    # The RSA key is gone from the source (only a passphrase file left): the backup's
    # data key is RSA-wrapped, so the run cannot check it, and core says so (exit 2).
    keys = demo_s3_bucket.keys
    win._on_keys_changed(KeyChoice(passphrase_file=str(keys["pass"])))
    rec = _verify(qtbot, win, RDS, newest)
    assert rec.state is JobState.FAILED and rec.message is not None
    assert rec.message.verdict is Verdict.NOT_CHECKED
    assert rec.report is not None and rec.report.exit_code == 2
    status = win.job_panel.row(rec).status.text()
    assert status.startswith("⚠ Not checked (setup problem): ") and "✘" not in status

    # The versions row: the last verdict, with a note; green for that verdict.
    cell = _result_cell(win)
    text = cell.data()
    assert text.startswith("OK (") and LATEST_NOTE in text and "FAILED" not in text
    assert cell.data(Qt.ItemDataRole.ForegroundRole).color() == theme.status_color(theme.Tone.OK)
    tip = cell.data(Qt.ItemDataRole.ToolTipRole)
    assert "could not check" in tip and "Keys page" in tip
    # The Backups row too, and it is no problem.
    m = win.browser.model
    r = _set_row(win, RDS)
    assert m.index(r, m.RESULT_COLUMN).data() == f"OK · {LATEST_NOTE}"
    # The Details pane: the reason, what to do, and the verdict that still stands.
    shown = win.browser.details.toPlainText()
    assert "not checked: setup problem" in shown and "no verdict on the backup" in shown
    assert "The key needed for this backup is not available" in shown
    assert "What to do:" in shown and "Keys page" in shown
    assert "the last verdict below still stands" in shown
    assert "verified: every layer below holds" in shown and "FAILED" not in shown
    html = win.browser.details.toHtml()
    assert theme.status_color(theme.Tone.NEUTRAL, win.browser.details.palette()).name() in html
    win.browser.problems.setChecked(True)  # (this changes the selection)
    assert RDS not in _shown_sets(win)
    win.browser.problems.setChecked(False)

    # The history: both runs, told apart; the newest verdict is still the OK.
    hist = win.results.history
    assert hist is not None
    entries = hist.entries(source=RDS)
    assert [e.verdict for e in entries] == [Verdict.NOT_CHECKED, Verdict.OK]
    [(_k, last)] = hist.latest_by_version(source=RDS, verdicts_only=True).items()
    assert last.id == entries[1].id

    # After a restart the row reads the same from the history.
    win.close()
    again = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    r = _set_row(again, RDS)
    assert again.browser.model.index(r, again.browser.model.RESULT_COLUMN).data() == (
        f"OK · {LATEST_NOTE}"
    )


def test_no_verdict_yet_reads_not_checked_in_a_neutral_colour(qtbot, tmp_path, demo_s3_bucket):
    keys = demo_s3_bucket.keys
    win = open_window(
        qtbot, tmp_path, [demo_s3_bucket.source(KeyChoice(passphrase_file=str(keys["pass"])))]
    )
    rec = _verify(qtbot, win, SC, 0)
    assert rec.message is not None and not rec.message.backup_is_bad
    cell = _result_cell(win)
    assert cell.data().startswith("not checked: setup problem: The key needed")
    neutral = theme.status_color(theme.Tone.NEUTRAL)
    assert cell.data(Qt.ItemDataRole.ForegroundRole).color() == neutral
    assert neutral not in (
        theme.status_color(theme.Tone.OK),
        theme.status_color(theme.Tone.FAILED),
    )
    shown = win.browser.details.toPlainText()
    assert "What the attempt reached" in shown and "FAILED" not in shown
    assert "Key unwrap" in shown and "could not check" in shown
    assert "not reached (the key step could not run)" in shown  # later layers, in words


def test_no_key_at_all_is_not_a_failure(qtbot, tmp_path, demo_s3_bucket):
    """No key set for the source: the job cannot even start, and says what to do."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source(KeyChoice())])
    rec = _verify(qtbot, win, SC, 0)
    assert rec.state is JobState.FAILED and rec.message is not None
    cell = _result_cell(win)
    assert cell.data().startswith("not checked: setup problem: The key needed")
    win.browser.problems.setChecked(True)
    assert SC not in _shown_sets(win)


def test_an_endpoint_that_stops_answering_is_not_a_verdict(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    ok = _verify(qtbot, win, CC, 0)
    assert ok.state is JobState.DONE, ok.message
    # The store stops answering after the listing: nothing listens on port 9.
    src = win.current_source()
    assert src is not None
    win._replace_source(src, replace(src, endpoint_url="http://127.0.0.1:9"))
    rec = _verify(qtbot, win, CC, 0)
    assert rec.state is JobState.FAILED and rec.message is not None
    assert rec.message.verdict is Verdict.NOT_CHECKED
    assert rec.message.headline == "Cannot reach the endpoint"  # what is wrong, in words
    text = _result_cell(win).data()
    assert text.startswith("OK (") and LATEST_NOTE in text
    shown = win.browser.details.toPlainText()
    assert "not checked: setup problem" in shown and "endpoint" in shown


def test_wrong_passphrase_advice_fits_a_passphrase_backup(qtbot, tmp_path, demo_s3_bucket):
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    win = open_window(
        qtbot, tmp_path, [demo_s3_bucket.source(KeyChoice(passphrase_file=str(wrong)))]
    )
    rec = _verify(qtbot, win, CC, 0)
    # A key that does not open the backup stays a verdict (core/records/verdict.py says why).
    assert rec.state is JobState.FAILED and rec.message is not None and rec.message.backup_is_bad
    assert "passphrase file" in rec.message.advice and "wrapped-key" not in rec.message.advice
    shown = win.browser.details.toPlainText()
    assert "FAILED" in shown and "wrapped-key version" not in shown
    assert "not reached (the key step failed)" in shown and "not checked: an earlier" not in shown


def test_a_restore_test_server_that_is_not_there(qtbot, tmp_path, rt_state, monkeypatch):
    """Nothing was created on the server, so the pane says so (never "dropped")."""
    monkeypatch.setenv("SEALCHECK_STATE_DIR", str(rt_state))
    b = openssl_variant(mysql_like(tmp_path / "dump.sql", rows=50), tmp_path / "b")
    assert b.passphrase_file is not None
    results = ResultStore(History(tmp_path / "h" / "history.sqlite3"))
    queue = JobQueue(results)
    panel = JobPanel(queue)
    qtbot.addWidget(panel)
    try:
        sock = tmp_path / "none.sock"
        spec = JobSpec(
            "restore-test",
            listed_file(b.data),
            title="Restore test",
            restore_test=RestoreTestSpec(server=f"mysql://nobody@localhost/?socket={sock}"),
        )
        secrets = Secrets(passphrase=bytearray(b.passphrase_file.read_bytes()))
        rec = queue.submit(spec, secrets)
        qtbot.waitUntil(lambda: not queue.busy, timeout=120_000)
        assert rec.state is JobState.FAILED and rec.message is not None
        assert rec.message.verdict is Verdict.NOT_CHECKED
        assert panel.row(rec).status.text().startswith("⚠ Not checked (setup problem)")
        state = results.state((spec.object_key, None))
        assert state is not None and state.verdict is None and state.attempt is not None
        rt = state.attempt.restore_test
        assert rt is not None and rt.cleanup == () and rt.mode == "server"
        pane = DetailsPane()
        qtbot.addWidget(pane)
        v = ObjectVersion(spec.object_key, None, 1, dt.datetime.now(dt.UTC), None, True)
        pane.show_version(VersionRow(v, None, None), state)
        shown = pane.toPlainText()
        assert "dropped" not in shown
        assert "no scratch database was created on it" in shown
        assert "Restore test not checked: setup problem" in shown
        assert "FAILED" not in shown
    finally:
        assert queue.shutdown(30)
        queue.deleteLater()
        results.deleteLater()


def test_a_lone_outcome_shows_as_its_state(qapp, tmp_path):
    """Callers that hand the pane a single outcome still get the right state."""
    from sealcheck.core.records.report import ErrorInfo
    from sealcheck.gui.errortext import describe
    from sealcheck.gui.state.results import Outcome
    from sealcheck.gui.views.details import render

    err = ErrorInfo("TransientStorageError", "source", "cannot reach the S3 endpoint", 2)
    o = Outcome(None, describe(err), dt.datetime.now(dt.UTC))
    v = ObjectVersion("k.sql.gz", "null", 1, dt.datetime.now(dt.UTC), None, False)
    html = render(VersionRow(v, None, None), o)
    assert "not checked: setup problem" in html and "FAILED" not in html
    assert "(unversioned)" in html and ">null<" not in html
