"""The restore test in the desktop app: the wizard, real tests through the one queue
(throwaway MariaDB servers started from this machine's binaries), the Details pane,
Cancel, and the main window's action. Backups are made the seed way, by the real tools."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLineEdit,
    QMessageBox,
    QToolBar,
    QWizard,
)

from fixtures.common import listed_file
from fixtures.dumps import mysql_like
from fixtures.gui_flow import open_window, select_version
from fixtures.pipelines import RsaKey, securecircle
from fixtures.restoretest import hostile_mysql_dump
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import SealcheckError
from sealcheck.core.keys.spec import KeyContext, open_key
from sealcheck.core.records.restore_result import RestoreTestResult, TableResult
from sealcheck.core.restoretest.drift import compare
from sealcheck.core.restoretest.engines.mariadb import find_tools
from sealcheck.core.storage.listing import ObjectVersion
from sealcheck.gui.jobs.queue import JobQueue, JobRecord, JobState
from sealcheck.gui.jobs.spec import JobSpec, RestoreTestSpec
from sealcheck.gui.state.results import ResultStore
from sealcheck.gui.state.settings import SourceStore
from sealcheck.gui.state.versions import VersionRow
from sealcheck.gui.views.details import DetailsPane
from sealcheck.gui.views.jobpanel import JobPanel
from sealcheck.gui.views.mainwindow import MainWindow
from sealcheck.gui.views.restoredetails import render
from sealcheck.gui.views.restorewizard import Page, RestoreTestWizard


def _have_mariadb() -> bool:
    try:
        find_tools(need_server=True)
    except SealcheckError:
        return False
    return True


needs_mariadb = pytest.mark.skipif(not _have_mariadb(), reason="no MariaDB server installed")


@pytest.fixture
def state(rt_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Core's state folder (pid records, locks) for this test only."""
    monkeypatch.setenv("SEALCHECK_STATE_DIR", str(rt_state))
    return rt_state / "restoretest"


@pytest.fixture
def queue(qapp):
    results = ResultStore()
    q = JobQueue(results)
    yield q
    assert q.shutdown(30)
    q.deleteLater()
    results.deleteLater()


def _secrets(key: RsaKey) -> Secrets:
    return Secrets(keys=[open_key(str(key.private), KeyContext())])


def _spec(backup, title: str, **rt) -> JobSpec:
    return JobSpec(
        "restore-test",
        listed_file(backup.data),
        title=title,
        restore_test=RestoreTestSpec(**rt),
    )


def _row(spec: JobSpec) -> VersionRow:
    import datetime as dt

    v = ObjectVersion(spec.object_key, None, 1, dt.datetime.now(dt.UTC), None, True)
    return VersionRow(v, None, None)


def _wizard(qtbot, **kw) -> RestoreTestWizard:
    wiz = RestoreTestWizard(["Restore test shop.sql.gz (2026-11-27 03:00)"], **kw)
    qtbot.addWidget(wiz)
    wiz.show()
    qtbot.waitUntil(lambda: wiz.engine_page.found is not None, timeout=20000)
    return wiz


def _next(wiz: RestoreTestWizard) -> QAbstractButton:
    return wiz.button(QWizard.WizardButton.NextButton)


# --- the wizard -------------------------------------------------------------------------


