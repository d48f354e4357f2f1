"""What both dump scanners share: the tallies they keep and how they forward bytes.

A scanner reads the plaintext exactly as the database client will (same quoting,
comments and statement ends), so the rows it counts are the rows the client sent,
and a load error's line number maps back to a statement. It is also the one place
where the dump's text may be rewritten: a statement is either forwarded byte for
byte or replaced by as many newlines as it spanned, so line numbers never shift.

Speed: every statement is matched by one compiled regular expression (the loop over
characters runs inside the ``re`` engine, in C); Python only sees whole statements.
A statement that does not end within the buffer is rescanned from its start only
once the buffer has doubled, so a huge statement costs linear time, not quadratic.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field

HEAD_CHARS = 160  # how much of a statement is kept for reports
KEEP_RECENT = 4096  # statements remembered to map a client's line number back
MARGIN = 8  # bytes kept back so that look-aheads never look past the buffer's end
MAX_STATEMENT = 1 << 30  # the servers refuse larger packets anyway (max_allowed_packet)

Key = tuple[str, str]  # (database or schema, name)


@dataclass
class TableTally:
    schema: str
    name: str
    rows: int = 0
    countable: bool = True  # False once rows arrive in a way not counted (INSERT … SELECT)
    line: int = 0  # where the dump creates it


@dataclass(frozen=True)
class Hostile:
    """A statement that tries to reach outside the database (reliability.md E1–E3)."""

    line: int
    kind: str
    statement: str


@dataclass(frozen=True)
class StatementRef:
    line: int
    end_line: int
    head: str


@dataclass
class ScanSummary:
    dialect: str
    tables: dict[Key, TableTally] = field(default_factory=dict)
    views: set[Key] = field(default_factory=set)
    triggers: set[Key] = field(default_factory=set)
    routines: set[Key] = field(default_factory=set)
    events: set[Key] = field(default_factory=set)
    schemas: list[str] = field(default_factory=list)  # databases (MySQL) / schemas (PostgreSQL)
    hostile: list[Hostile] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    sandbox_line: bool = False  # MariaDB's "enable the sandbox mode" first line
    statements: int = 0
    lines: int = 0
    bytes: int = 0
    unterminated: StatementRef | None = None


def head_of(raw: bytes) -> str:
    """A short, single-line form of a statement for reports."""
    text = raw[: HEAD_CHARS * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= HEAD_CHARS else text[: HEAD_CHARS - 1] + "…"


class ScannerBase:
    """Buffering, line numbers, recent statements and the forwarded output."""

    dialect = "sql"

    def __init__(self) -> None:
        self.summary = ScanSummary(self.dialect)
        self.recent: collections.deque[StatementRef] = collections.deque(maxlen=KEEP_RECENT)
        self._buf = b""
        # Chunks not yet joined to self._buf: joining only when a scan is due keeps a
        # statement that spans many chunks linear to gather (not one copy per chunk).
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._line = 1  # line number at the start of self._buf
        self._mark = (0, 1)  # (offset in self._buf, its line number): see line_at
        self._retry_at = 0  # rescan an unfinished statement only once the buffer reaches this
        self._out: list[bytes] = []
        self._span = 0  # start of the bytes not yet moved to self._out
        # --server mode refuses what a throwaway server would confine.
        self.on_hostile: Callable[[int, str, str], None] | None = None
        # Loading through a driver: each statement as the server must run it (not the
        # blanked ones, not client commands such as DELIMITER), in order.
        self.statement_sink: Callable[[bytes, StatementRef], None] | None = None

    # -- the driver --------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Scan ``data``; return the bytes to send to the client now."""
        self.summary.bytes += len(data)
        self._parts.append(data)
        self._parts_len += len(data)
        if len(self._buf) + self._parts_len >= self._retry_at:
            self._join()
            self._run(final=False)
        return self._take()

    def _join(self) -> None:
        if self._parts:
            self._buf = b"".join([self._buf, *self._parts]) if self._buf else b"".join(self._parts)
            self._parts.clear()
            self._parts_len = 0

    def finish(self) -> list[bytes]:
        """The end of the dump: what is left, and whether a statement was cut."""
        self._join()
        self._run(final=True)
        out = self._take()
        rest = self._buf
        if rest.strip():
            self._note_unterminated(rest)
            out.append(rest)  # the client reports its own error on it too
        self.summary.lines = self._line + rest.count(b"\n") - (0 if rest.endswith(b"\n") else 1)
        self._buf = b""
        return out

    def _run(self, final: bool) -> None:
        pos = self._scan(self._buf, final)
        self._retry_at = 0
        if pos < len(self._buf):
            pending = len(self._buf) - pos
            if pending > MAX_STATEMENT:
                raise StatementTooLarge(self._line, pending)
            # Counted on the buffer as it will be after _consume (only the unfinished
            # statement left): rescan once it has doubled or grown by 64 KiB.
            self._retry_at = pending + max(pending, 1 << 16)
        self._consume(pos)

    def _consume(self, pos: int) -> None:
        buf = self._buf
        if self._span < pos:
            self._out.append(buf[self._span : pos])
        self._line = self.line_at(buf, pos)
        self._buf = buf[pos:]
        self._span = 0
        self._mark = (0, self._line)

    def _take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    # -- helpers for the dialects ------------------------------------------------------

    def _scan(self, buf: bytes, final: bool) -> int:
        """Process complete statements in ``buf``; return where the unfinished rest starts."""
        raise NotImplementedError

    def line_at(self, buf: bytes, pos: int) -> int:
        # Statements come in order: count on from the last position asked about
        # (counting from the buffer's start each time would be quadratic).
        at, line = self._mark
        if pos < at:
            at, line = 0, self._line
        line += buf.count(b"\n", at, pos)
        self._mark = (pos, line)
        return line

    def record(self, buf: bytes, start: int, end: int) -> StatementRef:
        line = self.line_at(buf, start)
        ref = StatementRef(line, self.line_at(buf, end), head_of(buf[start:end]))
        self.recent.append(ref)
        self.summary.statements += 1
        return ref

    def blank(self, buf: bytes, start: int, end: int, why: str) -> None:
        """Replace ``buf[start:end]`` by its newlines: the client never sees it."""
        if self._span < start:
            self._out.append(buf[self._span : start])
        self._out.append(b"\n" * buf.count(b"\n", start, end))
        self._span = end
        self.summary.rewritten.append(f"line {self.line_at(buf, start)}: {why}")

    def hostile(self, line: int, kind: str, raw: bytes) -> None:
        if len(self.summary.hostile) < 1000:
            self.summary.hostile.append(Hostile(line, kind, head_of(raw)))
        if self.on_hostile is not None:
            self.on_hostile(line, kind, head_of(raw))

    def _note_unterminated(self, rest: bytes) -> None:
        lead = len(rest) - len(rest.lstrip())
        line = self._line + rest.count(b"\n", 0, lead)
        self.summary.unterminated = StatementRef(
            line, self._line + rest.count(b"\n"), head_of(rest[lead:])
        )

    def statement_at(self, line: int) -> StatementRef | None:
        """The statement a client's "at line N" refers to (start line, or the one spanning it)."""
        best = None
        for ref in reversed(self.recent):
            if ref.line <= line <= ref.end_line:
                return ref
            if ref.line <= line and (best is None or ref.line > best.line):
                best = ref
        if best is None and self.summary.unterminated and self.summary.unterminated.line <= line:
            return self.summary.unterminated
        return best

    def table(self, key: Key, line: int) -> TableTally:
        t = self.summary.tables.get(key)
        if t is None:
            t = self.summary.tables[key] = TableTally(key[0], key[1], line=line)
        return t


class StatementTooLarge(Exception):
    def __init__(self, line: int, size: int) -> None:
        super().__init__(f"the statement starting at line {line} is larger than {size} bytes")
        self.line = line
        self.size = size
