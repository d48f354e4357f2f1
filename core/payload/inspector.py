"""What the decrypted, decompressed payload is, and whether it is complete.

A sink fed with every plaintext chunk. It keeps only a bounded head and tail
(constant memory), recognises the producer from the head, judges completeness
from the tail by the producer's own rule, for xbstream parses every chunk
header and checks every chunk's CRC-32, and reads pg_dump archives (custom
format, tar format, a tarred directory format) to their last data block
(pgarchive, pgtar).

Where the envelope proves no integrity of its own (openssl enc: CBC or CTR
without a MAC), this is the only check of the content; a payload it cannot
judge is said to be so (``Completeness.judged``), and ``require_judged`` makes
that a failure for audits (--strict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import IncompleteDump, IntegrityError, Layer
from ..formats import Fmt, sniff
from . import search
from .info import Completeness, PayloadInfo
from .registry import CHECKS, StructureCheck

HEAD_KEEP = 64 * 1024
TAIL_KEEP = 4096


_MYSQLDUMP = re.compile(rb"^-- (MySQL|MariaDB) dump ([\d.]+)\s+Distrib ([\w.\-]+)", re.M)
_MY_SERVER = re.compile(rb"^-- Server version\s+(\S+)", re.M)
_MY_DB = re.compile(rb"^-- Host: .*?Database: (\S+)", re.M)
_PG_FROM = re.compile(rb"^-- Dumped from database version (\S+)", re.M)
_PG_BY = re.compile(rb"^-- Dumped by pg_dump version (\S+)", re.M)
_SEQUELPRO = re.compile(rb"^# Sequel Pro SQL dump\s*\n# Version (\d+)", re.M)
_SEQUELPRO_HOST = re.compile(rb"^# Host: .*\((MySQL|MariaDB) ([^)]+)\)", re.M)
_SEQUELPRO_DB = re.compile(rb"^# Database: (\S+)", re.M)
_MY_TRAILER = re.compile(rb"\n-- Dump completed( on [0-9: -]+)?\s*$")
# pg_dump ends with the trailer comment block; 15.14+/16.10+ add a
# "\\unrestrict KEY" line after it.
_PG_TRAILER = re.compile(
    rb"\n-- PostgreSQL database dump complete\s*\n(--\s*)?(\\unrestrict \S+\s*)?$"
)
_CREATE_TABLE = b"CREATE TABLE "


@dataclass(frozen=True)
class _Mark:
    """A producer's header or trailer line, searched for over the whole stream."""

    needle: bytes
    header: bool  # a dump header (True) or the producer's trailer line (False)
    # Must match at the needle's offset, within _MarkScanner.WINDOW bytes.
    confirm: re.Pattern[bytes] | None = None
    # What the stream is searched for, when not the needle itself: a string several
    # marks share, at the mark's start or less than WINDOW bytes after it. Every
    # string searched for costs (~0.1 s/GiB each with memmem, ~0.03 more in Hyperscan's
    # one pass, search.py), so marks share one.
    anchor: bytes | None = None

    @property
    def searched(self) -> bytes:
        return self.anchor or self.needle


# Header and trailer lines are tracked over the whole stream, so that data
# appended after a complete dump (a second gzip member, a concatenated file)
# is told apart from a dump that was cut short, and so that a dump cut short
# and followed by another one (the same cron job run twice into one file) is
# not taken as complete because the last one is.
#
# A header after a dump cut short need not start a line: ``head -c`` cuts mid-
# INSERT. A header line quoted inside data cannot pass the confirmation:
# mysqldump and pg_dump COPY escape newlines inside values, and a real header
# goes on over several lines ("--" and then "-- Host:" for mysqldump).
_MY_HEADER = re.compile(
    rb"-- (?:MySQL|MariaDB) dump [\d.]+\s+Distrib [^\r\n]*\r?\n--\r?\n-- Host: "
)
_MY_MARKS = (
    _Mark(b"\n-- Dump completed", header=False),
    # Both headers are found through the "Distrib " that the confirmation requires.
    _Mark(b"-- MySQL dump", header=True, confirm=_MY_HEADER, anchor=b"Distrib "),
    _Mark(b"-- MariaDB dump", header=True, confirm=_MY_HEADER, anchor=b"Distrib "),
)
_PG_HEADER = b"\n-- PostgreSQL database dump"
_PG_MARKS = (
    # The same words start the trailer; the header line ends right after them.
    _Mark(_PG_HEADER + b" complete", header=False, anchor=_PG_HEADER),
    _Mark(
        _PG_HEADER,
        header=True,
        confirm=re.compile(rb"\n-- PostgreSQL database dump\r?\n--\r?\n"),
    ),
)


