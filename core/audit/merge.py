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
from typing import Any

from ..errors import ExitCode, SealcheckError
from ..records.history import Entry, History, Kind, Subject, Trigger
from ..records.identity import SourceIdentity
from ..records.targets import Targets
from .item import ItemResult, Result
from .plan import Operation, Plan, PlanError, WorkItem
from .results import Destination, Parts, Place
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
    chosen: dict[str, Place] = field(default_factory=dict)  # by item id: where its result is
    missing: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # item -> where each came from
    strangers: list[str] = field(default_factory=list)  # rows that match no plan item
    duplicates: int = 0  # identical copies of one proof, counted once

    @property
    def complete(self) -> bool:
        return not (self.missing or self.conflicts or self.strangers)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the first pass keeps of a row: its place, and what choosing needs."""

    place: Place
    proof: bool  # a verdict (OK or FAILED)
    started: str
    about_it: bool | None  # its record is about the item's version (None: unreadable)


def merge(plan: Plan, parts: Parts, dests: Iterable[Destination]) -> Merged:
    """Read the destinations' rows once (``parts`` keeps where each is, not the rows),
    and choose each item's one result."""
    by_item: dict[str, list[_Seen]] = {}
    out = Merged()
    items = {i.id: i for i in plan.items}
    for dest in dests:
        for row, place in parts.scan(dest, plan.sha256):
            item = items.get(row.item)
            if item is None or row.operation is not item.operation:
                out.strangers.append(f"{row.item} ({parts.where(place)})")
                continue
            seen = _Seen(place, row.verdict.is_verdict, _started(row), _about(row, item))
            by_item.setdefault(item.id, []).append(seen)
    for item in plan.items:
        found = by_item.pop(item.id, [])
        proofs = [s for s in found if s.proof]
        distinct = _distinct(proofs, parts)
        if len(distinct) > 1:
            out.conflicts[item.id] = [parts.where(s.place) for s in distinct]
            continue
        out.duplicates += len(proofs) - len(distinct)
        if distinct:
            chosen = distinct[0]
        elif found:
            chosen = max(found, key=lambda s: s.started)
        else:
            out.missing.append(item.id)
            continue
        if chosen.about_it is None:
            # Its dataclasses refuse it: the PlanError naming it, as reading it gives.
            parts.read([chosen.place])[0].result()
        if not chosen.about_it:
            out.strangers.append(f"{item.id} (its record is about another version)")
            continue
        out.chosen[item.id] = chosen.place
    return out


def _distinct(proofs: list[_Seen], parts: Parts) -> list[_Seen]:
    """One of each different proof: identical bytes are one without reading them again;
    rows whose bytes differ are compared as records (a copy written otherwise)."""
    first: dict[bytes, _Seen] = {}
    for s in proofs:
        first.setdefault(s.place.digest, s)
    by_bytes = list(first.values())
    if len(by_bytes) < 2:
        return by_bytes
    rows = parts.read(s.place for s in by_bytes)
    distinct: list[tuple[_Seen, ItemResult]] = []
    for s, r in zip(by_bytes, rows, strict=True):
        if not any(r.same(d) for _, d in distinct):
            distinct.append((s, r))
    return [s for s, _ in distinct]


def _started(r: ItemResult) -> str:
    return str(r.record.get("started_at") or "")


def _about(r: ItemResult, item: WorkItem) -> bool | None:
    """Whether a row's record is about the item's version, read from its JSON as its
    dataclasses would give it (``Subject.of`` its source) without building them; None
    when that part of the record is one they refuse (damaged)."""
    report = r.record.get("verification") if r.operation is Operation.RESTORE_TEST else r.record
    if not isinstance(report, dict):
        return None if report is not None else False
    source = report.get("source")
    if source is None:
        return False
    try:
        s = Subject.of(SourceIdentity.from_dict(source))
    except ValueError:
        return None
    return (s.bucket, s.key, s.version_id) == (item.bucket, item.key, item.version_id)


@dataclass
class MergeOutcome:
    summary: dict[str, object]
    # This campaign's results and its record, in id order, as ``Entry.tally`` keeps them
    # (a merge holds no campaign's worth of records; the report reads them back).
    entries: list[Entry]
    exit_code: int


BATCH = 1000  # results read back and recorded at a time


def record(
    plan: Plan, merged: Merged, parts: Parts, history: History, *, shards: int | None
) -> MergeOutcome:
    """Record a complete merge: the results (those not already recorded by an earlier,
    interrupted merge), then the campaign record from what the history then holds. The
    chosen rows are read back a batch at a time, in the plan's order, and recorded in
    one transaction. ``shards``: how many the plan was cut in, when the caller knows;
    None: as the names of the parts that gave the results say."""
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
    todo = [i for i in plan.items if (i.key, i.version_id) not in have]

    def results() -> Iterator[tuple[Result, dict[str, Any], Targets]]:
        for at in range(0, len(todo), BATCH):
            batch = todo[at : at + BATCH]
            rows = parts.read(merged.chosen[i.id] for i in batch)
            for i, row in zip(batch, rows, strict=True):
                yield row.result(), row.record, drawn.targets_of(f"s3://{i.bucket}/{i.key}")

    trigger = Trigger(drawn.trigger)
    added = history.record_many(results(), trigger=trigger, campaign=drawn.id, keep=Entry.tally)
    # What the history now holds for this campaign: what an interrupted merge recorded
    # and what this one did (not read back: 100,000 rows).
    results_in = [*(e.tally() for e in earlier), *added]
    summary = summarize(
        drawn,
        plan.items,
        results_in,
        started=str(plan.campaign.get("planned_at") or _now()),
        stopped=None,
        resumed=bool(earlier),
        parallel=None,  # each shard's own --parallel: its results do not say it
    )
    cut, runs = parts.ran()
    summary["plan_sha256"] = plan.sha256
    summary["shards"] = shards if shards is not None else cut
    summary["shard_runs"] = runs
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
    return MergeOutcome(summary, sorted([*results_in, rec], key=lambda e: e.id), code)


def recorded(history: History, out: MergeOutcome) -> list[Entry]:
    """The merged campaign's records in full, read back from the history (for its report)."""
    campaign = str(out.summary["id"])
    return sorted(history.entries(campaign=campaign, campaigns=True), key=lambda e: e.id)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
