"""A campaign's own record: what was drawn (``Drawn``, also the shard plan's header)
and, once its results are in the history, the totals, the exit code and the targets.

One road for a campaign run on this machine and for one merged from shards: both
record their results first, then ``summarize`` reads them back as the history has them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ExitCode
from ..records.history import Entry, Kind
from ..records.targets import SourceTargets, Targets, targets_for
from ..records.verdict import Verdict
from ..storage.locate import ListedVersion
from .plan import Operation, PlanError, WorkItem
from .targets import measure

VersionKey = tuple[str, str | None]


@dataclass(frozen=True)
class Drawn:
    """What a campaign set out to check, before any of it ran."""

    id: str
    where: str  # s3://bucket/prefix
    versions: str  # current | all | since:DATE
    population: int  # versions listed, the skipped ones included
    method: str
    seed: int | None
    slice: tuple[int, int] | None
    restore: str | None  # newest | sample:N
    skipped: tuple[dict[str, Any], ...]  # Glacier versions and why
    newest: dict[str, str]  # backup -> its newest version's last-modified (the RPO)
    resume_key: dict[str, Any]
    trigger: str
    target_rto_s: float | None = None  # --target-rto: for every backup
    target_rpo_h: float | None = None
    source_targets: tuple[SourceTargets, ...] = ()  # the sources file's, per source

    def targets_of(self, uri: str) -> Targets:
        return targets_for(uri, self.source_targets, self.target_rto_s, self.target_rpo_h)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "where": self.where,
            "versions": self.versions,
            "population": self.population,
            "method": self.method,
            "seed": self.seed,
            "slice": list(self.slice) if self.slice else None,
            "restore_test": self.restore,
            "skipped": list(self.skipped),
            "newest": dict(sorted(self.newest.items())),
            "resume_key": self.resume_key,
            "trigger": self.trigger,
            "target_rto_s": self.target_rto_s,
            "target_rpo_h": self.target_rpo_h,
            "source_targets": [asdict(t) for t in self.source_targets],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "plan") -> Drawn:
        try:
            sl = d["slice"]
            return cls(
                id=str(d["id"]),
                where=str(d["where"]),
                versions=str(d["versions"]),
                population=int(d["population"]),
                method=str(d["method"]),
                seed=None if d["seed"] is None else int(d["seed"]),
                slice=None if sl is None else (int(sl[0]), int(sl[1])),
                restore=None if d["restore_test"] is None else str(d["restore_test"]),
                skipped=tuple(dict(s) for s in d["skipped"]),
                newest={str(k): str(v) for k, v in dict(d["newest"]).items()},
                resume_key=dict(d["resume_key"]),
                trigger=str(d["trigger"]),
                target_rto_s=None if d["target_rto_s"] is None else float(d["target_rto_s"]),
                target_rpo_h=None if d["target_rpo_h"] is None else float(d["target_rpo_h"]),
                source_targets=tuple(SourceTargets(**t) for t in d.get("source_targets", ())),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PlanError(f"its campaign header is not one ({exc})", obj=where) from None


def newest_of(pop: Iterable[ListedVersion]) -> dict[str, str]:
    newest: dict[str, _dt.datetime] = {}
    for v in pop:
        newest[v.where] = max(newest.get(v.where, v.data.last_modified), v.data.last_modified)
    return {w: t.isoformat() for w, t in newest.items()}


def summarize(
    drawn: Drawn,
    items: Sequence[WorkItem],
    results: list[Entry],
    *,
    started: str,
    stopped: str | None,
    resumed: bool,
    parallel: int | None,  # None: not known here (a merge of shards run elsewhere)
) -> dict[str, Any]:
    """The campaign record from its sample and its results as the history holds them."""
    latest: dict[VersionKey, Entry] = {}
    for e in sorted(results, key=lambda e: e.id):
        if e.kind is not Kind.AUDIT:
            latest[(e.subject.key, e.subject.version_id)] = e
    totals: dict[str, int] = {}
    for e in latest.values():
        totals[e.verdict.value] = totals.get(e.verdict.value, 0) + 1
    sampled = {(i.key, i.version_id) for i in items}
    checked = {k for k, e in latest.items() if k in sampled and e.verdict.is_verdict}
    complete = stopped is None and checked == sampled
    verdicts = {e.verdict for e in latest.values()}
    if stopped == "cancelled":
        code = int(ExitCode.CANCELLED)
    elif Verdict.FAILED in verdicts:
        code = int(ExitCode.BACKUP_FAILED)
    elif Verdict.NOT_CHECKED in verdicts:
        code = int(ExitCode.USAGE)
    else:
        code = int(ExitCode.OK)
    restored = sorted(i.id for i in items if i.operation is Operation.RESTORE_TEST)
    return {
        "id": drawn.id,
        "where": drawn.where,
        "started_at": started,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": drawn.versions,
        "population": drawn.population,
        "sample_size": len(items),
        "method": drawn.method,
        "seed": drawn.seed,
        "slice": list(drawn.slice) if drawn.slice else None,
        "restore_test": drawn.restore,
        "restore_tested": restored,
        "parallel": parallel,
        "skipped": list(drawn.skipped),
        "totals": totals,
        "not_yet_checked": len(sampled - checked),
        "stopped": stopped,
        "resumed": resumed,
        "complete": complete,
        "exit_code": code,
        "resume_key": drawn.resume_key,
        "targets": measure(
            {w: _dt.datetime.fromisoformat(t) for w, t in drawn.newest.items()},
            latest.values(),
            drawn.source_targets,
            drawn.target_rto_s,
            drawn.target_rpo_h,
        ),
    }