class _MarkScanner:
    """Finds marks anywhere in a stream fed in chunks, in stream order, and counts
    ``CREATE TABLE`` (when ``tables``): one pass over each chunk for all of them
    (search.Literals, which decides how to search).

    Constant memory: each chunk is searched in place; only the last WINDOW - 1
    bytes are kept, so that a mark across two chunks is found, and so that a
    mark is only decided once WINDOW bytes from its start are there to
    confirm it. A ``CREATE TABLE`` is counted when its start is decided, as a mark's.
    """

    WINDOW = 512

    def __init__(self, marks: tuple[_Mark, ...], *, tables: bool) -> None:
        anchors: dict[bytes, list[_Mark]] = {}
        for mark in marks:
            anchors.setdefault(mark.searched, []).append(mark)
        self._marks_at = list(anchors.values())  # the marks of each anchor
        self._search = search.Literals(tuple(anchors), (_CREATE_TABLE,) if tables else ())
        self.tables = 0  # CREATE TABLE starts decided so far
        self._pending = b""  # bytes at which no mark start was decided yet
        self._at = 0  # stream offset of _pending[0]

    def feed(self, data: bytes) -> list[tuple[int, bool]]:
        """(offset, is_header) of the marks decided by this chunk."""
        keep = self.WINDOW - 1
        if len(data) <= 4 * self.WINDOW:
            buf = self._pending + data
            lim = max(len(buf) - keep, 0)
            found = self._find(buf, lim, self._at)
            self._pending, self._at = buf[lim:], self._at + lim
            return found
        # Large chunk: no copy of it. Starts in the kept bytes are decided
        # with the chunk's first bytes as look-ahead, the rest in place.
        found = self._find(self._pending + data[:keep], len(self._pending), self._at)
        start = self._at + len(self._pending)
        lim = len(data) - keep
        found += self._find(data, lim, start)
        self._pending, self._at = data[lim:], start + lim
        return found

    def finish(self) -> list[tuple[int, bool]]:
        found = self._find(self._pending, len(self._pending), self._at)
        self._at += len(self._pending)
        self._pending = b""
        return found

    def _find(self, buf: bytes, lim: int, base: int) -> list[tuple[int, bool]]:
        """Marks that start before ``lim`` in ``buf``; the rest is look-ahead.

        One search for every anchor (and CREATE TABLE); a mark starts at the last of
        its needles that begins at or before the anchor, after the anchor's previous
        occurrence (no mark holds its anchor twice) and less than WINDOW bytes before
        it: each byte is looked back at once per mark, whatever the data. A needle
        starting at or after ``lim`` is decided with the next chunk, its anchor found
        again; so is a CREATE TABLE (counted in buf[:lim + its length - 1])."""
        seen = self._search.scan(buf, lim + len(_CREATE_TABLE) - 1)
        self.tables += sum(seen.counts)
        found: set[tuple[int, bool]] = set()
        prev = [-1] * len(self._marks_at)  # each anchor's previous occurrence
        for j, k in seen.hits:
            lo = max(prev[k] + 1, j - self.WINDOW)
            for mark in self._marks_at[k]:
                i = buf.rfind(mark.needle, lo, j + len(mark.needle))
                if i == -1 or i >= lim:
                    continue
                if mark.confirm is None or mark.confirm.match(buf, i):
                    # Offsets name the line itself, not the newline before it.
                    found.add((base + i + mark.needle.startswith(b"\n"), mark.header))
            prev[k] = j
        return sorted(found)


