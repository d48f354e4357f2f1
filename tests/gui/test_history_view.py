"""History and evidence in the app (issue 12): a multi-selection summary, the History
page (every result of the selected versions or the source, by period, result and kind),
and evidence reports exported from the app as ``sealcheck report export`` writes them
(core's one road, report_file: signed and hash-chained, checked by ``sealcheck report
verify``; the signing key's passphrase in a real keyring).

Real runs: the demo's SecureCircle backup on a real (moto) S3 (v1 and v2 good, v3 cut
short by the dump), a real unreachable endpoint for the run that could not check."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sqlite3
import sys
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel

from fixtures.common import modules_loaded_by, run_cli
from fixtures.gui_flow import open_window
from fixtures.keyring_session import KeyringSession
from sealcheck.core.cli.parser import build_parser
from sealcheck.core.keys import signing
from sealcheck.core.keys.signing import SigningKeyStore
from sealcheck.core.records import report_formats, report_names
from sealcheck.core.records.history import History
from sealcheck.core.records.verdict import Verdict
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.jobs.spec import RestoreTestSpec
from sealcheck.gui.views.exportdialog import chosen_path, name_filters
from sealcheck.gui.views.historyview import Scope
from sealcheck.gui.views.mainwindow import MainWindow

SC = "securecircle/1567744961188141183.sql.gz"


def _select_all(win: MainWindow) -> list:
    assert win.browser.select_set(SC)
    win.browser.versions_view.selectAll()
    return win.targets()


def _verified_three(qtbot, tmp_path: Path, demo_s3_bucket) -> MainWindow:
    """v1, v2 OK, v3 FAILED (verify); then a restore test of v1 that could not run."""
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    assert len(_select_all(win)) == 3
    recs = win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=60_000)
    assert [r.state for r in recs] == [
        JobState.FAILED,
        JobState.DONE,
        JobState.DONE,
    ]  # newest first
    # v1 restore-tested on a server that is not there: a run that could not check it.
    vm = win.browser.versions
    oldest = max(r for r in range(vm.rowCount()) if vm.verifiable(r))
    win.browser.versions_view.selectRow(oldest)
    nowhere = f"mysql://nobody@localhost/?socket={tmp_path / 'none.sock'}"
    (rec,) = win.restore_test_selected(RestoreTestSpec(server=nowhere))
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=60_000)
    assert rec.message is not None and rec.message.verdict is Verdict.NOT_CHECKED
    return win


def _history_rows(qtbot, win: MainWindow) -> list[tuple[str, ...]]:
    hv = win.history_view
    qtbot.waitUntil(lambda: not hv.loading and not hv._reload_timer.isActive(), timeout=10_000)
    m = hv.model
    return [
        tuple(m.index(r, c).data() for c in range(m.columnCount())) for r in range(m.rowCount())
    ]


def test_multi_selection_summary_and_history_filters(
    qtbot, qtmodeltester, tmp_path, demo_s3_bucket
):
    win = _verified_three(qtbot, tmp_path, demo_s3_bucket)
    _select_all(win)
    # v1's newest run could not check it: its verdict (OK) still counts, as on its row.
    assert win.selection_note.text() == "3 selected: 2 OK, 1 FAILED"
    assert win.selection_note.isVisible()
    win.browser.versions_view.selectRow(0)
    assert win.selection_note.text() == "" and not win.selection_note.isVisible()

    _select_all(win)
    win.show_history_act.trigger()
    hv = win.history_view
    assert win.tabs.currentWidget() is hv and hv.query().scope is Scope.VERSIONS
    rows = _history_rows(qtbot, win)
    assert len(rows) == 4
    assert [r[4].split(" (")[0] for r in rows] == ["NOT CHECKED", "OK", "OK", "FAILED"]
    qtmodeltester.check(hv.model)  # the shared table model, filled with real entries
    assert rows[0][4] == "NOT CHECKED (setup problem)"
    assert [r[1] for r in rows] == ["restore test", "verify", "verify", "verify"]
    assert all(r[2] == SC for r in rows)
    assert "4 entries for the selected versions" in hv.status.text()
    assert "Latest verdicts: 3 versions" in hv.status.text()

    hv.result.setCurrentText("FAILED")
    (failed,) = _history_rows(qtbot, win)
    assert failed[4].startswith("FAILED (")
    hv.result.setCurrentText("NOT CHECKED (setup problem)")
    assert [r[4] for r in _history_rows(qtbot, win)] == ["NOT CHECKED (setup problem)"]
    hv.result.setCurrentText("Any result")
    hv.kind.setCurrentText("Restore")
    assert _history_rows(qtbot, win) == []
    assert "Nothing matches these filters" in hv.status.text()
    hv.kind.setCurrentText("Restore test")
    assert [r[4] for r in _history_rows(qtbot, win)] == ["NOT CHECKED (setup problem)"]
    hv.kind.setCurrentText("Verify")
    assert len(_history_rows(qtbot, win)) == 3
    hv.kind.setCurrentText("Any kind")

    # A result recorded three days ago (the same real report, an earlier time).
    history = win.results.history
    assert history is not None
    old = history.entries(verdict=Verdict.OK, limit=1)[0]
    history.record(old.result(), when=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    hv.reload()
    assert len(_history_rows(qtbot, win)) == 5
    hv.period.setCurrentText("Last 24 hours")
    assert len(_history_rows(qtbot, win)) == 4
    hv.period.setCurrentText("Last 7 days")
    assert len(_history_rows(qtbot, win)) == 5

    # One version: its own results only; the source: all of them.
    hv.period.setCurrentText("Any time")
    win.tabs.setCurrentWidget(win.browser)
    win.browser.versions_view.selectRow(0)  # v3, the newest
    win.show_history_act.trigger()
    assert [r[4].split(" (")[0] for r in _history_rows(qtbot, win)] == ["FAILED"]
    hv.set_scope(Scope.SOURCE)
    assert len(_history_rows(qtbot, win)) == 5


def _verify(path: Path, keyring_session: KeyringSession) -> None:
    v = run_cli("report", "verify", str(path), env={**os.environ, **keyring_session.env})
    assert v.returncode == 0 and "report intact" in v.stdout, v.stdout + v.stderr


def test_evidence_export_from_the_app(
    qtbot, tmp_path, demo_s3_bucket, keyring_session, monkeypatch
):
    for k, v in keyring_session.env.items():
        monkeypatch.setenv(k, v)  # the evidence key's passphrase lives in this keyring
    win = _verified_three(qtbot, tmp_path, demo_s3_bucket)
    _select_all(win)
    win.show_history_act.trigger()
    hv = win.history_view
    rows = _history_rows(qtbot, win)
    sm = hv.table.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for r in (1, 3):  # an OK and the FAILED v3
        sm.select(hv.model.index(r, 0), flags)
    picked = [int(rows[r][5].lstrip("#")) for r in (1, 3)]

    # The selected entries, as HTML: signed, and `sealcheck report verify` passes.
    hv.export_btn.click()
    dlg = win.export_dialog
    assert dlg is not None and dlg.isVisible()
    assert dlg.pick_selected.isChecked() and dlg.pick_selected.text().endswith("(2)")
    html = tmp_path / "evidence.html"
    dlg.path.setText(str(html))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    assert dlg.written is not None and dlg.written.entries == 2, dlg.message.text()
    text = html.read_text()
    for i in picked:
        assert f"#{i}" in text or f">{i}<" in text
    assert dlg.written.signed_by, dlg.message.text()
    assert f"Signed by {dlg.written.signed_by}" in dlg.message.text()
    _verify(html, keyring_session)

    # The same selection as JSON: its entries are the selected ids, in the dialog's order.
    dlg.fmt_buttons["json"].setChecked(True)
    chosen = tmp_path / "chosen.json"
    dlg.path.setText(str(chosen))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    doc = json.loads(chosen.read_text())
    assert [e["history_id"] for e in doc["evidence"]["entries"]] == [e.id for e in dlg.entries()]
    assert sorted(e.id for e in dlg.entries()) == sorted(picked)
    _verify(chosen, keyring_session)

    # The latest verdict of each version, as JSON: the NOT CHECKED run is left out and
    # v1 keeps its OK, as `report export --latest` does.
    dlg.pick_latest.setChecked(True)
    dlg.fmt_buttons["html"].setChecked(True)
    dlg.path.setText(str(html))
    dlg.fmt_buttons["json"].setChecked(True)
    assert dlg.path.text().endswith("evidence.json")
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    doc = json.loads((tmp_path / "evidence.json").read_text())
    verdicts = sorted(e["verdict"] for e in doc["evidence"]["entries"])
    assert verdicts == ["FAILED", "OK", "OK"]
    # The ids `report export --latest --source` reports, in its order.
    hist = History(win.results.history.path)
    want = hist.latest_ids(source=hv.query().pattern, verdicts_only=True)
    assert [e["history_id"] for e in doc["evidence"]["entries"]] == want
    _verify(tmp_path / "evidence.json", keyring_session)

    # An existing file is never replaced unless asked: nothing is written.
    before = html.read_bytes()
    dlg.fmt_buttons["html"].setChecked(True)
    dlg.path.setText(str(html))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    assert dlg.message.text().startswith("⚠ Nothing was written")
    assert html.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".evidence")]

    # Custody cannot give the signing key (its record damaged): the report is written,
    # sealed but unsigned, and the dialog says why, as the Audit page does.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    store = SigningKeyStore()
    store.folder.mkdir(parents=True)
    (store.folder / f"{signing.NAME}.json").write_text("{damaged")
    unsigned = tmp_path / "unsigned.json"
    dlg.replace_box.setChecked(False)
    dlg.path.setText(str(unsigned))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    assert dlg.written is not None and dlg.written.signed_by is None, dlg.message.text()
    assert "NOT signed: " in dlg.message.text() and "damaged" in dlg.message.text()
    assert unsigned.exists()

    # A damaged entry: the history's error, as the CLI says it, and no file.
    db = sqlite3.connect(win.results.history.path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET result = '{not json' WHERE id = ?", (picked[0],))
    db.commit()
    db.close()
    dlg.pick_selected.setChecked(True)
    damaged = tmp_path / "damaged.html"
    dlg.path.setText(str(damaged))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=20_000)
    assert dlg.message.text().startswith("⚠ Nothing was written"), dlg.message.text()
    assert "an entry is damaged" in dlg.message.text()
    assert not damaged.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".damaged")]
    dlg.close()


def test_the_app_starts_without_the_pdf_renderer() -> None:
    """reportlab (PDF) is loaded when a PDF is written, not when the app starts: the app
    and its window imported as the launcher imports them."""
    loaded = modules_loaded_by("sealcheck.gui.app", "sealcheck.gui.views.mainwindow")
    assert "sealcheck.gui.views.exportdialog" in loaded  # the dialog is there
    assert {m for m in loaded if m.split(".")[0] == "reportlab"} == set()
    assert "sealcheck.core.records.report_formats" not in loaded


def test_history_export_in_every_format_the_cli_writes(
    qtbot, tmp_path, demo_s3_bucket, keyring_session, monkeypatch
):
    """HTML, JSON, CSV and PDF, the formats `report export --format` takes (one list,
    core's), picked by the name's suffix, the buttons or the save dialog's filter; each
    read back, the signed ones checked by `sealcheck report verify`."""
    for k, v in keyring_session.env.items():
        monkeypatch.setenv(k, v)  # the evidence key's passphrase lives in this keyring
    parser = build_parser()
    (report,) = [a for a in parser._subparsers._group_actions if "report" in a.choices]
    (export,) = [a for a in report.choices["report"]._subparsers._group_actions]
    (fmt_opt,) = [a for a in export.choices["export"]._actions if a.dest == "format"]
    assert tuple(fmt_opt.choices) == report_names.NAMES == ("html", "json", "csv", "pdf")
    assert tuple(report_formats.RENDERERS) == report_names.NAMES  # a renderer for each

    win = _verified_three(qtbot, tmp_path, demo_s3_bucket)
    _select_all(win)
    win.show_history_act.trigger()
    hv = win.history_view
    assert len(_history_rows(qtbot, win)) == 4
    hv.table.selectAll()
    hv.export_btn.click()
    dlg = win.export_dialog
    assert dlg is not None and dlg.pick_selected.text().endswith("(4)")
    assert list(dlg.fmt_buttons) == list(report_names.NAMES)
    assert [b.text().split(" (")[0].replace("&", "") for b in dlg.fmt_buttons.values()] == [
        "HTML",
        "JSON",
        "CSV",
        "PDF",
    ]
    ids = [e.id for e in dlg.entries()]
    out = tmp_path / "out"
    out.mkdir()

    def export(path: Path, fmt: str) -> None:
        dlg.export_btn.click()
        qtbot.waitUntil(lambda: not dlg.busy, timeout=30_000)
        assert dlg.written is not None and dlg.written.path == path, dlg.message.text()
        assert dlg.written.format == fmt and dlg.written.entries == 4
        assert dlg.written.signed_by, dlg.message.text()

    # The name's suffix picks the format: the buttons follow it.
    for fmt in report_names.NAMES:
        dlg.path.setText(str(out / f"evidence.{fmt}"))
        assert dlg.fmt_buttons[fmt].isChecked()
        export(out / f"evidence.{fmt}", fmt)
        if fmt == "csv":  # the dialog says what a CSV is, and where its evidence is
            assert "spreadsheet view, not evidence" in dlg.message.text()
            assert dlg.written.signed_by in dlg.message.text()
    # A button picks it: a name ending in a format's suffix follows; one with no suffix
    # is written as chosen, as `report export --format pdf -o FILE` writes any name.
    dlg.fmt_buttons["html"].setChecked(True)
    dlg.path.setText(str(out / "plain"))
    dlg.fmt_buttons["pdf"].setChecked(True)
    assert dlg.path.text() == str(out / "plain")
    export(out / "plain", "pdf")
    # The save dialog's filter names the format of a name given without a suffix.
    assert name_filters() == "HTML (*.html);;JSON (*.json);;CSV (*.csv);;PDF (*.pdf)"
    assert chosen_path(str(out / "r"), "CSV (*.csv)") == out / "r.csv"
    assert chosen_path(str(out / "r.pdf"), "CSV (*.csv)") == out / "r.pdf"

    # Read back. JSON: the selected ids in the dialog's order, and the signed chain.
    doc = json.loads((out / "evidence.json").read_text())
    entries = doc["evidence"]["entries"]
    assert [e["history_id"] for e in entries] == ids
    head = doc["evidence"]["chain"]["statement"]["head"]["hash"]
    assert doc["evidence"]["chain"]["signature"]["fingerprint"] == dlg.written.signed_by
    # HTML: every id.
    text = (out / "evidence.html").read_text()
    assert all(f"#{i}" in text or f">{i}<" in text for i in ids)
    # CSV: the notice, the columns, a row per entry with its record hash in the signed
    # report, and the dialog says it is a view, not evidence.
    rows = list(csv.reader((out / "evidence.csv").read_text().splitlines()))
    assert rows[0][0].startswith("# Sealcheck CSV: a spreadsheet view, NOT evidence")
    assert f"chain head {head}" in rows[0][0]
    assert tuple(rows[1]) == report_formats.CSV_COLUMNS
    assert [int(r[0]) for r in rows[2:]] == ids
    assert [r[-3] for r in rows[2:]] == [e["chain"]["record_hash"] for e in entries]
    assert {r[-2] for r in rows[2:]} == {head}
    # PDF: the pages name the backup, the verdicts and the signer.
    import pypdf

    for pdf in (out / "evidence.pdf", out / "plain"):
        pages = pypdf.PdfReader(str(pdf)).pages
        words = "".join(p.extract_text() for p in pages).replace("\n", "")
        assert "Sealcheck evidence report" in words and "FAILED" in words
        assert "1567744961188141183" in words
        assert dlg.written.signed_by[:30] in words
    assert "reportlab" in sys.modules  # loaded now a PDF was written
    # The signed reports verify; the CSV is named for what it is.
    for name in ("evidence.html", "evidence.json", "evidence.pdf", "plain"):
        _verify(out / name, keyring_session)
    v = run_cli("report", "verify", str(out / "evidence.csv"))
    assert v.returncode == 2 and "not evidence" in v.stdout + v.stderr

    # A PDF over an existing file, not asked to replace it: nothing written, the words
    # from errortext, the file as it was, no partial file left beside it.
    before = (out / "evidence.pdf").read_bytes()
    dlg.replace_box.setChecked(False)
    dlg.path.setText(str(out / "evidence.pdf"))
    dlg.export_btn.click()
    qtbot.waitUntil(lambda: not dlg.busy, timeout=30_000)
    assert dlg.message.text().startswith("⚠ Nothing was written"), dlg.message.text()
    assert (out / "evidence.pdf").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [
        "evidence.csv",
        "evidence.html",
        "evidence.json",
        "evidence.pdf",
        "plain",
    ]
    dlg.close()


def test_export_from_the_backups_page_reads_the_selection_first(qtbot, tmp_path, demo_s3_bucket):
    """Ctrl+Shift+E on selected versions: the dialog opens on their latest verdicts."""
    win = _verified_three(qtbot, tmp_path, demo_s3_bucket)
    win.tabs.setCurrentWidget(win.browser)
    _select_all(win)
    win.export_act.trigger()
    qtbot.waitUntil(lambda: win.export_dialog is not None, timeout=10_000)
    dlg = win.export_dialog
    assert dlg.pick_latest.isChecked() and "(3)" in dlg.pick_latest.text()
    assert [e.verdict for e in dlg.entries()].count(Verdict.NOT_CHECKED) == 0
    dlg.close()


def test_no_history_says_so(qtbot, tmp_path, demo_s3_bucket, monkeypatch):
    """A history that cannot be read: the page says why instead of showing nothing."""
    data = tmp_path / "broken"
    data.mkdir()
    (data / "history.sqlite3").write_bytes(b"not a database at all\n" * 50)
    monkeypatch.setenv("SEALCHECK_DATA_DIR", str(data))
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    assert isinstance(win.results.history, History)
    win.tabs.setCurrentWidget(win.history_view)
    assert _history_rows(qtbot, win) == []
    assert win.history_view.status.text().startswith("⚠ The history could not be read")
