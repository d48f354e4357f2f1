"""The Audit page (issue 14) on a real S3 (moto_server): backups made by real openssl
commands (SecureCircle: gzip | openssl enc, key wrapped by openssl rsautl), one cut
short. The page shows each backup set's coverage state (words and colour) before and
after "Audit now"; a cancelled campaign is continued by the next one. Each test keeps
its history in its own folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from fixtures.common import run_cli
from fixtures.gui_flow import open_window
from fixtures.pipelines import RsaKey, securecircle
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.records.history import History, Kind
from sealcheck.gui.state.keysession import KeySession
from sealcheck.gui.state.settings import KeyChoice, SourceConfig
from sealcheck.gui.views.auditview import AuditView, audit_options

NIGHTS = 3


@dataclass(frozen=True)
class Estate:
    bucket: Bucket
    key: RsaKey

    def source(self) -> SourceConfig:
        return SourceConfig(
            name="audit",
            bucket=self.bucket.name,
            prefix="db/",
            endpoint_url=self.bucket.endpoint,
            region="us-east-1",
            keys=KeyChoice(key_specs=(str(self.key.private),)),
        )


@pytest.fixture(scope="module")
def estate(
    moto_store: S3Store, rsa_key: RsaKey, tmp_path_factory: pytest.TempPathFactory
) -> Estate:
    root = tmp_path_factory.mktemp("audit-estate")
    bucket = moto_store.bucket()
    dump = root / "dump.sql"
    dump.write_text(
        "-- MySQL dump 10.13\nCREATE TABLE t (id int);\n"
        + "".join(f"INSERT INTO t VALUES ({i});\n" for i in range(2000))
        + "-- Dump completed on 2026-11-27 10:00:00\n"
    )
    for night in range(NIGHTS):
        bucket.put_backup("db/", securecircle(dump, root / f"n{night}", rsa_key, name="nightly"))
    other = securecircle(dump, root / "other", rsa_key, name="other")
    bucket.put("db/cut.sql.gz", other.data.read_bytes()[:-700])  # cut short: FAILED
    assert other.wrapped_key is not None
    bucket.put("db/cut.sql.gz.key", other.wrapped_key)
    return Estate(bucket, rsa_key)


def _page(qtbot, tmp_path: Path, estate: Estate) -> AuditView:
    src = estate.source()
    keys = KeySession(lambda _p: None, lambda _p: None)
    page = AuditView(History(tmp_path / "history.sqlite3"), lambda: keys.secrets(src.keys))
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.coverage_loaded, timeout=30000):
        page.set_source(audit_options(src))
    return page


def _states(page: AuditView) -> dict[str, str]:
    m = page.model
    return {
        m.index(r, 0).data(): m.index(r, page.model.STATE_COLUMN).data()
        for r in range(m.rowCount())
    }


def test_coverage_before_and_after_audit_now(qtbot, qtmodeltester, tmp_path, estate) -> None:
    page = _page(qtbot, tmp_path, estate)
    nightly, cut = estate.bucket.uri("db/nightly.sql.gz"), estate.bucket.uri("db/cut.sql.gz")
    assert _states(page) == {nightly: "NEVER CHECKED", cut: "NEVER CHECKED"}
    qtmodeltester.check(page.model)
    # Colour plus words: the state column has a foreground and its text says the state.
    state_ix = page.model.index(0, page.model.STATE_COLUMN)
    assert state_ix.data(Qt.ItemDataRole.ForegroundRole) is not None
    assert "never checked" in state_ix.data(Qt.ItemDataRole.ToolTipRole)

    with qtbot.waitSignal(page.coverage_loaded, timeout=120000):
        with qtbot.waitSignal(page.audit_finished, timeout=120000) as done:
            page.audit_btn.click()
            assert page.cancel_btn.isEnabled() and not page.audit_btn.isEnabled()
    summary = done.args[0]
    assert summary["exit_code"] == 1 and summary["totals"] == {"ok": NIGHTS, "failed": 1}
    assert "Audit FAILED" in page.audit_status.text()
    # Verified, never restore-tested: partly; the cut one failed (worst first).
    assert list(_states(page).items()) == [(cut, "FAILED"), (nightly, "PARTLY")]
    assert "partly 3" in page.model.index(1, 3).data()
    qtmodeltester.check(page.model)
    assert page.audit_btn.isEnabled() and not page.cancel_btn.isEnabled()
    hist = History(tmp_path / "history.sqlite3")
    (rec,) = hist.entries(kind=Kind.AUDIT)
    assert rec.campaign == summary["id"]


def test_report_export_in_every_format(
    qtbot, tmp_path, estate, keyring_session, monkeypatch
) -> None:
    for k, v in keyring_session.env.items():
        monkeypatch.setenv(k, v)  # the evidence key's passphrase lives in this keyring
    monkeypatch.setenv("SEALCHECK_DATA_DIR", str(tmp_path / "data"))
    page = _page(qtbot, tmp_path, estate)
    assert not page.export_btn.isEnabled()  # no campaign yet
    with qtbot.waitSignal(page.audit_finished, timeout=120000) as done:
        page.audit_btn.click()
    qtbot.waitUntil(lambda: page.export_btn.isEnabled(), timeout=30000)
    campaign = done.args[0]["id"]
    for fmt in ("json", "html", "csv", "pdf"):
        out = tmp_path / f"audit.{fmt}"
        with qtbot.waitSignal(page.exported, timeout=60000) as got:
            page.export_to(out)
        assert got.args[0] is not None and got.args[0].signed_by, page.audit_status.text()
        assert out.stat().st_size > 0 and "Report written" in page.audit_status.text()
        qtbot.waitUntil(lambda: page.export_btn.isEnabled(), timeout=30000)
        if fmt == "csv":
            assert campaign in out.read_text()  # a spreadsheet's rows; core verifies the rest
            continue
        v = run_cli("report", "verify", str(out), env={**os.environ, **keyring_session.env})
        assert v.returncode == 0 and "report intact" in v.stdout, v.stdout + v.stderr
    doc = json.loads((tmp_path / "audit.json").read_text())["evidence"]
    assert doc["campaign"]["id"] == campaign
    assert {r["state"] for r in doc["coverage"]} == {"failed", "partly"}
    # Failures first, then OK, the campaign's own record last; by id within each (the
    # order the page sorted the entries in before core streamed them).
    mine = History(tmp_path / "history.sqlite3").entries(campaign=campaign, campaigns=True)
    rank = {"failed": 0, "not-checked": 1, "ok": 2}
    want = sorted(mine, key=lambda e: (3 if e.kind is Kind.AUDIT else rank[e.verdict.value], e.id))
    assert [r["history_id"] for r in doc["entries"]] == [e.id for e in want]
    assert doc["entries"][0]["verdict_code"] == "failed"
    with qtbot.waitSignal(page.exported, timeout=60000) as bad:
        page.export_to(tmp_path / "audit.txt")
    assert bad.args[0] is None and not (tmp_path / "audit.txt").exists()
    assert "must end in" in page.audit_status.text()
    qtbot.waitUntil(lambda: page.exporting is None, timeout=30000)


def test_sample_options_reach_the_campaign(qtbot, tmp_path, estate) -> None:
    page = _page(qtbot, tmp_path, estate)
    page.sample.setCurrentIndex(1)
    page.amount.setText("2")
    page.seed.setText("42")
    with qtbot.waitSignal(page.audit_finished, timeout=120000) as done:
        page.audit_btn.click()
    s = done.args[0]
    assert s["sample_size"] == 2 and s["seed"] == 42 and s["method"] == "random 2 (seeded)"
    qtbot.waitUntil(lambda: not page.reading and page.audit_job is None, timeout=30000)
    page.sample.setCurrentIndex(3)
    page.amount.setText("x/2")
    page.audit_btn.click()  # bad words: a clear message, nothing started
    assert page.audit_job is None and "--slice" in page.audit_status.text()


def test_audit_now_on_a_local_dask_cluster(qtbot, tmp_path, estate) -> None:
    """The cluster field reaches core's campaign (issue 15): the same road as the CLI's
    --cluster, progress and result on the page as for a local campaign."""
    pytest.importorskip("distributed")
    page = _page(qtbot, tmp_path, estate)
    page.cluster.setText("local:0")
    page.audit_btn.click()  # bad words: a clear message naming the field, nothing started
    assert page.audit_job is None and "Cluster:" in page.audit_status.text()
    assert "local:N" in page.audit_status.text()
    page.cluster.setText("local:2")
    seen: list[Any] = []
    shown = page._on_progress
    page._on_progress = lambda snap: (seen.append(snap), shown(snap))  # connected on click
    with qtbot.waitSignal(page.audit_finished, timeout=180000) as done:
        page.audit_btn.click()
    s = done.args[0]
    # The one progress line: versions done of the sample, as results streamed back
    # (the page shows at most a few a second, so not necessarily the last).
    assert seen and {x.total for x in seen} == {NIGHTS + 1}
    assert any(0 < x.done <= NIGHTS + 1 for x in seen)
    assert s["cluster"] == "local:2" and s["totals"] == {"ok": NIGHTS, "failed": 1}
    assert "Audit FAILED (on local:2)" in page.audit_status.text()
    qtbot.waitUntil(lambda: not page.reading and page.audit_job is None, timeout=30000)
    hist = History(tmp_path / "history.sqlite3")
    results = [e for e in hist.entries() if e.kind is not Kind.AUDIT]
    assert len(results) == NIGHTS + 1 and all(e.campaign == s["id"] for e in results)


def test_cancelled_audit_is_continued_by_the_next(qtbot, tmp_path, estate) -> None:
    page = _page(qtbot, tmp_path, estate)
    page.sample.setCurrentIndex(3)  # slice 1/1: every version, a resumable choice
    page.amount.setText("1/1")
    with qtbot.waitSignal(page.audit_finished, timeout=120000) as first:
        page.audit_btn.click()
        page.cancel_btn.click()  # while it lists: it stops before the end
    qtbot.waitUntil(lambda: not page.reading and page.audit_job is None, timeout=30000)
    assert first.args[0] is None and "Audit cancelled" in page.audit_status.text()
    hist = History(tmp_path / "history.sqlite3")
    (rec,) = hist.entries(kind=Kind.AUDIT)  # recorded as incomplete, to be continued
    s1 = json.loads(rec.result_json)
    assert s1["stopped"] == "cancelled" and not s1["complete"] and rec.exit_code == 130
    assert len([e for e in hist.entries() if e.kind is not Kind.AUDIT]) < NIGHTS + 1
    with qtbot.waitSignal(page.audit_finished, timeout=120000) as second:
        page.audit_btn.click()
    qtbot.waitUntil(lambda: not page.reading and page.audit_job is None, timeout=30000)
    s = second.args[0]
    assert s["complete"] and s["totals"] == {"ok": NIGHTS, "failed": 1}
    assert s["id"] == rec.campaign  # the same campaign (id and seed), continued
    # Only the versions left were checked again.
    assert len([e for e in hist.entries() if e.kind is not Kind.AUDIT]) == NIGHTS + 1


def test_the_window_page_follows_the_selected_source(qtbot, tmp_path, estate) -> None:
    folder = SourceConfig.local(tmp_path, name="folder")
    win = open_window(qtbot, tmp_path, [estate.source(), folder])
    page = win.audit_view
    assert win.tabs.indexOf(page) >= 0
    assert page.options is not None and page.options.location == estate.bucket.uri("db/")
    with qtbot.waitSignal(page.coverage_loaded, timeout=30000):
        win.tabs.setCurrentWidget(page)
        page.reload()
    assert set(_states(page).values()) == {"NEVER CHECKED"}  # its own, empty history
    qtbot.waitUntil(lambda: not page.reading, timeout=30000)
    win.sources.setCurrentRow(1)  # a folder has no versions to audit
    assert page.options is None and not page.audit_btn.isEnabled()
    assert page.model.rowCount() == 0


def test_coverage_chart_counts_from_a_real_history(qtbot, tmp_path, estate) -> None:
    """The chart of coverage over time replays the history day by day: real verifies (the
    CLI's results, recorded as if run 33 days and 1 day ago) give, per day, the versions
    in each state; words and patterns, not colour alone."""
    import datetime as dt

    from sealcheck.core.records.report import Report

    client = estate.bucket.store.client
    listed = client.list_object_versions(Bucket=estate.bucket.name, Prefix="db/")["Versions"]
    first_night = min(
        (v for v in listed if v["Key"] == "db/nightly.sql.gz"), key=lambda v: v["LastModified"]
    )
    (cut,) = [v for v in listed if v["Key"] == "db/cut.sql.gz"]
    now = dt.datetime.now(dt.UTC)
    hist = History(tmp_path / "history.sqlite3")
    for v, days_ago in ((first_night, 33), (cut, 1)):
        r = run_cli(
            "verify",
            estate.bucket.uri(v["Key"]),
            "--version-id",
            v["VersionId"],
            "--key",
            str(estate.key.private),
            "--endpoint-url",
            estate.bucket.endpoint,
            "--json",
            "--no-history",
            "--no-progress",
            timeout=120,
        )
        report = Report.from_dict(json.loads(r.stdout))
        assert report.ok is (v is first_night), r.stdout
        hist.record(report, when=now - dt.timedelta(days=days_ago))
    hist.close()

    page = _page(qtbot, tmp_path, estate)
    days = page.chart.days()
    today = now.date()
    assert len(days) == 30 and days[-1].day == today
    by = {d.day: d.counts for d in days}
    ago = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    assert by[ago(29)] == by[ago(20)] == {"partly": 1}  # verified, never restore-tested
    assert by[ago(2)] == {"partly, outdated": 1}  # and now older than 30 days
    assert by[ago(1)] == {"partly, outdated": 1, "failed": 1}
    # Today the other two nights exist too (written today), never checked.
    assert by[today] == {"partly, outdated": 1, "failed": 1, "never checked": 2}
    assert page.chart.legend() == [
        "failed 1",
        "never checked 2",
        "partly, outdated 1",
        "outdated 0",
        "partly 0",
        "ok 0",
    ]
    words = f"{today.isoformat()}: failed 1, never checked 2, partly, outdated 1"
    assert days[-1].text() == words and words in page.chart.accessibleDescription()
    # Drawn: each day's bar is where its tooltip is asked for.
    page.resize(900, 640)
    page.show()
    qtbot.waitExposed(page)
    assert not page.chart.grab().isNull()
    assert len(page.chart._bars) == 30
    assert page.chart.day_at(page.chart._bars[-1].center().toPoint()) == days[-1]
    assert page.chart.day_at(page.chart._bars[9].center().toPoint()) == days[9]


def test_an_app_verify_records_its_sources_targets(qtbot, tmp_path, estate) -> None:
    """A verify run from the Backups page keeps the RTO/RPO of the source that holds the
    backup in its record, as the CLI's verify and the audit do (issue 14)."""
    from dataclasses import replace

    src = replace(estate.source(), target_rto_s=600.0, target_rpo_h=26.0)
    win = open_window(qtbot, tmp_path, [src])
    assert win.browser.select_set("db/nightly.sql.gz")
    win.browser.versions_view.selectRow(0)
    win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=60000)
    hist = win.results.history
    assert hist is not None
    (entry,) = hist.entries(limit=1)
    assert entry.subject.key == "db/nightly.sql.gz" and entry.ok
    assert json.loads(entry.result_json)["targets"] == {
        "rto_s": 600.0,
        "rto_from": "source audit",
        "rpo_h": 26.0,
        "rpo_from": "source audit",
    }