def test_wizard_pages_defaults_and_keyboard(qtbot, tmp_path):
    wiz = _wizard(qtbot, hints=["SQL dump", "MariaDB"])
    assert wiz.currentId() == Page.ENGINE
    page = wiz.engine_page
    assert page.engine == "auto"  # from the dump's header, by default
    assert page.group.checkedButton().text().startswith("&Automatic")
    text = page.software.text()
    assert "✔ <b>MariaDB/MySQL</b>" in text and "PostgreSQL" in text
    assert page.hint.text() == "The selected backups look like: MariaDB, SQL dump."
    assert _next(wiz).isEnabled()
    # Keyboard: Down moves between the engines, Return goes on (Next is the default).
    page.group.checkedButton().setFocus()
    qtbot.keyClick(page.group.checkedButton(), Qt.Key.Key_Down)
    assert page.engine == "mariadb"
    qtbot.keyClick(page.group.checkedButton(), Qt.Key.Key_Up)
    assert page.engine == "auto"
    qtbot.keyClick(wiz, Qt.Key.Key_Return)
    assert wiz.currentId() == Page.SERVER

    sp = wiz.server_page
    assert sp.throwaway.isChecked() and not sp.form.isEnabled() and _next(wiz).isEnabled()
    assert "deletes the server" in sp.why.text()
    sp.existing.setChecked(True)
    assert sp.form.isEnabled() and not _next(wiz).isEnabled()
    assert "scratch database" in sp.warning.text() and "dropped" in sp.warning.text()
    sp.dsn.setText("mysql://me:secret@localhost/?socket=/run/mysqld/mysqld.sock")
    assert not _next(wiz).isEnabled() and "password file" in sp.problem.text()
    sp.dsn.setText("postgresql://me@/?host=/var/run/postgresql")
    assert _next(wiz).isEnabled()  # auto: either family
    sp.dsn.setText("mysql://me@db.example.com/")
    assert not _next(wiz).isEnabled() and "local socket" in sp.problem.text()
    sp.dsn.setText("mysql://me@localhost/?socket=/run/mysqld/mysqld.sock")
    sp.password.setText(str(tmp_path / "missing"))
    assert not _next(wiz).isEnabled() and "cannot be read" in sp.problem.text()
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    sp.password.setText(str(pw))
    assert _next(wiz).isEnabled() and not sp.problem.isVisible()
    qtbot.keyClick(wiz, Qt.Key.Key_Return)

    assert wiz.currentId() == Page.SUMMARY
    start = wiz.button(QWizard.WizardButton.FinishButton)
    assert start.text() == "&Start" and start.isVisible()
    summary = wiz.summary_page.text.text()
    assert "1 restore test will be queued" in summary and "scratch database" in summary
    assert "s3cret" not in summary  # a path, never the password
    spec = wiz.value()
    assert spec == RestoreTestSpec(
        engine="auto", server="mysql://me@localhost/?socket=/run/mysqld/mysqld.sock",
        password_file=pw,
    )  # fmt: skip
    # Every control has a name a screen reader can say.
    for w in wiz.findChildren(QAbstractButton) + wiz.findChildren(QLineEdit):
        if w.isVisibleTo(wiz):
            assert w.accessibleName() or w.text(), w
    with qtbot.waitSignal(wiz.finished, timeout=15000):
        start.click()
    assert wiz.result() == QWizard.DialogCode.Accepted


def test_wizard_says_what_to_install_when_nothing_is_there(qtbot, tmp_path, monkeypatch):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("SEALCHECK_MARIADB_BINDIR", str(empty))  # core's finders look only here
    monkeypatch.setenv("SEALCHECK_PG_BINDIR", str(empty))
    wiz = _wizard(qtbot)
    text = wiz.engine_page.software.text()
    assert text.count("✘") == 2
    assert "apt-get install mariadb-server mariadb-client" in text
    assert "apt-get install postgresql" in text
    wiz.next()
    sp = wiz.server_page
    assert not _next(wiz).isEnabled()
    assert "No database server is installed here" in sp.problem.text()
    sp.existing.setChecked(True)
    sp.dsn.setText("mysql://me@localhost/?socket=/run/mysqld/mysqld.sock")
    assert not _next(wiz).isEnabled() and "No MariaDB/MySQL client" in sp.problem.text()
    wiz.reject()


def test_wizard_remembers_the_last_choice(qtbot):
    before = RestoreTestSpec(engine="postgres", server="postgresql://me@/?host=/tmp")
    wiz = _wizard(qtbot, initial=before)
    assert wiz.engine_page.engine == "postgres"
    assert wiz.server_page.existing.isChecked()
    assert wiz.value() == before
    wiz.reject()


