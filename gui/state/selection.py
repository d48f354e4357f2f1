"""What a multi-selection holds, in one line: "3 selected: 2 OK, 1 FAILED".

Counted by each version's last verdict (core/records/verdict.py): a version whose newest run
could not check it keeps its verdict here too; one that never reached a verdict is
"not checked", one never run "not verified". Counts cost no parsing of stored results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sealcheck.core.records.verdict import Verdict

from .results import ResultStore
from .versions import VersionKey

_ORDER = (
    (Verdict.OK, "OK"),
    (Verdict.FAILED, "FAILED"),
    (Verdict.NOT_CHECKED, "not checked"),
    (None, "not verified"),
)


def selection_summary(results: ResultStore, keys: Iterable[VersionKey], what: str = "") -> str:
    """One line: 3 selected: 2 OK, 1 FAILED (``what`` "backups": 3 backups selected: …)."""
    counts = Counter(results.verdict_of(k) for k in keys)
    total = sum(counts.values())
    parts = [f"{counts[v]} {words}" for v, words in _ORDER if counts[v]]
    lead = f"{total} {what} selected" if what else f"{total} selected"
    return f"{lead}: {', '.join(parts)}" if parts else lead
