"""Coverage: per backup set and version, when it was last verified and last
restore-tested, with what result and how long ago, and one state an auditor reads at a
glance:

* ``never checked``: no run reached a verdict on it (setup problems are no verdict);
* ``failed``: its latest verdict is FAILED (verify or restore test);
* ``partly, outdated``: both below at once (an old verify, never restore-tested): the
  auditor needs to know both that it is stale and that it was never restored;
* ``outdated``: its latest verdict is older than the limit (``--outdated-after``);
* ``partly``: verified but never restore-tested, or restore-tested with drift that
  lost data (tables removed or emptied);
* ``ok``: verified and restore-tested, both OK and recent.

A failure stays ``failed`` however old: its age changes nothing an auditor must do.

Read from the history alone, or against a listed population (then versions nobody
ever checked are there too).
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..records.history import Entry, History, Kind
from ..storage.locate import ListedVersion

DEFAULT_OUTDATED_DAYS = 30.0


class State(enum.Enum):
    NEVER = "never checked"
    FAILED = "failed"
    PARTLY_OUTDATED = "partly, outdated"
    OUTDATED = "outdated"
    PARTLY = "partly"
    OK = "ok"


# Worst first: how a backup set's state is the worst of its versions'.
ORDER = (
    State.FAILED,
    State.NEVER,
    State.PARTLY_OUTDATED,
    State.OUTDATED,
    State.PARTLY,
    State.OK,
)


@dataclass(frozen=True)
class VersionCoverage:
    backup: str  # s3://bucket/key or the path
    version_id: str | None
    state: str
    last_verified: str | None
    verify_result: str | None
    last_restore_tested: str | None
    restore_test_result: str | None
    age_days: float | None  # since the latest verdict
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lost_data(e: Entry) -> bool:
    try:
        drift = json.loads(e.result_json).get("drift") or {}
    except ValueError:
        return False
    return bool(drift.get("tables_removed") or drift.get("emptied"))


def _days(e: Entry | None, now: _dt.datetime) -> float | None:
    return None if e is None else round((now - e.when_dt).total_seconds() / 86400, 2)


def state_of(
    verified: Entry | None, tested: Entry | None, now: _dt.datetime, outdated_days: float
) -> tuple[State, str]:
    if verified is None:
        return State.NEVER, "no run reached a verdict on this version"
    if not verified.ok:
        return State.FAILED, f"its latest verdict ({verified.kind.value}) is FAILED"
    if tested is not None and not tested.ok:
        return State.FAILED, "its latest restore test FAILED"
    age = (now - verified.when_dt).total_seconds() / 86400
    old = f"last checked {age:.0f} days ago (limit {outdated_days:g})"
    if tested is None:
        partly = "verified, never restore-tested"
    elif _lost_data(tested):
        partly = "restore-tested, with tables removed or emptied since the baseline"
    else:
        partly = ""
    if age > outdated_days:
        return (State.PARTLY_OUTDATED, f"{partly}; {old}") if partly else (State.OUTDATED, old)
    if partly:
        return State.PARTLY, partly
    return State.OK, "verified and restore-tested"


def coverage(
    history: History,
    *,
    source: str | None = None,
    population: Sequence[ListedVersion] | None = None,
    outdated_days: float = DEFAULT_OUTDATED_DAYS,
    now: _dt.datetime | None = None,
) -> list[VersionCoverage]:
    """One row per version: those in ``population`` (when given, never-checked ones
    included) or else every version the history knows (matching ``source``)."""
    now = now or _dt.datetime.now(_dt.UTC)
    verified: dict[tuple[str, str | None], Entry] = {}
    tested: dict[tuple[str, str | None], Entry] = {}
    for e in history.entries(source=source):  # newest first
        if not e.verdict.is_verdict or e.kind is Kind.AUDIT:
            continue
        k = (e.subject.uri, e.subject.version_id)
        verified.setdefault(k, e)  # a restore test verifies too
        if e.kind is Kind.RESTORE_TEST:
            tested.setdefault(k, e)
    keys: Iterable[tuple[str, str | None]]
    if population is not None:
        keys = [(v.where, v.data.version_id) for v in population]
    else:
        keys = sorted(verified)
    rows = []
    for k in keys:
        v, t = verified.get(k), tested.get(k)
        state, why = state_of(v, t, now, outdated_days)
        rows.append(
            VersionCoverage(
                backup=k[0],
                version_id=k[1],
                state=state.value,
                last_verified=v.when if v else None,
                verify_result=v.verdict.label if v else None,
                last_restore_tested=t.when if t else None,
                restore_test_result=t.verdict.label if t else None,
                age_days=_days(v, now),
                why=why,
            )
        )
    rank = {s.value: i for i, s in enumerate(ORDER)}
    return sorted(rows, key=lambda r: (rank[r.state], r.backup, r.version_id or ""))


def by_backup(rows: Sequence[VersionCoverage]) -> dict[str, dict[str, Any]]:
    """Per backup set: its versions' states counted, and its own (the worst)."""
    out: dict[str, dict[str, Any]] = {}
    rank = {s.value: i for i, s in enumerate(ORDER)}
    for r in rows:
        b = out.setdefault(r.backup, {"state": r.state, "versions": 0, "states": {}})
        b["versions"] += 1
        b["states"][r.state] = b["states"].get(r.state, 0) + 1
        if rank[r.state] < rank[b["state"]]:
            b["state"] = r.state
    return out
