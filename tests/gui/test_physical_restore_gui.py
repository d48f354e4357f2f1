"""The app's restore test of a physical backup (issue 16): the wizard says what happens
to physical backups and refuses what cannot work for them, and the job runs core's
one restore test on a real mariabackup backup (ClusterControl's gzip + openssl enc,
in a versioned moto bucket)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from fixtures.gui_flow import open_window, select_version
from fixtures.physical import SAKILA_DB, SAKILA_ROWS, RealPhysical, gzip_openssl
from fixtures.s3servers import S3Store
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceConfig
from sealcheck.gui.views.restorewizard import Page, RestoreTestWizard, physical_blocker

pytestmark = pytest.mark.timeout(600)
KEY = "db/backup-full.xbstream.gz.aes256"


@pytest.fixture
def state(rt_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Core's state folder (pid records, locks) for this test only."""
    monkeypatch.setenv("SEALCHECK_STATE_DIR", str(rt_state))
    return rt_state


def _wizard(qtbot, targets: int, physical: int) -> RestoreTestWizard:
    wiz = RestoreTestWizard([f"Restore test b{i}.xbstream" for i in range(targets)], [], None, None, physical)  # fmt: skip
    qtbot.addWidget(wiz)
    wiz.show()
    qtbot.waitUntil(lambda: wiz.engine_page.found is not None, timeout=20000)
    return wiz


def test_wizard_on_physical_backups_offers_the_throwaway_server_only(qtbot) -> None:
    wiz = _wizard(qtbot, 2, 2)
    page = wiz.engine_page
    assert page.physical_note.isVisibleTo(wiz)
    assert "2 of them are physical backups (xbstream)" in page.physical_note.text()
    assert "mariabackup (physical backups)" in page.software.text()
    assert physical_blocker(page.found) is None  # MariaDB and mariabackup are installed
    wiz.next()
    assert wiz.currentId() == Page.SERVER
    sp = wiz.server_page
    assert sp.blocker() is None and sp.isComplete()
    sp.existing.setChecked(True)
    sp.dsn.setText("mysql://root@localhost/?socket=/run/mysqld/mysqld.sock")
    assert "throwaway MariaDB" in (sp.blocker() or "") and not sp.isComplete()
    sp.throwaway.setChecked(True)
    wiz.next()
    assert "Physical backups:</b> 2" in wiz.summary_page.text.text()
    # One dump among them: the existing server stays possible for the dump.
    mixed = _wizard(qtbot, 2, 1)
    assert "1 of them is a physical backup" in mixed.engine_page.physical_note.text()
    mixed.next()
    mixed.server_page.existing.setChecked(True)
    mixed.server_page.dsn.setText("mysql://root@localhost/?socket=/run/mysqld/mysqld.sock")
    assert mixed.server_page.blocker() is None
    # No physical backup: nothing said about them.
    plain = _wizard(qtbot, 1, 0)
    assert not plain.engine_page.physical_note.isVisibleTo(plain)
    assert "mariabackup" not in plain.engine_page.software.text()


def test_main_window_restore_tests_a_physical_backup(
    qtbot,
    tmp_path: Path,
    state: Path,
    real_physical: RealPhysical,
    physical_keys: dict[str, Path],
    moto_store: S3Store,
) -> None:
    """Select the version, the action, the wizard by keyboard: the job runs core's
    restore test, and the result is the CLI's (every sakila table, counted)."""
    bucket = moto_store.bucket()
    bk = gzip_openssl(real_physical.compressed, tmp_path / Path(KEY).name, physical_keys["openssl"])
    bucket.put(KEY, bk)
    source = SourceConfig(
        name="Physical", bucket=bucket.name, endpoint_url=bucket.endpoint, region="us-east-1",
        keys=KeyChoice(passphrase_file=str(physical_keys["openssl"])),
    )  # fmt: skip
    win = open_window(qtbot, tmp_path, [source])
    select_version(win, KEY, 0)
    assert win.restore_test_act.isEnabled()
    win.restore_test_act.trigger()
    wiz = win.restore_wizard
    assert wiz is not None and wiz.engine_page.physical == 1  # known by its name
    qtbot.waitUntil(lambda: wiz.engine_page.found is not None, timeout=20000)
    assert wiz.button(QWizard.WizardButton.NextButton).isEnabled()
    for _ in range(3):  # Next, Next, Start
        qtbot.keyClick(wiz, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(win.queue.records) == 1, timeout=5000)
    (rec,) = win.queue.records
    qtbot.waitUntil(lambda: rec.state not in (JobState.QUEUED, JobState.RUNNING), timeout=300_000)
    assert rec.state is JobState.DONE, rec.message
    res = rec.result
    assert res is not None and res.ok and res.databases == (SAKILA_DB,)
    assert {t.name: t.rows for t in res.tables} == SAKILA_ROWS
    assert res.dump["physical"] is True and res.dump["prepare_seconds"] is not None
    assert not [c for c in res.cleanup if c.startswith("wiped") and Path(c[6:]).exists()]
    shown = win.browser.details.toPlainText()
    assert "Physical backup: mariabackup" in shown and "(extract " in shown, shown
    assert "prepare " in shown and "start " in shown
