"""The one road for a signed evidence report written to a file: ``sealcheck report
export``, ``sealcheck audit --report``, ``sealcheck audit merge --report`` and the app's
Audit page all write theirs here.

The selection is a list of history ids in the report's order (ids are small: 100,000
of them are a few MB); the records are read back from the history a batch at a time
while the report is signed and written (``evidence.build_streamed``), so a report of
100,000 versions never holds them, nor the file's bytes (the PDF excepted: see
report_formats). The file appears whole at its destination or not at all
(AtomicWriter).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..plumbing.atomic import AtomicWriter
from . import chain, evidence
from .chain import Signer
from .history import History, HistoryError, Kind
from .verdict import Verdict

_FIRST = {Verdict.FAILED: 0, Verdict.NOT_CHECKED: 1, Verdict.OK: 2}


class Ordered(Protocol):
    """An entry as a campaign's report orders it (a history Entry or Tag)."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> Kind: ...

    @property
    def verdict(self) -> Verdict: ...


def failures_first(e: Ordered) -> tuple[int, int]:
    """A campaign report's order: failures, then runs that could not check, then OK,
    the campaign's own record last; by id within each."""
    return (3 if e.kind is Kind.AUDIT else _FIRST[e.verdict], e.id)


@dataclass(frozen=True)
class Written:
    path: Path
    records: int
    signed_by: str | None  # the signing key's fingerprint; None: sealed, not signed


def write(
    history: History,
    ids: Sequence[int],
    fmt: str,
    dest: Path,
    *,
    signer: Callable[[], Signer | None],
    sections: dict[str, Any] | None = None,
    overwrite: bool = False,
    stamp: Callable[[dict[str, Any]], None] | None = None,
    now: _dt.datetime | None = None,
) -> Written:
    """The signed evidence report of history entries ``ids`` (in that order) and
    ``sections`` (more members, signed too), rendered as ``fmt`` into ``dest``.

    ``signer`` is asked for the evidence key once the records have been read for the
    signature's digest, so a damaged entry fails before custody is asked (a key made,
    a PIN typed, for nothing). ``stamp`` may add to the signed chain before the file is
    written (an RFC 3161 timestamp of its head). A damaged entry is a HistoryError."""
    # Deliberately lazy: report_formats loads reportlab (PDF), ~0.3 s that the
    # commands importing this module for its order do not need.
    from . import report_formats

    body = evidence.build_streamed(history, ids, now=now, sections=sections)
    try:
        stmt = evidence.statement(body, history)  # walks the records: damage is found here
    except ValueError as exc:
        raise _damaged(history, exc) from None
    key = signer()
    signed = {**body, "chain": chain.sign(stmt, key)}
    if stamp is not None:
        stamp(signed)
    # Written as it is rendered: the records are read again, a batch at a time.
    with AtomicWriter(dest, overwrite=overwrite) as f:
        try:
            report_formats.write(signed, fmt, f)
        except ValueError as exc:  # an entry changed since: nothing is left at dest
            raise _damaged(history, exc) from None
    return Written(dest, len(ids), key.fingerprint if key is not None else None)


def _damaged(history: History, exc: ValueError) -> HistoryError:
    """A record that cannot be made from its entry (the whole-body road said the same)."""
    return HistoryError(history.path, f"an entry is damaged ({exc})")