class PayloadInspector:
    def __init__(self, *, obj: str | None = None) -> None:
        self._obj = obj
        self._head = bytearray()
        self._tail = b""
        self.info = PayloadInfo()
        self._kind_known = False
        # A binary format read to its end (xbstream, pg_dump custom format, tar).
        self._check: StructureCheck | None = None
        # Marks and CREATE TABLE in the SQL kinds, searched for from the first byte.
        self._scanner: _MarkScanner | None = None
        self.last_trailer_at: int | None = None  # the newline before the last trailer line
        self._dump_start = 0  # offset of the current dump's header line
        self._dump_trailer = False  # the current dump's trailer was seen
        self._cut_dump: tuple[int, int, int] | None = None  # (dump number, start, next header)
        self.bytes = 0

    def feed(self, data: bytes) -> None:
        start = self.bytes
        self.bytes += len(data)
        if not self._kind_known:
            self._head += data[: HEAD_KEEP - len(self._head)]
            if len(self._head) >= 512 or len(self._head) >= HEAD_KEEP:
                self._identify()
                # Earlier chunks were fed before the kind was known: process them now
                # (identification happens within the first 512 bytes, all in the head).
                earlier = bytes(self._head[:start])
                if self._check is not None:
                    self._check.feed(earlier)
                self._scan_marks(earlier)
        if self._check is not None:
            self._check.feed(data)
            return
        self._scan_marks(data)
        self._tail = (
            (self._tail + data)[-TAIL_KEEP:] if len(data) < TAIL_KEEP else data[-TAIL_KEEP:]
        )

    def _scan_marks(self, data: bytes) -> None:
        if self._scanner is not None and data:
            self._on_marks(self._scanner.feed(data))
            self.info.tables = self._scanner.tables

    def _on_marks(self, marks: list[tuple[int, bool]]) -> None:
        for pos, header in marks:
            if not header:
                self.last_trailer_at = pos - 1  # the newline that ends the line before
                self._dump_trailer = True
            elif pos != self._dump_start:
                self._next_dump(pos)
            # else: the first dump's own header, the one _identify found

    def _next_dump(self, pos: int) -> None:
        """A dump header after the first: the dump before it must be complete."""
        if not self._dump_trailer and self._cut_dump is None:
            self._cut_dump = (self.info.dumps, self._dump_start, pos)
        self.info.dumps += 1
        self._dump_start = pos
        self._dump_trailer = False

    def _identify(self) -> None:
        self._kind_known = True
        head = bytes(self._head)
        fmt = sniff(head)
        info = self.info
        try:
            self._identify_kind(head, fmt)
        finally:
            if info.kind == "mysql-sql" and info.producer in ("mysqldump", "mariadb-dump"):
                self._scanner = _MarkScanner(_MY_MARKS, tables=True)
                if m := _MYSQLDUMP.search(head):
                    self._dump_start = m.start()
            elif info.kind == "postgresql-sql":
                self._scanner = _MarkScanner(_PG_MARKS, tables=True)
                self._dump_start = head.find(b"-- PostgreSQL database dump")
            elif info.kind in ("mysql-sql", "sql"):
                self._scanner = _MarkScanner((), tables=True)

    def _identify_kind(self, head: bytes, fmt: Fmt | None) -> None:
        info = self.info
        check = CHECKS.get(fmt) if fmt is not None else None
        if check is not None:
            self._check = check(info, obj=self._obj)
            return
        if m := _MYSQLDUMP.search(head):
            info.kind = "mysql-sql"
            info.producer = "mariadb-dump" if m.group(1) == b"MariaDB" else "mysqldump"
            info.producer_version = f"{m.group(2).decode()} (client {m.group(3).decode()})"
            if sv := _MY_SERVER.search(head):
                info.server_version = sv.group(1).decode(errors="replace")
            info.database_kind = (
                "MariaDB" if info.server_version and "MariaDB" in info.server_version else "MySQL"
            )
            if db := _MY_DB.search(head):
                info.database = db.group(1).decode(errors="replace")
            return
        if b"-- PostgreSQL database dump" in head[:200]:
            info.kind = "postgresql-sql"
            info.database_kind = "PostgreSQL"
            info.producer = "pg_dump"
            if by := _PG_BY.search(head):
                info.producer_version = by.group(1).decode(errors="replace")
            if fr := _PG_FROM.search(head):
                info.server_version = fr.group(1).decode(errors="replace")
            return
        if sp := _SEQUELPRO.search(head):
            info.kind = "mysql-sql"
            info.producer = "Sequel Pro"
            info.producer_version = sp.group(1).decode()
            if h := _SEQUELPRO_HOST.search(head):
                info.database_kind = h.group(1).decode()
                info.server_version = h.group(2).decode(errors="replace")
            if db := _SEQUELPRO_DB.search(head):
                info.database = db.group(1).decode(errors="replace")
            return
        if fmt is Fmt.SQL:
            info.kind = "sql"
            info.producer = "unknown SQL producer"
            return

    def finish(self) -> PayloadInfo:
        if not self._kind_known:
            self._identify()
            if self._check is not None:
                self._check.feed(bytes(self._head))
            self._scan_marks(bytes(self._head))
        if self._check is not None:
            self._check.finish(self.bytes)
            return self.info
        if self._scanner is not None:
            self._on_marks(self._scanner.finish())
            self.info.tables = self._scanner.tables
        info = self.info
        if info.kind == "mysql-sql" and info.producer in ("mysqldump", "mariadb-dump"):
            trailer = "'-- Dump completed'"
            self._check_every_dump(info.producer, trailer)
            m = _MY_TRAILER.search(self._tail)
            if not m:
                info.completeness = Completeness.INCOMPLETE
                self._check_appended(trailer)
                raise IncompleteDump(
                    f"{info.producer} always ends with {trailer}; this dump stops "
                    f"without it after {self.bytes} bytes (the dump was cut short)",
                    obj=self._obj,
                )
            info.trailer = m.group(0).strip().decode(errors="replace") + self._dumps_note()
            info.completeness = Completeness.COMPLETE
        elif info.kind == "postgresql-sql":
            trailer = "'-- PostgreSQL database dump complete'"
            self._check_every_dump("pg_dump", trailer)
            m = _PG_TRAILER.search(self._tail)
            if not m:
                info.completeness = Completeness.INCOMPLETE
                self._check_appended(trailer)
                raise IncompleteDump(
                    f"pg_dump always ends with {trailer}; this dump "
                    f"stops without it after {self.bytes} bytes (the dump was cut short)",
                    obj=self._obj,
                )
            info.trailer = "-- PostgreSQL database dump complete" + self._dumps_note()
            info.completeness = Completeness.COMPLETE
        elif info.kind in ("mysql-sql", "sql"):
            info.completeness = Completeness.NO_TRAILER_BY_PRODUCER
        return info

    def _check_every_dump(self, producer: str, trailer: str) -> None:
        """Several dumps in one stream (a dump appended to an earlier one):
        every one must end with its trailer, not only the last."""
        n = self.info.dumps
        if self._cut_dump is not None:
            k, start, nxt = self._cut_dump
            where = f"dump {k} of {n} (its header at offset {start})"
            stop = f"stops without {trailer}; the header of dump {k + 1} follows at offset {nxt}"
        elif n > 1 and not self._dump_trailer:
            where = f"the last of {n} dumps (its header at offset {self._dump_start})"
            stop = f"stops without {trailer} at the end of the data, offset {self.bytes}"
        else:
            return
        self.info.completeness = Completeness.INCOMPLETE
        raise IncompleteDump(
            f"the data holds {n} {producer} dumps one after another, and {where} {stop} "
            "(offsets in the decompressed dump): that dump was cut short, so restoring the "
            "stream would load a partial database",
            obj=self._obj,
        )

    def _dumps_note(self) -> str:
        n = self.info.dumps
        return f"; {n} dumps one after another, each complete" if n > 1 else ""

    def _check_appended(self, trailer: str) -> None:
        """The trailer is there but not at the end: data follows a complete dump."""
        if self.last_trailer_at is None:
            return
        line_end = self._line_end_after(self.last_trailer_at)
        extra = self.bytes - line_end
        raise IntegrityError(
            f"{extra} bytes of unexpected data follow the dump's {trailer} trailer (at byte "
            f"{self.last_trailer_at + 1}); something was appended after the complete dump "
            "(a second compressed member or a concatenated file)",
            obj=self._obj,
            layer=Layer.PAYLOAD,
        )

    def _line_end_after(self, pos: int) -> int:
        # The trailer line ends at the next newline; it is in the tail unless
        # more than TAIL_KEEP bytes were appended, then count from the mark.
        tail_start = self.bytes - len(self._tail)
        if pos + 1 >= tail_start:
            nl = self._tail.find(b"\n", pos + 1 - tail_start)
            if nl != -1:
                return tail_start + nl + 1
        return pos + 1