# --- real restore tests through the queue -----------------------------------------------


@needs_mariadb
def test_restore_tests_queue_pass_and_fail_in_words(
    qtbot, tmp_path, rsa_key, state, queue, mariadb_rich_dump
):
    """A mariadb-dump of a real database, encrypted the SecureCircle way, restores with
    the source's rows; the same dump cut inside a statement fails with its line."""
    dump = mariadb_rich_dump
    good = securecircle(dump.path, tmp_path / "good", rsa_key)
    data = dump.path.read_bytes()
    cut = len(data) // 2  # mariadb-dump killed half-way, inside an extended INSERT
    start = data.rindex(b"\nINSERT INTO", 0, cut) + 1
    assert b";\n" not in data[start:cut]  # the cut is inside that statement
    table = data[start:].split(b"`")[1].decode()
    cut_line = data[:start].count(b"\n") + 1
    short = tmp_path / "short.sql"
    short.write_bytes(data[:cut])
    bad = securecircle(short, tmp_path / "bad", rsa_key, name="cut")

    panel = JobPanel(queue)
    qtbot.addWidget(panel)
    seen: list[str] = []
    queue.changed.connect(
        lambda r: seen.append(panel.row(r).status.text()) if r.state is JobState.RUNNING else None
    )
    ok = queue.submit(_spec(good, "Restore test good"), _secrets(rsa_key))
    cut = queue.submit(_spec(bad, "Restore test cut"), _secrets(rsa_key))
    assert ok.state is JobState.RUNNING and cut.state is JobState.QUEUED  # one at a time
    qtbot.waitUntil(lambda: not queue.busy, timeout=240_000)

    # The good one: a checked database with the dump's rows, shown in the Details pane.
    assert ok.state is JobState.DONE, ok.message
    outcome = queue._results.get((ok.spec.object_key, None))
    assert outcome is not None and outcome.ok and outcome.restore_test is not None
    r = outcome.restore_test
    assert r.ok and r.engine == "mariadb" and r.mode == "throwaway"
    assert {t.name: t.rows for t in r.tables} == dump.database.row_counts
    assert all(t.ok and t.rows == t.expected_rows and t.checksum for t in r.tables)
    assert r.views == ("order_totals",) and r.triggers == ("order_lines_total",)
    assert outcome.report is r.verification and r.verification is not None
    assert any(s.startswith("Downloading, decrypting, decompressing and loading") for s in seen)
    assert any(s.startswith("Checking the restored database") for s in seen)
    total = sum(dump.database.row_counts.values())
    assert (
        panel.row(ok)
        .status.text()
        .startswith(f"✔ Restore test passed: {len(r.tables)} tables, {total:,} rows in MariaDB")
    )
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_version(_row(ok.spec), outcome)
    shown = pane.toPlainText()
    assert "restore test passed" in shown and "Restore test passed" in shown
    for name, n in dump.database.row_counts.items():
        assert f"shop.{name}\n{n:,}\n{n:,}\n" in shown  # restored, in the dump, checksum
    assert "1 view (order_totals)" in shown and "1 trigger (order_lines_total)" in shown
    assert "Rows restored" in shown and "Rows in dump" in shown and "Checksum" in shown
    assert "MariaDB 10." in shown and "throwaway server" in shown
    assert "total" in shown and "recovery time" in shown
    assert "Decompressor check" in shown  # the layers' evidence stays below

    # The cut one: the statement and its line, in words, in the panel and the pane.
    assert cut.state is JobState.FAILED
    assert cut.message is not None
    assert cut.message.headline == "The dump ends in the middle of a statement"
    row = panel.row(cut)
    assert "✘ The dump ends in the middle of a statement" in row.status.text()
    assert f"line {cut_line}" in row.details.toPlainText()
    failed = queue._results.get((cut.spec.object_key, None))
    assert failed is not None and not failed.ok and failed.restore_test is not None
    le = failed.restore_test.load_error
    assert le is not None and le.line == cut_line
    assert le.statement.startswith(f"INSERT INTO `{table}`")
    pane.show_version(_row(cut.spec), failed)
    shown = pane.toPlainText()
    assert "restore test FAILED" in shown
    assert f"The load stopped at line {cut_line:,}" in shown
    assert f"INSERT INTO `{table}` VALUES" in shown
    assert list(state.glob("*.json")) == []  # no server records left


