"""Drift against an earlier restore test of the same backup (a saved ``--json`` result).

Tables added or removed and row-count changes, with tables that suddenly became empty
called out: the sign an auditor must not miss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .model import Drift, RowChange

if TYPE_CHECKING:
    from .model import RestoreTestResult


def compare(now: RestoreTestResult, baseline: Path) -> Drift:
    try:
        before: dict[str, Any] = json.loads(baseline.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the earlier result {baseline}: {exc}") from None
    old = {_key(t): t for t in before.get("tables") or []}
    new = {_key({"schema": t.schema, "name": t.name}): t for t in now.tables}
    changes, emptied, sums = [], [], []
    for k in sorted(set(old) & set(new)):
        a, b = old[k].get("rows"), new[k].rows
        if a != b:
            changes.append(RowChange(k, a, b))
            if a and not b:
                emptied.append(k)
        if old[k].get("checksum") and new[k].checksum and old[k]["checksum"] != new[k].checksum:
            sums.append(k)
    return Drift(
        baseline=str(baseline),
        baseline_started_at=before.get("started_at"),
        tables_added=tuple(sorted(set(new) - set(old))),
        tables_removed=tuple(sorted(set(old) - set(new))),
        row_changes=tuple(changes),
        emptied=tuple(emptied),
        checksum_changes=tuple(sums),
    )


def _key(t: dict[str, Any]) -> str:
    name = str(t.get("name"))
    return name if "." in name else f"{t.get('schema')}.{name}"
