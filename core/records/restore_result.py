"""The restore test's result: what came back, how long it took, what the dump tried.

Plain frozen dataclasses that serialise to JSON (``--json``, the GUI's details pane,
the drift baseline). Never holds secrets: passwords of the throwaway accounts stay in
the instance objects and their 0600 files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExitCode
from .report import ErrorInfo, Report, _plain, read_record

MAX_WARNINGS = 30  # distinct warnings kept in a result


def summarise_warnings(lines: Iterable[str]) -> list[str]:
    """Distinct warnings in order of first appearance, repeats counted: ``text (×n)``."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return [f"{k} (×{n})" if n > 1 else k for k, n in list(counts.items())[:MAX_WARNINGS]]


@dataclass(frozen=True)
class TableResult:
    name: str
    schema: str  # database (MySQL/MariaDB) or schema (PostgreSQL)
    rows: int | None  # counted in the restored database
    expected_rows: int | None  # counted in the dump while streaming; None: not countable
    checksum: str | None  # CHECKSUM TABLE, or sha256 of the ordered rows (PostgreSQL)
    ok: bool
    note: str = ""

    @classmethod
    def from_dict(cls, d: Any, where: str = "table") -> TableResult:
        return read_record(cls, d, where)


@dataclass(frozen=True)
class LoadError:
    message: str
    line: int | None = None
    statement: str | None = None
    code: str | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "load_error") -> LoadError:
        return read_record(cls, d, where)


@dataclass(frozen=True)
class RowChange:
    name: str
    before: int | None
    after: int | None

    @classmethod
    def from_dict(cls, d: Any, where: str = "row_change") -> RowChange:
        return read_record(cls, d, where)


@dataclass(frozen=True)
class Drift:
    baseline: str  # where the earlier result came from
    baseline_started_at: str | None
    tables_added: tuple[str, ...] = ()
    tables_removed: tuple[str, ...] = ()
    row_changes: tuple[RowChange, ...] = ()
    emptied: tuple[str, ...] = ()  # had rows before, none now: what an auditor must see
    checksum_changes: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, where: str = "drift") -> Drift:
        return read_record(cls, d, where)


@dataclass(frozen=True)
class RestoreTestResult:
    ok: bool
    engine: str  # "mariadb", "mysql" or "postgresql"
    server: str  # the server software and version used
    mode: str  # "throwaway" or "server"
    databases: tuple[str, ...]
    tables: tuple[TableResult, ...]
    views: tuple[str, ...]
    triggers: tuple[str, ...]
    routines: tuple[str, ...]
    events: tuple[str, ...]
    missing: tuple[str, ...]  # objects the dump creates that are not in the database
    load_seconds: float | None
    checks_seconds: float | None
    total_seconds: float  # the recovery time: from start to a checked database
    started_at: str
    warnings: tuple[str, ...]
    hostile: tuple[dict[str, Any], ...]
    roles_created: tuple[str, ...]
    rewritten: tuple[str, ...]
    error: ErrorInfo | None
    load_error: LoadError | None
    verification: Report | None
    dump: dict[str, Any] = field(default_factory=dict)  # producer, bytes, statements, lines
    drift: Drift | None = None
    cleanup: tuple[str, ...] = ()
    # "cleaned" (everything the test made is gone, checked afterwards) or "left: WHAT";
    # "" in records written before it was recorded.
    cleanup_status: str = ""

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return int(ExitCode.OK) if self.ok else int(ExitCode.BACKUP_FAILED)

    def physical_steps(self) -> str | None:
        """A physical backup's load in its steps (``extract 3.8 s, prepare 0.2 s, start
        0.6 s``); None for a dump."""
        if not self.dump.get("physical"):
            return None
        steps = [
            f"{name} {self.dump[key]:.1f} s"
            for name, key in (
                ("extract", "extract_seconds"),
                ("prepare", "prepare_seconds"),
                ("start", "start_seconds"),
            )
            if isinstance(self.dump.get(key), int | float)
        ]
        return ", ".join(steps) or None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _plain(dataclasses.asdict(self))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Any, where: str = "result") -> RestoreTestResult:
        """The inverse of ``to_dict``: keys of newer writers are ignored, a missing or
        mistyped field raises ValueError naming where it is."""
        return read_record(cls, d, where)