@needs_mariadb
def test_hostile_dump_is_refused_and_shown_with_its_line(qtbot, tmp_path, state, queue):
    marker = tmp_path / "MARKER"
    command = f"\\! touch {marker}"
    dump = hostile_mysql_dump(
        tmp_path / "d.sql", f"SELECT 1;\n{command}\nSELECT 2;\n", sandbox_line=False
    )
    line = dump.read_text().splitlines().index(command) + 1
    rec = queue.submit(
        JobSpec("restore-test", listed_file(dump), title="Restore test hostile"), Secrets(keys=[])
    )
    qtbot.waitUntil(lambda: not queue.busy, timeout=120_000)
    assert not marker.exists()
    assert rec.state is JobState.FAILED and rec.message is not None
    assert rec.message.headline == "The dump did not load: the database rejected a statement"
    outcome = queue._results.get((rec.spec.object_key, None))
    assert outcome is not None and outcome.restore_test is not None
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_version(_row(rec.spec), outcome)
    shown = pane.toPlainText()
    assert f"The load stopped at line {line}" in shown
    assert "The dump tried things a backup should not do" in shown
    assert f"line {line}: client command: {command}" in shown


def test_no_server_software_fails_in_words_with_what_to_install(
    qtbot, tmp_path, state, queue, monkeypatch
):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("SEALCHECK_MARIADB_BINDIR", str(empty))
    dump = hostile_mysql_dump(tmp_path / "d.sql", "SELECT 1;", sandbox_line=True)
    rec = queue.submit(
        JobSpec("restore-test", listed_file(dump), title="Restore test"), Secrets(keys=[])
    )
    qtbot.waitUntil(lambda: not queue.busy, timeout=60_000)
    assert rec.state is JobState.FAILED and rec.message is not None
    msg = rec.message
    assert msg.headline == "The database server software for the restore test is not installed"
    assert "apt-get install mariadb-server mariadb-client" in msg.advice
    assert "not found: mariadbd, mariadb-install-db" in msg.details and not msg.backup_is_bad


def _result(tables: list[tuple[str, int]]) -> RestoreTestResult:
    return RestoreTestResult(
        ok=True, engine="mariadb", server="MariaDB 10.11", mode="throwaway", databases=("s",),
        tables=tuple(TableResult(n, "s", r, r, str(r), True) for n, r in tables),
        views=(), triggers=(), routines=(), events=(), missing=(), load_seconds=1.0,
        checks_seconds=0.5, total_seconds=2.0, started_at="2026-11-27T03:00:00+00:00",
        warnings=(), hostile=(), roles_created=(), rewritten=(), error=None, load_error=None,
        verification=None,
    )  # fmt: skip


def test_drift_puts_emptied_tables_first_and_highlights_them(tmp_path):
    before = tmp_path / "before.json"
    before.write_text(_result([("a", 5), ("payments", 700), ("z", 1)]).to_json())
    now = _result([("a", 5), ("payments", 0), ("z", 2)])
    now = replace(now, drift=replace(compare(now, before), baseline="version v1, tested then"))
    html = render(now)
    rows = html.split("<tr")
    first = rows[2]  # after the table's opening and its header row
    assert "s.payments" in first and 'class="emptied"' in first and "now empty" in first
    assert "Compared with the previous result</b>, version v1, tested then" in html
    assert "s.payments is now empty" in html and "s.z: 1 → 2 rows" in html


