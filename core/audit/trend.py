"""Coverage over time (issue 14): for each day, how many versions were in each coverage
state at the end of that day, replayed from the history (the states of coverage.py,
with the day's end as "now", so a version becomes outdated on the day its last verdict
passes the limit). For the app's chart of coverage over time.

A version counts from the day it was written (its listing's last-modified, when a
population is given) or the day of its first record, whichever is earlier.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..records.history import Entry, History, Kind
from ..storage.locate import ListedVersion
from .coverage import DEFAULT_OUTDATED_DAYS, ORDER, state_of

Key = tuple[str, str | None]


@dataclass(frozen=True)
class Day:
    day: _dt.date
    counts: dict[str, int] = field(default_factory=dict)  # state words -> versions

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def text(self) -> str:
        """The day in words, worst state first (states with no version left out)."""
        parts = [f"{s.value} {self.counts[s.value]}" for s in ORDER if self.counts.get(s.value)]
        return f"{self.day.isoformat()}: " + (", ".join(parts) or "no versions")


def by_day(
    history: History,
    *,
    source: str | None = None,
    population: Sequence[ListedVersion] | None = None,
    outdated_days: float = DEFAULT_OUTDATED_DAYS,
    days: int = 30,
    now: _dt.datetime | None = None,
) -> list[Day]:
    """The last ``days`` days (UTC), oldest first; today ends now."""
    now = now or _dt.datetime.now(_dt.UTC)
    # In the order they happened (a result may be recorded after a later one).
    verdicts = sorted(
        (e for e in history.entries(source=source) if e.verdict.is_verdict),
        key=lambda e: (e.when_dt, e.id),
    )
    verdicts = [e for e in verdicts if e.kind is not Kind.AUDIT]
    born: dict[Key, _dt.datetime] = {}
    for v in population or ():
        born[(v.where, v.data.version_id)] = v.data.last_modified
    for e in verdicts:
        k = (e.subject.uri, e.subject.version_id)
        if population is None or k in born:
            born[k] = min(born.get(k, e.when_dt), e.when_dt)
    verified: dict[Key, Entry] = {}
    tested: dict[Key, Entry] = {}
    out: list[Day] = []
    i = 0
    today = now.date()
    for n in range(days - 1, -1, -1):
        day = today - _dt.timedelta(days=n)
        end = min(now, _dt.datetime.combine(day + _dt.timedelta(days=1), _dt.time(), _dt.UTC))
        while i < len(verdicts) and verdicts[i].when_dt < end:
            e = verdicts[i]
            k = (e.subject.uri, e.subject.version_id)
            verified[k] = e  # a restore test verifies too
            if e.kind is Kind.RESTORE_TEST:
                tested[k] = e
            i += 1
        counts: dict[str, int] = {}
        for k, first in born.items():
            if first >= end:
                continue
            state, _why = state_of(verified.get(k), tested.get(k), end, outdated_days)
            counts[state.value] = counts.get(state.value, 0) + 1
        out.append(Day(day, counts))
    return out
