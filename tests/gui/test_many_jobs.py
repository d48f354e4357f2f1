"""Many jobs: 700 verifications queued at once keep the window responsive (the 50 ms
event-loop bound of test_responsive.py, measured the same way, while they are queued,
run, cancelled and cleared); the job panel summarises them and clears finished ones;
a pre-flight warns, once, before queuing jobs that cannot succeed.

One backup (mysqldump-like | gzip | openssl enc -pbkdf2, real tools) uploaded 700 times
to a versioned bucket on the real (moto) S3 server: 700 nightly versions."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from fixtures.common import listed_file
from fixtures.dumps import mysql_like
from fixtures.gui_flow import open_window
from fixtures.lateness import Lateness
from fixtures.pipelines import openssl_variant
from sealcheck.core.storage.s3.client import S3Settings, make_client
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.state.settings import KeyChoice, SourceConfig
from sealcheck.gui.views.jobpanel import QUEUED_SHOWN

BUCKET = "sealcheck-gui-700"
KEY = "nightly/shop.sql.gz.enc"
VERSIONS = 700


@pytest.fixture(scope="module")
def nightly_700(demo_s3_bucket) -> Iterator[SourceConfig]:
    with tempfile.TemporaryDirectory(prefix="sealcheck-700-") as tmp:
        work = Path(tmp)
        b = openssl_variant(mysql_like(work / "dump.sql", rows=50), work / "out", name="x.enc")
        assert b.passphrase_file is not None
        c = make_client(S3Settings(endpoint_url=demo_s3_bucket.endpoint))
        c.create_bucket(Bucket=BUCKET)
        c.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        body = b.data.read_bytes()
        for _ in range(VERSIONS):
            c.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        yield SourceConfig(
            name="Nightly (700 versions)",
            bucket=BUCKET,
            endpoint_url=demo_s3_bucket.endpoint,
            region="us-east-1",
            keys=KeyChoice(passphrase_file=str(b.passphrase_file)),
        )


def _select_all_versions(win) -> int:
    assert win.browser.select_set(KEY)
    win.browser.versions_view.selectAll()
    return len(win.targets())


def test_700_queued_verifications_keep_the_window_responsive(
    qtbot, tmp_path, nightly_700, quiet_machine
):
    win = open_window(qtbot, tmp_path, [nightly_700])
    assert _select_all_versions(win) == VERSIONS
    panel = win.job_panel
    late = Lateness()
    late.control(qtbot, 500)  # the machine itself must not make the timer late
    try:
        win.verify_act.trigger()  # from the toolbar, as a user queues them
        recs = list(win.queue.records)
        assert len(recs) == VERSIONS
        qtbot.waitUntil(lambda: panel.counts["ok"] >= 5, timeout=30_000)
        qtbot.wait(300)
        summary = panel.summary.text()
        assert re.fullmatch(r"\d+ queued( · 1 running)? · \d+ OK", summary), summary
        assert len(panel._rows) <= QUEUED_SHOWN + 1 + panel.counts["ok"]
        assert panel.more.text().startswith("… and ") and panel.more.text().endswith(" queued")

        win.cancel_act.trigger()  # a verify runs: no question, everything stops
        qtbot.waitUntil(lambda: not win.queue.busy, timeout=10_000)
        qtbot.wait(50)
        ok = sum(r.state is JobState.DONE for r in recs)
        cancelled = sum(r.state is JobState.CANCELLED for r in recs)
        assert ok + cancelled == VERSIONS
        assert panel.summary.text() == f"{ok} OK · {cancelled} cancelled"
        assert not panel.more.isVisible()

        assert panel.clear_btn.isEnabled()
        qtbot.mouseClick(panel.clear_btn, Qt.MouseButton.LeftButton)
        qtbot.wait(50)
        assert win.queue.records == [] and panel._rows == {}
        assert panel.summary.text() == "No jobs" and not panel.clear_btn.isEnabled()
    finally:
        late.stop()
    print(late.summary())
    assert late.app_worst < 0.050, f"the event loop stalled: {late.summary()}"


def test_preflight_warns_before_queuing_jobs_that_cannot_succeed(qtbot, tmp_path, nightly_700):
    """No key configured for the source: one warning, nothing queued."""
    src = SourceConfig(
        name="No key",
        bucket=BUCKET,
        endpoint_url=nightly_700.endpoint_url,
        region="us-east-1",
        keys=KeyChoice(),
    )
    win = open_window(qtbot, tmp_path, [src])
    assert _select_all_versions(win) == VERSIONS
    assert win.verify_selected() == []
    assert win.queue.records == []
    box = win.preflight_box
    assert box is not None and box.isVisible()
    assert box.text() == (
        f"None of the {VERSIONS} verifications of No key can succeed: "
        "The key needed for this backup is not available."
    )
    assert "Keys page" in box.informativeText() and "Nothing was queued" in box.informativeText()
    assert "Nothing queued" in win.statusBar().currentMessage()
    box.close()


def test_a_batch_whose_key_goes_away_ends_as_not_checked(qtbot, tmp_path):
    """Batch jobs gather their secrets as they start: the passphrase file deleted after
    the first started, the others end one per turn as setup problems, not verdicts."""
    from sealcheck.core.records.verdict import Verdict
    from sealcheck.gui.jobs.queue import JobQueue
    from sealcheck.gui.jobs.spec import JobSpec
    from sealcheck.gui.state.keysession import KeySession
    from sealcheck.gui.state.results import ResultStore

    b = openssl_variant(mysql_like(tmp_path / "dump.sql", rows=2000), tmp_path / "out")
    assert b.passphrase_file is not None
    session = KeySession(lambda _p: None, lambda _p: None)
    choice = KeyChoice(passphrase_file=str(b.passphrase_file))
    results = ResultStore()
    queue = JobQueue(results)
    specs = [JobSpec("verify", listed_file(b.data), title=f"Verify {i}") for i in range(4)]
    first, *rest = queue.submit_many(specs, lambda _s: session.secrets(choice))
    assert first.state is JobState.RUNNING and all(r.state is JobState.QUEUED for r in rest)
    b.passphrase_file.unlink()
    qtbot.waitUntil(lambda: not queue.busy, timeout=30_000)
    assert first.state is JobState.DONE, first.message
    for r in rest:
        assert r.state is JobState.FAILED and r.message is not None
        assert r.message.verdict is Verdict.NOT_CHECKED
        assert "passphrase file" in r.message.details
    state = results.state((str(b.data), None))
    assert state is not None and state.verdict is not None and state.verdict.ok  # kept
    queue.deleteLater()
