"""What both dump scanners share: the tallies they keep and how they forward bytes.

A scanner reads the plaintext exactly as the database client will (same quoting,
comments and statement ends), so the rows it counts are the rows the client sent,
and a load error's line number maps back to a statement. It is also the one place
where the dump's text may be rewritten: a statement is either forwarded byte for
byte or replaced by as many newlines as it spanned, so line numbers never shift.

Speed: every statement is matched by one compiled regular expression (the loop over
characters runs inside the ``re`` engine, in C); Python only sees whole statements.
A statement that does not end within the buffer is rescanned from its start only
once it has grown by half, so a huge statement costs linear time (at most about three
scans of it), not quadratic.

Memory: a statement may be up to ``MAX_STATEMENT`` (1 GiB) on one line (an extended
INSERT), so the buffer is held once. It grows in place (``io.BytesIO``, whose
``getvalue()`` hands out its own bytes object without a copy while nothing else holds
it), nothing is forwarded twice (with a statement sink, the statements *are* the
output), and what is left after a scan is copied only when a statement ended in it.
"""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

HEAD_CHARS = 160  # how much of a statement is kept for reports
KEEP_RECENT = 4096  # statements remembered to map a client's line number back
MARGIN = 8  # bytes kept back so that look-aheads never look past the buffer's end
# The largest statement loaded: the throwaway server's max_allowed_packet (1G), and what
# PostgreSQL takes in one query string. A larger one stops the load (LimitExceeded, with
# its line) as soon as that much of it has arrived, instead of being buffered without end.
MAX_STATEMENT = 1 << 30

_SPACE = re.compile(rb"\s*")  # what bytes.strip() removes: ASCII whitespace

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


class Tokens:
    """How a server tokenizes a statement, for the patterns that read what it does.

    A dialect gives its table: ``literals`` (blanked to ``''``), the identifier
    ``quote`` (a quoted name is read unquoted, its doubled quote made one), what reads
    as blank (``comment``: comments, and MySQL's executable-comment markers whose text is
    code) and, where the dialect has one, a ``body`` whose text is code too (PostgreSQL's
    dollar quotes, with named groups ``tag`` and ``body``). Tried in that order."""

    _DEPTH = 4  # a body in a body … read this deep (a function defining a function)

    def __init__(self, *, literals: bytes, quote: bytes, comment: bytes, body: bytes = b"") -> None:
        q = re.escape(quote)
        self.quote = quote
        self.pattern = re.compile(
            literals
            + rb"|" + q + rb"(?P<ident>(?:[^" + q + rb"]|" + q + q + rb")*+)" + q
            + (rb"|" + body if body else b"")
            + rb"|(?P<comment>" + comment + rb")",
            re.S,
        )  # fmt: skip

    def blank_comments(self, raw: bytes) -> bytes:
        """Comments (and executable-comment markers) as spaces; the rest as it is."""
        return self.pattern.sub(lambda m: b" " if m.lastgroup == "comment" else m[0], raw)

    def code_text(self, raw: bytes, limit: int = 1 << 16, depth: int = 0) -> str:
        """What the statement does, for the patterns: comments removed, literals blanked
        to ``''``, identifiers unquoted, a body's text read as code between ``''`` marks,
        whitespace runs made one space (so ``INTO/**/OUTFILE`` reads ``INTO OUTFILE``)."""

        def sub(m: re.Match[bytes]) -> bytes:
            kind = m.lastgroup  # the group that closed last: a body closes after its tag
            if kind == "ident":
                return m["ident"].replace(self.quote * 2, self.quote)
            if kind == "comment":
                return b" "
            if kind == "body":
                inner = self.code_text(m["body"], limit, depth + 1) if depth < self._DEPTH else ""
                return b" '' " + inner.encode() + b" '' "
            return b"''"

        text = self.pattern.sub(sub, raw[:limit]).decode("utf-8", errors="replace")
        return " ".join(text.split())


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


def head_of(raw: bytes | memoryview) -> str:
    """A short, single-line form of a statement for reports."""
    text = bytes(raw[: HEAD_CHARS * 4]).decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= HEAD_CHARS else text[: HEAD_CHARS - 1] + "…"


