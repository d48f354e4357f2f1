"""Coverage over time (issue 14, core/audit/trend.py): each day's states replayed from
the history in the order things happened, whatever order they were recorded in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sealcheck.core.audit.trend import by_day
from sealcheck.core.errors import IntegrityError
from sealcheck.core.records.history import History
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import ErrorInfo, Report

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def verified(key: str, ok: bool) -> Report:
    return Report(
        operation="verify",
        source=SourceIdentity(uri=f"s3://b/{key}", size=1, version_id="v1"),
        wrapped_key=None,
        ok=ok,
        layers=(),
        formats=(),
        error=None if ok else ErrorInfo.from_exc(IntegrityError("cut")),
        started_at=NOW.isoformat(),
        duration_s=0.1,
        sealcheck_version="t",
    )


def test_days_replay_in_time_order(tmp_path: Path) -> None:
    hist = History(tmp_path / "h.sqlite3")
    # Recorded out of order: the older verdict of a.sql comes last.
    hist.record(verified("a.sql", False), when=NOW - dt.timedelta(days=2))
    hist.record(verified("b.sql", True), when=NOW - dt.timedelta(days=35))
    hist.record(verified("a.sql", True), when=NOW - dt.timedelta(days=5))
    days = by_day(hist, now=NOW, days=10)
    assert [d.day for d in days][-1] == NOW.date() and len(days) == 10
    got = {(NOW.date() - d.day).days: d.counts for d in days}
    assert got[9] == {"partly": 1}  # b alone (a had no record yet), 26 days old
    assert got[5] == {"partly, outdated": 1, "partly": 1}
    assert got[2] == got[0] == {"partly, outdated": 1, "failed": 1}
    assert days[-1].text() == "2026-12-07: failed 1, partly, outdated 1"
