"""The merge reads each result part once and keeps only where each row is (issue 15):
a copy of a row written otherwise (other key order) is still one proof, a part changed
between choosing and recording records nothing, and what it records is chained in the
plan's order. (Merges of real shards' results: tests/integration/test_scale.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_shard_plan import WHEN, listed

from sealcheck.core.audit.item import ItemResult
from sealcheck.core.audit.merge import merge, record, recorded
from sealcheck.core.audit.plan import Operation, Plan, PlanError, WorkItem, write_plan
from sealcheck.core.audit.results import Folder, Parts, PartWriter, ResultsError
from sealcheck.core.audit.summary import Drawn
from sealcheck.core.records.history import History
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import Report

N = 5


def make_plan(tmp: Path) -> Plan:
    items = [WorkItem.of(listed(n), endpoint=None, operation=Operation.VERIFY, strict=True)
             for n in range(N)]  # fmt: skip
    drawn = Drawn("audit-merge", "s3://bkt/db/", "all", N, "whole population", None, None,
                  None, (), {}, {}, "audit")  # fmt: skip
    return write_plan(tmp / "plan.jsonl", drawn.to_dict(), items)


def row(plan: Plan, n: int) -> str:
    item = plan.items[n]
    report = Report(
        source=SourceIdentity(uri=f"s3://bkt/{item.key}", size=item.size, version_id=item.version_id),
        wrapped_key=None, operation="verify", ok=True, layers=(), formats=(), error=None,
        started_at=WHEN.isoformat(), duration_s=0.5, sealcheck_version="test",
    )  # fmt: skip
    return ItemResult.of(item, report, plan.sha256).to_json()


def test_a_copy_written_otherwise_is_one_proof_and_order_is_the_plans(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    res = tmp_path / "res"
    res.mkdir()
    rows = [row(plan, n) for n in range(N)]
    (res / "a.jsonl").write_text("\n".join(reversed(rows)) + "\n")
    reordered = json.dumps(dict(reversed(list(json.loads(rows[2]).items()))))
    assert reordered != rows[2]
    (res / "b.jsonl").write_text(reordered + "\n")
    history = History(tmp_path / "history.sqlite3")
    with Parts() as parts:
        merged = merge(plan, parts, [Folder(res, create=False)])
        assert merged.complete and merged.duplicates == 1
        out = record(plan, merged, parts, history, shards=None)
    full = recorded(history, out)
    assert [e.subject.version_id for e in full[:-1]] == [f"v{n}" for n in range(N)]
    assert [e.id for e in full] == [e.id for e in out.entries]
    assert all(e.result_json for e in full) and out.summary["totals"] == {"ok": N}
    assert history.check_chain() == []  # no problem found in the chain


def test_a_part_changed_before_recording_records_nothing(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    res = tmp_path / "res"
    res.mkdir()
    part = res / "a.jsonl"
    part.write_text("\n".join(row(plan, n) for n in range(N)) + "\n")
    history = History(tmp_path / "history.sqlite3")
    with Parts() as parts:
        merged = merge(plan, parts, [Folder(res, create=False)])
        assert merged.complete
        part.write_text(part.read_text().replace('"duration_s":0.5', '"duration_s":9.5'))
        with pytest.raises(ResultsError, match="changed while the merge read it"):
            record(plan, merged, parts, history, shards=None)
    assert history.entries(campaigns=True) == []


def test_a_record_its_dataclasses_refuse_is_named_and_nothing_recorded(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    res = tmp_path / "res"
    res.mkdir()
    rows = [row(plan, n) for n in range(N)]
    rows[3] = rows[3].replace('"size":1003', '"size":"1003"')
    (res / "a.jsonl").write_text("\n".join(rows) + "\n")
    with Parts() as parts, pytest.raises(PlanError, match=r"record cannot be read.*source\.size"):
        merge(plan, parts, [Folder(res, create=False)])


def test_the_campaign_record_says_what_ran_it(tmp_path: Path) -> None:
    """The shard count and the shard runs, from the parts' names; not how many each ran
    at once (each shard's own --parallel: its results do not say it)."""
    plan = make_plan(tmp_path)
    dest = Folder(tmp_path / "res", create=True)
    for shard in (0, 1):
        writer = PartWriter(dest, shard, 2)
        for n in range(shard, N, 2):
            writer.add(ItemResult.from_json(row(plan, n)))
        writer.flush()
    rerun = PartWriter(dest, 1, 2)  # a rerun of shard 1 that proved one item again
    rerun.add(ItemResult.from_json(row(plan, 1)))
    rerun.flush()
    history = History(tmp_path / "history.sqlite3")
    with Parts() as parts:
        merged = merge(plan, parts, [dest])
        out = record(plan, merged, parts, history, shards=None)
    s = out.summary
    assert (s["shards"], s["shard_runs"], s["parallel"]) == (2, 3, None)
    assert merged.duplicates == 1