class ScannerBase:
    """Buffering, line numbers, recent statements and the forwarded output."""

    dialect = "sql"

    def __init__(self) -> None:
        self.summary = ScanSummary(self.dialect)
        self.recent: collections.deque[StatementRef] = collections.deque(maxlen=KEEP_RECENT)
        # The bytes from the start of the unfinished statement on (see _run): written in
        # place as data arrives, scanned without a copy.
        self._acc = io.BytesIO()
        self._line = 1  # line number at the start of self._acc
        self._mark = (0, 1)  # (offset in the scanned buffer, its line number): see line_at
        self._retry_at = 0  # rescan an unfinished statement only once the buffer reaches this
        self._refused: StatementTooLarge | None = None
        self._out: list[bytes] = []
        self._span = 0  # start of the bytes not yet moved to self._out
        # --server mode refuses what a throwaway server would confine.
        self.on_hostile: Callable[[int, str, str], None] | None = None
        # Loading through a driver: each statement as the server must run it (not the
        # blanked ones, not client commands such as DELIMITER), in order.
        self.statement_sink: Callable[[bytes | memoryview, StatementRef], None] | None = None

    # -- the driver --------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Scan ``data``; return the bytes to send to the client now (none when the
        statements go to ``statement_sink``: they are the output then)."""
        if self._refused is not None:
            raise self._refused
        self.summary.bytes += len(data)
        size = self._acc.tell()
        cut = MAX_STATEMENT + 1 - size
        if 0 < cut < len(data):
            # Scan exactly at the limit: a statement still unfinished there is over it.
            view = memoryview(data)
            self._add(view[:cut])
            self._add(view[cut:])
        else:
            self._add(data)
        return self._take()

    def _add(self, data: bytes | memoryview) -> None:
        self._acc.write(data)
        if self._acc.tell() >= self._retry_at:
            self._run(final=False)

    def finish(self) -> list[bytes]:
        """The end of the dump: what is left, and whether a statement was cut."""
        if self._refused is not None:
            raise self._refused
        self._run(final=True)
        out = self._take()
        rest = self._acc.getvalue()
        self._acc = io.BytesIO()
        if rest and not rest.isspace():
            self._note_unterminated(rest)
            if self.statement_sink is None:
                out.append(rest)  # the client reports its own error on it too
        self.summary.lines = self._line + rest.count(b"\n") - (0 if rest.endswith(b"\n") else 1)
        return out

    def _run(self, final: bool) -> None:
        # No copy while this is the only reference to the buffer: it must be dropped
        # (the end of this call) before the next write, or that write copies it.
        buf = self._acc.getvalue()
        pos = self._scan(buf, final)
        pending = len(buf) - pos
        if pending > MAX_STATEMENT:
            self._refused = StatementTooLarge(self.line_at(buf, _lead(buf, pos)), pending)
            self._acc = io.BytesIO()  # the load stops here: let the memory go
            raise self._refused
        # Rescan once the unfinished statement has grown by half (at least 64 KiB), or
        # has reached the limit: what it costs stays linear in its size.
        grown = pending + max(pending // 2, 1 << 16)
        self._retry_at = min(grown, MAX_STATEMENT + 1) if pending else 0
        self._consume(buf, pos)

    def _consume(self, buf: bytes, pos: int) -> None:
        if self._span < pos and self.statement_sink is None:
            self._out.append(buf[self._span : pos])  # no copy if it is all of buf
        self._line = self.line_at(buf, pos)
        self._span = 0
        self._mark = (0, self._line)
        if pos:
            # Only the unfinished statement is left: what it holds so far is copied
            # (small unless it ended right after a large one started), then written on.
            self._acc = io.BytesIO(buf[pos:])
            self._acc.seek(0, io.SEEK_END)

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
        head = head_of(buf[start : min(end, start + HEAD_CHARS * 4)])  # not a copy of it all
        ref = StatementRef(line, self.line_at(buf, end), head)
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
        lead = _lead(rest, 0)
        line = self._line + rest.count(b"\n", 0, lead)
        self.summary.unterminated = StatementRef(
            line, self._line + rest.count(b"\n"), head_of(rest[lead : lead + HEAD_CHARS * 4])
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


def _lead(buf: bytes, pos: int) -> int:
    """Where the statement starting at ``pos`` has its first byte (after whitespace)."""
    m = _SPACE.match(buf, pos)
    return m.end() if m is not None else pos


class StatementTooLarge(Exception):
    """A statement still unfinished after ``MAX_STATEMENT`` bytes (``size``: how much of
    it had arrived). The loader reports it as ``LimitExceeded``: exit 1, like the other
    limits a dump runs into, since it is the backup that cannot be loaded."""

    def __init__(self, line: int, size: int) -> None:
        super().__init__(
            f"the statement starting at line {line} is over {MAX_STATEMENT} bytes "
            f"({size} bytes without its end)"
        )
        self.line = line
        self.size = size
