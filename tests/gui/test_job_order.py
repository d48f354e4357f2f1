"""Job titles tell versions apart; several versions restore-tested at once run oldest
first, so each is compared with the one tested before it (the drift baseline).

The demo's SecureCircle backup on a real (moto) S3: mysqldump | gzip | openssl, the key
wrapped with RSA; v1 has 3,000 rows, v2 4,000, v3 is cut short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.gui_flow import open_window, select_version
from sealcheck.core.errors import SealcheckError
from sealcheck.core.restoretest.engines.mariadb import find_tools
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.jobs.spec import RestoreTestSpec

SC = "securecircle/1567744961188141183.sql.gz"


def _have_mariadb() -> bool:
    try:
        find_tools(need_server=True)
    except SealcheckError:
        return False
    return True


def test_job_titles_tell_versions_apart(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    titles = []
    for i in range(3):
        select_version(win, SC, i)
        rows = win.targets()
        (rec,) = win.verify_selected()
        titles.append(rec.spec.title)
        vid = rows[0].data.version_id
        assert vid and vid[:10] in rec.spec.title
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert len(set(titles)) == 3, titles
    for t in titles:
        # Seconds, and a short version id: "Verify K (2026-11-27 03:00:07, version 3HL4kqtJlc…)"
        assert re.fullmatch(
            rf"Verify {re.escape(SC)} \(\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d, version \S{{1,12}}\)", t
        ), t


@pytest.fixture
def state(rt_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEALCHECK_STATE_DIR", str(rt_state))
    return rt_state / "restoretest"


@pytest.mark.skipif(not _have_mariadb(), reason="no MariaDB server installed")
def test_restore_tests_of_several_versions_run_oldest_first(qtbot, tmp_path, demo_s3_bucket, state):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    assert win.browser.select_set(SC)
    vm = win.browser.versions
    # v1 and v2, selected as the list shows them: newest first.
    newest_first = [r for r in range(vm.rowCount()) if vm.verifiable(r)]
    v1, v2 = newest_first[-1], newest_first[-2]
    win.browser.versions_view.selectRow(v2)
    sm = win.browser.versions_view.selectionModel()
    sm.select(
        vm.index(v1, 0),
        sm.SelectionFlag.Select | sm.SelectionFlag.Rows,
    )
    rows = win.targets()
    assert [r.data.version_id for r in rows] == [
        vm.row_at(v2).data.version_id,
        vm.row_at(v1).data.version_id,
    ]
    first, second = win.restore_test_selected(RestoreTestSpec(), rows)
    assert first.spec.version_id == vm.row_at(v1).data.version_id  # the oldest runs first
    assert second.spec.version_id == vm.row_at(v2).data.version_id
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=180_000)
    assert first.state is JobState.DONE, first.message
    assert second.state is JobState.DONE, second.message
    assert first.result is not None and first.result.drift is None  # nothing before it
    d = second.result.drift if second.result else None
    assert d is not None and d.baseline.startswith(f"version {first.spec.version_id}, tested ")
    assert [(c.name, c.before, c.after) for c in d.row_changes] == [("shop.orders", 3000, 4000)]
