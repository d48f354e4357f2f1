"""The coordinator's merge of a sharded campaign: every item of the plan must have
exactly one result; only then are the results and the campaign recorded in the history
(the coordinator is the only writer of it), in one transaction.

Per item, among the rows the destinations hold for this plan:

* rows with a verdict (OK or FAILED): the same record more than once is one result (a
  results folder given twice, a copy); two different records are a conflict, named;
* no verdict, only runs that could not check it (NOT CHECKED): the newest such run is
  its result (its shard's reruns tried again and could not either);
* no row at all: missing, named. A row for an item the plan does not hold, or whose
  record is about another version, is named too.

An incomplete or inconsistent merge records nothing (exit 2): rerun the shards named,
then merge again. A merge of a campaign already in the history records nothing again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import ExitCode, SealcheckError
from ..records.history import Entry, History, Kind, Subject, Trigger
from ..records.restore_result import RestoreTestResult
from .item import ItemResult, Result
from .plan import Plan, PlanError
from .results import Row
from .summary import Drawn, summarize


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a merge holds 100,000 parsed records:
    they are plain JSON data (no cycles to find), and each collection would walk all of
    them again (two thirds of reading the results went to it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class MergeRefused(SealcheckError):
    """The campaign is already in the history; nothing was recorded again."""


@dataclass
class Merged:
    chosen: dict[str, tuple[Result, ItemResult]] = field(default_factory=dict)  # by item id
    missing: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # item -> where each came from
    strangers: list[str] = field(default_factory=list)  # rows that match no plan item
    duplicates: int = 0  # identical copies of one proof, counted once

    @property
    def complete(self) -> bool:
        return not (self.missing or self.conflicts or self.strangers)


def merge(plan: Plan, rows: Iterable[Row]) -> Merged:
    by_item: dict[str, list[Row]] = {}
    out = Merged()
    items = {i.id: i for i in plan.items}
    for row in rows:
        item = items.get(row.result.item)
        if item is None or row.result.operation is not item.operation:
            out.strangers.append(f"{row.result.item} ({row.where})")
            continue
        by_item.setdefault(item.id, []).append(row)
    for item in plan.items:
        found = by_item.get(item.id, [])
        proofs = [r for r in found if r.result.verdict.is_verdict]
        distinct: list[Row] = []
        for r in proofs:
            if not any(r.result.same(d.result) for d in distinct):
                distinct.append(r)
        if len(distinct) > 1:
            out.conflicts[item.id] = [r.where for r in distinct]
            continue
        out.duplicates += len(proofs) - len(distinct)
        if distinct:
            chosen = distinct[0].result
        elif found:
            chosen = max((r.result for r in found), key=_started)
        else:
            out.missing.append(item.id)
            continue
        result = chosen.result()
        if _subject(result) != (item.bucket, item.key, item.version_id):
            out.strangers.append(f"{item.id} (its record is about another version)")
            continue
        out.chosen[item.id] = (result, chosen)
    return out


def _started(r: ItemResult) -> str:
    return str(r.record.get("started_at") or "")


def _subject(result: Result) -> tuple[str | None, str, str | None] | None:
    report = result.verification if isinstance(result, RestoreTestResult) else result
    if report is None or report.source is None:
        return None
    s = Subject.of(report.source)
    return (s.bucket, s.key, s.version_id)


@dataclass
class MergeOutcome:
    summary: dict[str, object]
    entries: list[Entry]  # this campaign's results and its record, in id order
    exit_code: int


def record(plan: Plan, merged: Merged, history: History, *, shards: int | None) -> MergeOutcome:
    """Record a complete merge: the results (those not already recorded by an earlier,
    interrupted merge), then the campaign record from what the history then holds."""
    if not merged.complete:
        raise PlanError("the merge is incomplete; nothing recorded", obj=plan.name)
    drawn = Drawn.from_dict(plan.campaign, plan.name)
    earlier = history.entries(campaign=drawn.id, campaigns=True)
    done = [e for e in earlier if e.kind is Kind.AUDIT]
    if done:
        raise MergeRefused(
            f"campaign {drawn.id} was merged already (history record #{done[0].id})",
            obj=plan.name,
        )
    have = {e.version_key for e in earlier}
    trigger = Trigger(drawn.trigger)
    todo = [(i, merged.chosen[i.id]) for i in plan.items if (i.key, i.version_id) not in have]
    added = history.record_many(
        [result for _, (result, _) in todo],
        trigger=trigger,
        campaign=drawn.id,
        as_made=[row.record for _, (_, row) in todo],
        targets=[drawn.targets_of(f"s3://{i.bucket}/{i.key}") for i, _ in todo],
    )
    # What the history now holds for this campaign: what an interrupted merge recorded
    # and what this one did (not read back: 100,000 rows).
    results = [*earlier, *added]
    summary = summarize(
        drawn,
        plan.items,
        results,
        started=str(plan.campaign.get("planned_at") or _now()),
        stopped=None,
        resumed=bool(earlier),
        parallel=0,
    )
    summary["plan_sha256"] = plan.sha256
    summary["shards"] = shards
    summary["duplicates_merged"] = merged.duplicates
    code = int(summary["exit_code"])
    rec = history.record_campaign(
        summary,
        where=drawn.where,
        ok=code == ExitCode.OK,
        exit_code=code,
        campaign=drawn.id,
        trigger=trigger,
    )
    return MergeOutcome(summary, sorted([*results, rec], key=lambda e: e.id), code)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
