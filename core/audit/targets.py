"""An audit campaign's recovery figures against the targets (core/records/targets.py):
the recovery time of each restore test against its RTO, the age of each backup's
newest version against its RPO. Each backup is measured against its own source's
targets unless the command line set one for all. Not failures: reported for the
auditor; the exit code stays the backups'."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..records.history import Entry, Kind
from ..records.targets import SourceTargets, targets_for


def measure(
    newest: Mapping[str, _dt.datetime],
    latest: Iterable[Entry],
    sources: tuple[SourceTargets, ...],
    rto_s: float | None,
    rpo_h: float | None,
) -> dict[str, Any]:
    """``newest``: each backup's newest version's last-modified (summary.newest_of)."""
    now = _dt.datetime.now(_dt.UTC)
    rpo = []
    for where, made in sorted(newest.items()):
        t = targets_for(where, sources, rto_s, rpo_h)
        age = (now - made).total_seconds()
        rpo.append(
            {
                "backup": where,
                "newest_age_h": round(age / 3600, 2),
                "target_h": t.rpo_h,
                "from": t.rpo_from,
                "met": None if t.rpo_h is None else age <= t.rpo_h * 3600,
            }
        )
    rto = []
    for e in latest:
        if e.kind is Kind.RESTORE_TEST and e.verdict.is_verdict:
            took = json.loads(e.result_json).get("total_seconds")
            t = targets_for(e.subject.uri, sources, rto_s, rpo_h)
            rto.append(
                {
                    "version": e.subject.label,
                    "recovery_s": took,
                    "target_s": t.rto_s,
                    "from": t.rto_from,
                    "met": None if t.rto_s is None or took is None else took <= t.rto_s,
                }
            )
    return {"rto_s": rto_s, "rpo_h": rpo_h, "rto": rto, "rpo": rpo}
