"""Drift against an earlier restore test of the same backup (a saved ``--json`` result).

Tables added or removed and row-count changes, with tables that suddenly became empty
called out: the sign an auditor must not miss.

The earlier result is read twice: once before the test starts (``load_baseline``: a
wrong file is a usage error at once, not after an hour of loading) and again when the
test is done (``compare``). Only what drift uses is read; keys of other writers and
versions are ignored, so a result of an older Sealcheck still serves as a baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..records.report import Fields
from ..records.restore_result import Drift, RowChange

if TYPE_CHECKING:
    from ..records.restore_result import RestoreTestResult


@dataclass(frozen=True)
class BaselineTable:
    key: str  # "schema.name", as drift names tables
    rows: int | None
    checksum: str | None


@dataclass(frozen=True)
class Baseline:
    path: Path
    started_at: str | None
    tables: tuple[BaselineTable, ...]


def load_baseline(path: Path) -> Baseline:
    """The earlier result in ``path``; UsageError naming the file (and the field) if it
    cannot be read, is not JSON, or holds a field of the wrong type."""
    where = f"--baseline {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{where}: cannot read it: {reason}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not a JSON restore-test result ({exc})") from None
    try:
        return _parse(path, data)
    except ValueError as exc:
        # Fields names the path from the document's root: "tables[3].rows: expected …".
        raise UsageError(f"{where}: {str(exc).removeprefix('.')}") from None


def _parse(path: Path, data: Any) -> Baseline:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object (a restore-test result), got {type(data).__name__}")
    f = Fields(data, "")
    return Baseline(
        path=path,
        started_at=f.opt_text("started_at"),
        tables=f.items("tables", _table),
    )


def _table(d: Any, where: str) -> BaselineTable:
    f = Fields(d, where)
    name = f.text("name")
    schema = f.opt_text("schema")
    return BaselineTable(_key(schema, name), f.opt_integer("rows"), f.opt_text("checksum"))


def compare(now: RestoreTestResult, baseline: Path) -> Drift:
    before = load_baseline(baseline)
    old = {t.key: t for t in before.tables}
    new = {_key(t.schema, t.name): t for t in now.tables}
    changes, emptied, sums = [], [], []
    for k in sorted(set(old) & set(new)):
        a, b = old[k].rows, new[k].rows
        if a != b:
            changes.append(RowChange(k, a, b))
            if a and not b:
                emptied.append(k)
        if old[k].checksum and new[k].checksum and old[k].checksum != new[k].checksum:
            sums.append(k)
    return Drift(
        baseline=str(baseline),
        baseline_started_at=before.started_at,
        tables_added=tuple(sorted(set(new) - set(old))),
        tables_removed=tuple(sorted(set(old) - set(new))),
        row_changes=tuple(changes),
        emptied=tuple(emptied),
        checksum_changes=tuple(sums),
    )


def _key(schema: str | None, name: str) -> str:
    return name if "." in name else f"{schema}.{name}"