def _our_server(state: Path) -> dict:
    recs = list(state.glob("mariadb-*.json"))
    return json.loads(recs[0].read_text()) if recs else {}


def _is_server(pid: int, root: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"mariadbd" in cmd and root.encode() in cmd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children() -> list[str]:
    """Command lines of this test process's children (the server and the client are)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            out.append(cmd)
    return out


@needs_mariadb
def test_cancel_mid_load_leaves_no_server_and_no_folder(qtbot, tmp_path, rsa_key, state, queue):
    dump = mysql_like(tmp_path / "big.sql", rows=400_000)  # one statement per row: a slow load
    backup = securecircle(dump, tmp_path / "s3", rsa_key)
    panel = JobPanel(queue)
    qtbot.addWidget(panel)
    rec = queue.submit(_spec(backup, "Restore test big"), _secrets(rsa_key))
    server: dict = {}

    def loading() -> bool:
        server.clear()
        server.update(_our_server(state))
        root, pgid = server.get("root"), server.get("pgid")
        return bool(
            pgid
            and root
            and _is_server(int(pgid), root)  # the record names our running server now
            and rec.progress is not None
            and rec.progress.stage == "verify"
            and (rec.progress.fraction or 0.0) > 0.1  # loading (the server sets the pace)
        )

    qtbot.waitUntil(loading, timeout=120_000)
    qtbot.wait(500)  # well into the load
    assert rec.state is JobState.RUNNING
    root, pgid = Path(server["root"]), int(server["pgid"])
    assert root.is_dir() and _alive(pgid)
    t0 = time.monotonic()
    qtbot.mouseClick(panel.row(rec).cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: rec.state is not JobState.RUNNING, timeout=5000)
    assert time.monotonic() - t0 < 2.0
    assert rec.state is JobState.CANCELLED
    assert "Nothing was left behind" in panel.row(rec).status.text()
    assert not root.exists()
    assert not _alive(pgid)
    # No throwaway server, no client (the session's source server is not ours to check).
    assert not [c for c in _children() if "/tmp/scrt-" in c]
    assert list(state.glob("*.json")) == []
    assert queue._results.get((rec.spec.object_key, None)) is None  # nothing recorded


def _records(recs: list[JobRecord]) -> bool:
    return all(r.state not in (JobState.QUEUED, JobState.RUNNING) for r in recs)


# --- the main window --------------------------------------------------------------------


def _through_wizard(qtbot, win: MainWindow) -> JobRecord:
    before = len(win.queue.records)
    win.restore_test_act.trigger()
    wiz = win.restore_wizard
    assert wiz is not None and wiz.isVisible()
    qtbot.waitUntil(lambda: wiz.engine_page.found is not None, timeout=20000)
    for _ in range(3):  # Next, Next, Start: the keyboard alone
        qtbot.keyClick(wiz, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(win.queue.records) == before + 1, timeout=5000)
    (rec,) = win.queue.records[before:]
    qtbot.waitUntil(lambda: _records([rec]), timeout=120_000)
    return rec


@needs_mariadb
def test_main_window_restore_test_action_wizard_and_drift(qtbot, tmp_path, demo_s3_bucket, state):
    """The demo's SecureCircle backups (mysqldump | gzip | openssl, key wrapped with RSA):
    the action follows the selection, the wizard queues the job, and the second version's
    result shows its drift from the first."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    key = "securecircle/1567744961188141183.sql.gz"
    assert win.browser.select_set(key)
    win.browser.versions_view.clearSelection()
    assert not win.restore_test_act.isEnabled()
    toolbar = win.findChild(QToolBar, "main-toolbar")
    assert win.restore_test_act in toolbar.actions()
    assert win.restore_test_act in win.browser.versions_view.actions()  # context menu
    menus = [a.menu() for a in win.menuBar().actions() if a.menu() is not None]
    assert any(win.restore_test_act in m.actions() for m in menus)

    select_version(win, key, 0)  # 3000 rows
    assert win.restore_test_act.isEnabled()
    first = _through_wizard(qtbot, win)
    assert first.state is JobState.DONE, first.message
    assert first.spec.title.startswith("Restore test securecircle/")
    assert win.restore_test_choice == RestoreTestSpec()  # the defaults: auto, throwaway

    select_version(win, key, 1)  # 4000 rows, tested after the first: drift from it
    second = _through_wizard(qtbot, win)
    assert second.state is JobState.DONE, second.message
    assert second.result is not None and second.result.drift is not None
    d = second.result.drift
    assert [(c.name, c.before, c.after) for c in d.row_changes] == [("shop.orders", 3000, 4000)]
    assert d.baseline.startswith(f"version {first.spec.version_id}, tested ")
    shown = win.browser.details.toPlainText()
    assert "Compared with the previous result, version" in shown
    assert "shop.orders: 3,000 → 4,000 rows" in shown
    row = win.browser.versions_view.selectionModel().selectedRows()[0].row()
    assert win.browser.versions.index(row, 5).data().startswith("OK")


@needs_mariadb
def test_closing_the_window_mid_load_leaves_no_server(qtbot, tmp_path, rsa_key, state):
    """reliability.md E4/G5: closing the main window during a restore test stops the job
    within seconds; the throwaway server, its folder and its records are gone."""
    dump = mysql_like(tmp_path / "big.sql", rows=400_000)
    backup = securecircle(dump, tmp_path / "s3", rsa_key)
    win = MainWindow(SourceStore(tmp_path / "sources.json"))
    qtbot.addWidget(win)
    win.show()
    rec = win.queue.submit(_spec(backup, "Restore test big"), _secrets(rsa_key))
    server: dict = {}

    def loading() -> bool:
        server.clear()
        server.update(_our_server(state))
        pgid, root = server.get("pgid"), server.get("root")
        return bool(
            pgid
            and root
            and _is_server(int(pgid), root)
            and rec.progress is not None
            and (rec.progress.fraction or 0.0) > 0.1
        )

    qtbot.waitUntil(loading, timeout=120_000)
    root, pgid = Path(server["root"]), int(server["pgid"])
    asked: list[str] = []

    def stop_and_quit() -> None:  # closing asks first: the test would be lost (test_stop_jobs)
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, stop_and_quit)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if b.text() == "Stop and quit").click()

    QTimer.singleShot(0, stop_and_quit)
    t0 = time.monotonic()
    assert win.close()
    assert time.monotonic() - t0 < 5.0  # close() waited for the job to stop
    assert asked and asked[0].startswith("1 restore test is running")
    qtbot.waitUntil(lambda: rec.state is not JobState.RUNNING, timeout=5000)
    assert rec.state is JobState.CANCELLED
    assert not root.exists() and not _alive(pgid)
    assert not [c for c in _children() if "/tmp/scrt-" in c]
    assert list(state.glob("*.json")) == []


def test_a_pass_in_which_the_dump_tried_something_is_never_a_plain_ok() -> None:
    """Issue 10: the row, the verdict line and the Details say what the dump tried."""
    import datetime as dt

    from sealcheck.gui.state.models import result_text
    from sealcheck.gui.state.results import Outcome
    from sealcheck.gui.views.restoredetails import verdict

    def outcome(r: RestoreTestResult) -> Outcome:
        return Outcome(r.verification, None, dt.datetime.now(dt.UTC), restore_test=r)

    tried = ({"line": 7, "kind": "file read (LOAD_FILE)", "statement": "INSERT …"},)
    res = replace(_result([("a", 1)]), hostile=tried)
    assert result_text(outcome(res)) == "OK, but the dump tried 1 thing a backup should not do"
    assert verdict(res).endswith("but the dump tried 1 thing a backup should not do")
    assert "file read (LOAD_FILE)" in render(res)
    assert result_text(outcome(_result([("a", 1)]))) == "OK"
