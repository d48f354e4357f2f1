"""After loading: does the database hold what the dump put in it?

Every table the dump creates must exist and hold exactly the rows the dump sent
(counted while streaming); each table's checksum is recorded (MariaDB's CHECKSUM
TABLE; on PostgreSQL a SHA-256 of its rows' text in a fixed order); the views,
triggers, routines and events the dump creates must be there.
"""

# Queries are built from identifiers quoted here (`…`/"…") and %s placeholders;
# nothing from the dump is ever pasted in unquoted.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..plumbing.progress import CancelToken
from ..records.restore_result import TableResult
from .scan.common import Key, ScanSummary
from .target import CheckOutcome

Query = Callable[..., list[tuple[Any, ...]]]
Unreadable = Callable[[Exception], str | None]


@dataclass(frozen=True)
class Notes:
    """What a table's line says, by where the expected tables came from."""

    absent: str = "missing: the dump creates it, the database lacks it"
    uncounted: str = "rows not countable from the dump (INSERT … SELECT, UPDATE …)"
    unlisted: str = "not created by the dump's own statements"


DUMP_NOTES = Notes()
# A physical backup: its own .frm files list the tables; no row count is written
# anywhere in it, so each table's rows are counted and checksummed as the server reads
# it whole (a page it cannot read fails the test).
PHYSICAL_NOTES = Notes(
    absent="missing: the backup defines it (.frm), the started server lacks it",
    uncounted="",
    unlisted="on the server, without a definition file in the backup",
)


def _label(key: Key, many: bool) -> str:
    return f"{key[0]}.{key[1]}" if many else key[1]


def _in(items: Iterable[str]) -> str:
    return ", ".join(["%s"] * len(list(items)))


def check_mariadb(
    query: Query,
    dbs: list[str],
    summary: ScanSummary,
    cancel: CancelToken,
    notes: Notes = DUMP_NOTES,
    unreadable: Unreadable | None = None,
) -> CheckOutcome:
    """``unreadable``: given an error a table's own query raised, the server's words
    when it means that one table cannot be read (the other tables are still read), or
    None when it means the check cannot go on; without it every error ends the check."""
    out = CheckOutcome()
    reader = _TableReader(query, unreadable, out.unreadable)
    ph = _in(dbs)
    found = {
        (r[0], r[1]): r[2]
        for r in query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA IN ({ph})",
            dbs,
        )
    }
    many = len({k[0] for k in found} | {k[0] for k in summary.tables}) > 1
    # --server: the dump's one database was mapped onto the scratch database.
    remap = (lambda k: (dbs[0], k[1])) if len(dbs) == 1 and summary.schemas[:1] != dbs else None
    expected = {(remap(k) if remap else k): t for k, t in summary.tables.items()}
    tables = sorted(set(expected) | {k for k, v in found.items() if v == "BASE TABLE"})
    checksums: dict[Key, str | None] = {}
    present = [k for k in tables if found.get(k) == "BASE TABLE"]
    for i in range(0, len(present), 50):
        cancel.check()
        checksums.update(reader.checksums(present[i : i + 50], many))
    for key in tables:
        cancel.check()
        tally = expected.get(key)
        want = tally.rows if tally is not None and tally.countable else None
        if found.get(key) != "BASE TABLE":
            out.tables.append(_absent_table(key, many, want, notes))
            continue
        rows = reader.count(key, many)
        if rows is None:
            why = f"unreadable: {out.unreadable[_label(key, many)]}"
            out.tables.append(TableResult(_label(key, many), key[0], None, want, None, False, why))
            continue
        out.tables.append(_table(key, many, rows, tally, want, checksums.get(key), notes))
    out.views = _names(
        query(
            f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS "
            f"WHERE TABLE_SCHEMA IN ({ph})",
            dbs,
        ),
        many,
    )
    out.triggers = _names(
        query(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema."
            f"TRIGGERS WHERE TRIGGER_SCHEMA IN ({ph})",
            dbs,
        ),
        many,
    )
    out.routines = _names(
        query(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema."
            f"ROUTINES WHERE ROUTINE_SCHEMA IN ({ph})",
            dbs,
        ),
        many,
    )
    out.events = _names(
        query(
            "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
            f"WHERE EVENT_SCHEMA IN ({ph})",
            dbs,
        ),
        many,
    )
    _missing(out, summary, many, remap)
    return out


def _quoted(key: Key) -> str:
    return f"`{key[0].replace('`', '``')}`.`{key[1].replace('`', '``')}`"


class _TableReader:
    """Each table's CHECKSUM TABLE and COUNT(*); a table the server cannot read is
    recorded in ``failed`` (label → the server's error) when ``unreadable`` says so."""

    def __init__(self, query: Query, unreadable: Unreadable | None, failed: dict[str, str]) -> None:
        self._query = query
        self._unreadable = unreadable
        self.failed = failed

    def _run(self, sql: str, key: Key | None, many: bool) -> list[tuple[Any, ...]] | None:
        try:
            return self._query(sql)
        except Exception as exc:
            why = self._unreadable(exc) if self._unreadable is not None else None
            if why is None:
                raise
            if key is not None:
                self.failed.setdefault(_label(key, many), why)
            return None

    def checksums(self, batch: list[Key], many: bool) -> dict[Key, str | None]:
        out: dict[Key, str | None] = {}
        sql = "CHECKSUM TABLE " + ", ".join(_quoted(k) for k in batch)
        got = self._run(sql, batch[0] if len(batch) == 1 else None, many)
        if got is None and len(batch) > 1:  # which one? each on its own
            for key in batch:
                out.update(self.checksums([key], many))
            return out
        for name, value in got or []:
            s, _, t = str(name).partition(".")
            out[(s, t)] = None if value is None else str(value)
        return out

    def count(self, key: Key, many: bool) -> int | None:
        if _label(key, many) in self.failed:
            return None
        got = self._run(f"SELECT COUNT(*) FROM {_quoted(key)}", key, many)
        return None if got is None else int(got[0][0])


def _absent_table(key: Key, many: bool, want: int | None, notes: Notes = DUMP_NOTES) -> TableResult:
    return TableResult(_label(key, many), key[0], None, want, None, False, notes.absent)


def _table(
    key: Key,
    many: bool,
    rows: int,
    tally: Any,
    want: int | None,
    checksum: str | None,
    notes: Notes = DUMP_NOTES,
) -> TableResult:
    if tally is None:
        return TableResult(
            _label(key, many),
            key[0],
            rows,
            None,
            checksum,
            True,
            notes.unlisted,
        )
    if want is None:
        return TableResult(
            _label(key, many),
            key[0],
            rows,
            None,
            checksum,
            True,
            notes.uncounted,
        )
    ok = rows == want
    note = "" if ok else f"the dump sent {want} rows, the table holds {rows}"
    return TableResult(_label(key, many), key[0], rows, want, checksum, ok, note)


def _names(rows: list[tuple[Any, ...]], many: bool) -> list[str]:
    return sorted(_label((str(r[0]), str(r[1])), many) for r in rows)


def _missing(
    out: CheckOutcome, summary: ScanSummary, many: bool, remap: Callable[[Key], Key] | None
) -> None:
    for what, declared, found in (
        ("view", summary.views, out.views),
        ("trigger", summary.triggers, out.triggers),
        ("routine", summary.routines, out.routines),
        ("event", summary.events, out.events),
    ):
        have = set(found)
        for key in sorted(declared):
            k = remap(key) if remap else key
            if _label(k, many) not in have:
                out.missing.append(f"{what} {_label(k, many)}")
