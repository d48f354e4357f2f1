"""pg_dump archives: the header and TOC, and the custom format (-Fc) to its last block.

The layout, as pg_dump writes it (archive versions 1.12 to 1.16, pg_dump 9.0 to 17):

* header: ``PGDMP``, version (major, minor, revision bytes), the size of an integer
  and of a file offset, the format (1 custom; 3 for the toc.dat of the tar and
  directory formats), the compression (up to 1.14 an integer level, -1 or 1..9
  meaning zlib; from 1.15 one byte naming the method), the creation time as seven
  integers, the database name, the server's and pg_dump's versions;
* the TOC: a count, then per entry its dump id, whether it had a data dumper, its
  catalog ids, tag, kind ("desc"), section, SQL (defn, drop, COPY statement),
  schema, tablespace, table access method (1.14+), relkind (1.16+), owner, a
  legacy "with oids" flag, its dependencies, and the format's own field: in the
  custom format where its data block is (or that it has none), in toc.dat the
  name of its data file;
* custom format only, after the TOC: one block per entry with data: a type byte,
  the dump id, then length-prefixed chunks of the compressed data ended by a zero
  length (large objects: one such chunk run per object, each after its OID).

An integer is a sign byte and ``int size`` bytes, least significant first; a
string is its length (-1 for none) and its bytes. Nothing in the format is
checksummed except what zlib carries, so the TOC is read field by field with the
values pg_dump can write, its text must be valid in the archive's encoding (when
that is UTF-8), and the data is checked as text (see pgdata).
"""

from __future__ import annotations

import codecs
import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ...errors import IncompleteDump, IntegrityError, Layer, SealcheckError
from ..streamparse import PIECE, Cursor, Damaged, Ended, Parse, take
from .data import TextFacts

# Archive versions whose layout this module reads. Older archives (pg_dump < 9.0)
# and newer ones are reported as not checked, never guessed at.
MIN_VERSION = (1, 12)
MAX_VERSION = (1, 16)
# A minor version this far past the newest known is no pg_dump's: a damaged byte.
PLAUSIBLE_MINOR = 24

FMT_CUSTOM = 1
FMT_TAR = 3  # also written in a directory archive's toc.dat

BLK_DATA = 1
BLK_BLOBS = 3

POS_NOT_SET = 1
POS_SET = 2
NO_DATA = 3

SECTIONS = {1: "none", 2: "pre-data", 3: "data", 4: "post-data"}
# From 1.15 the header names the method; before, a zlib level (0: none).
METHODS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}

KEEP = 64 * 1024  # bytes kept of a TOC string (the rest is read and checked, not kept)
KEEP_COPY = 1 << 20  # of a COPY statement (its column list)
MAX_ENTRIES = 10_000_000
# Dump ids number the objects pg_dump looked at (a few per table, function, type...):
# beyond this no real database goes, while a damaged high byte lands there.
MAX_DUMP_ID = 1 << 24
# A creation time this far ahead of the clock is a damaged field, not clock skew.
FUTURE_SLACK = _dt.timedelta(days=2)

_DESC = re.compile(r"[A-Z<][A-Za-z<> ]*")
_DIGITS = re.compile(r"\d+")
_VERSION = re.compile(r"\d+[\x20-\x7e]*")
_ENCODING = re.compile(r"SET client_encoding = '([^']+)';")
_STDSTRINGS = re.compile(r"SET standard_conforming_strings = '(on|off)';")
_PARTITION_ROOT = "-- load via partition root "


class Missing(Exception):
    """The archive is well formed but lacks data its TOC promises."""


@dataclass
class Header:
    version: tuple[int, int, int]
    int_size: int
    off_size: int
    fmt: int
    compression: str  # "none", "gzip", "lz4", "zstd"
    created: str
    database: str
    server_version: str
    dump_version: str

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


@dataclass
class Entry:
    """A TOC entry that has data (entries without data are only counted)."""

    dump_id: int
    desc: str
    tag: str
    namespace: str | None
    columns: int | None  # of its COPY statement; None: no COPY statement
    state: int = NO_DATA  # custom format: where its block is
    offset: int = 0
    filename: str | None = None  # tar and directory formats

    @property
    def name(self) -> str:
        qual = f"{self.namespace}.{self.tag}" if self.namespace else self.tag
        return f"{self.desc} {qual} (dump id {self.dump_id})"

    @property
    def table(self) -> str:
        return f"{self.namespace}.{self.tag}" if self.namespace else self.tag


@dataclass
class Toc:
    header: Header
    entries: int = 0
    by_desc: dict[str, int] = field(default_factory=dict)
    data: dict[int, Entry] = field(default_factory=dict)  # dump id -> entry with data
    encoding: str | None = None
    bad_text_at: int | None = None  # the first TOC string that is not valid UTF-8

    @property
    def utf8(self) -> bool:
        return self.encoding is not None and self.encoding.upper().replace("-", "") == "UTF8"


@dataclass
class ArchiveFacts:
    """What a pg_dump archive was found to hold, for the report."""

    fmt: str  # "custom", "tar", "directory"
    toc: Toc | None = None
    blocks: int = 0  # data blocks (files) read and checked
    blobs: int = 0  # large objects
    rows: int = 0
    table_rows: dict[str, int] = field(default_factory=dict)
    not_decoded: set[str] = field(default_factory=set)  # methods not decodable here
    not_judged: str | None = None  # why the archive could not be read at all
    # Custom format: where each part lies in the stream, (what, start, end): the
    # header, the TOC, then each data block. Bounded by the number of tables.
    spans: list[tuple[str, int, int]] = field(default_factory=list)


class _Str:
    __slots__ = ("utf8", "value")

    def __init__(self, value: str | None, utf8: bool) -> None:
        self.value = value
        self.utf8 = utf8


class TocReader:
    """Reads an archive header and TOC as a stream parser (see streamparse)."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur
        self.int_size = 4
        self.off_size = 8
        self.version = (0, 0, 0)
        self.toc: Toc | None = None
        self._bad_text_at: int | None = None

    # -- primitives --------------------------------------------------------------

    def byte(self, what: str) -> Parse[int]:
        return (yield from take(self.cur, 1, what))[0]

    def int_(self, what: str) -> Parse[int]:
        raw = yield from take(self.cur, 1 + self.int_size, what)
        if raw[0] > 1:
            raise Damaged(f"{what}: sign byte {raw[0]} (0 or 1)", self.cur.pos - len(raw))
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def str_(self, what: str, keep: int = KEEP) -> Parse[_Str]:
        at = self.cur.pos
        n = yield from self.int_(f"the length of {what}")
        if n == -1:
            return _Str(None, True)
        if n < -1:
            raise Damaged(f"{what}: length {n}", at)
        kept = bytearray()
        ok = True
        dec = _utf8_decoder()
        while n > 0:
            piece = yield from take(self.cur, min(n, PIECE), what)
            n -= len(piece)
            if ok:
                try:
                    dec.decode(piece, final=n == 0)
                except UnicodeDecodeError:
                    ok = False
            if len(kept) < keep:
                kept += piece[: keep - len(kept)]
        if not ok and self._bad_text_at is None:
            self._bad_text_at = at
        return _Str(kept.decode("utf-8", "replace"), ok)

    def text(self, what: str, pattern: re.Pattern[str] | None = None) -> Parse[str]:
        """A string that pg_dump always writes, matching ``pattern`` when given."""
        at = self.cur.pos
        s = yield from self.str_(what)
        if s.value is None:
            raise Damaged(f"{what} is missing", at)
        if pattern is not None and not pattern.fullmatch(s.value):
            raise Damaged(f"{what} {s.value[:60]!r} is not one pg_dump writes", at)
        return s.value

    def offset(self, what: str) -> Parse[tuple[int, int]]:
        raw = yield from take(self.cur, 1 + self.off_size, what)
        return raw[0], int.from_bytes(raw[1:], "little")

    # -- header ------------------------------------------------------------------

    def head(self, fmt: int) -> Parse[Header | None]:
        """The header; None when its version is one this module does not read."""
        magic = yield from take(self.cur, 5, "the archive header")
        if magic != b"PGDMP":
            raise Damaged("the archive does not start with PGDMP", 0)
        vmaj, vmin, vrev = yield from take(self.cur, 3, "the archive version")
        self.version = (vmaj, vmin, vrev)
        if vmaj != 1 or vmin > PLAUSIBLE_MINOR or vrev != 0:
            raise Damaged(f"archive version {vmaj}.{vmin}.{vrev} is no pg_dump's", 5)
        if not MIN_VERSION <= (vmaj, vmin) <= MAX_VERSION:
            return None
        self.int_size = yield from self.byte("the integer size")
        self.off_size = yield from self.byte("the offset size")
        if self.int_size not in (4, 8) or self.off_size not in (4, 8):
            raise Damaged(f"integer/offset sizes {self.int_size}/{self.off_size}", 8)
        got = yield from self.byte("the format")
        if got != fmt:
            raise Damaged(f"format code {got} where {fmt} belongs", 10)
        compression = yield from self._compression()
        created = yield from self._created()
        database = yield from self.text("the database name")
        server = yield from self.text("the server version", _VERSION)
        dump = yield from self.text("the pg_dump version", _VERSION)
        return Header(
            (vmaj, vmin, vrev),
            self.int_size,
            self.off_size,
            fmt,
            compression,
            created,
            database,
            server,
            dump,
        )

    def _compression(self) -> Parse[str]:
        at = self.cur.pos
        if self.version >= (1, 15, 0):
            code = yield from self.byte("the compression method")
            if code not in METHODS:
                raise Damaged(f"compression method {code}", at)
            return METHODS[code]
        level = yield from self.int_("the compression level")
        if not -1 <= level <= 9:
            raise Damaged(f"compression level {level}", at)
        return "none" if level == 0 else "gzip"

    def _created(self) -> Parse[str]:
        at = self.cur.pos
        parts = []
        for what in ("second", "minute", "hour", "day", "month", "year", "DST flag"):
            parts.append((yield from self.int_(f"the creation {what}")))
        sec, mins, hour, mday, mon, year, dst = parts
        if not (
            0 <= sec <= 61
            and 0 <= mins <= 59
            and 0 <= hour <= 23
            and 1 <= mday <= 31
            and 0 <= mon <= 11
            and 70 <= year <= 1100
            and -1 <= dst <= 1
        ):
            raise Damaged(f"creation time fields {parts} are out of range", at)
        text = f"{year + 1900:04d}-{mon + 1:02d}-{mday:02d} {hour:02d}:{mins:02d}:{sec:02d}"
        if _dt.datetime(year + 1900, mon + 1, min(mday, 28)) > _dt.datetime.now() + FUTURE_SLACK:
            raise Damaged(f"creation time {text} is in the future", at)
        return text

    # -- TOC ---------------------------------------------------------------------

    def read_toc(self, header: Header, extra: Callable[[Entry | None], Parse[None]]) -> Parse[Toc]:
        """The TOC; ``extra`` reads the format's own field of each entry."""
        toc = self.toc = Toc(header)
        at = self.cur.pos
        count = yield from self.int_("the TOC entry count")
        if not 0 <= count <= MAX_ENTRIES:
            raise Damaged(f"TOC entry count {count}", at)
        ids: set[int] = set()
        for i in range(count):
            entry, had_dumper = yield from self._entry(i, ids)
            yield from extra(entry if had_dumper else None)
            toc.entries += 1
        if toc.encoding is None:
            raise Damaged("the TOC has no ENCODING entry (pg_dump always writes one)")
        toc.bad_text_at = self._bad_text_at
        if toc.utf8 and toc.bad_text_at is not None:
            raise Damaged("a TOC string is not valid UTF-8 (the archive's encoding is UTF8)",
                          toc.bad_text_at)  # fmt: skip
        return toc

    def _entry(self, i: int, ids: set[int]) -> Parse[tuple[Entry, bool]]:
        assert self.toc is not None
        at = self.cur.pos
        where = f"TOC entry {i + 1}"
        dump_id = yield from self.int_(f"the dump id of {where}")
        if not 0 < dump_id < MAX_DUMP_ID or dump_id in ids:
            raise Damaged(f"{where} has dump id {dump_id} (positive, unique, small)", at)
        ids.add(dump_id)
        at = self.cur.pos
        had = yield from self.int_(f"the data flag of {where}")
        if had not in (0, 1):
            raise Damaged(f"{where} has data flag {had}", at)
        yield from self.text(f"the catalog table id of {where}", _DIGITS)
        yield from self.text(f"the catalog id of {where}", _DIGITS)
        tag = yield from self.text(f"the tag of {where}")
        desc = yield from self.text(f"the kind of {where}", _DESC)
        where = f"TOC entry {i + 1} ({desc} {tag[:60]})"
        at = self.cur.pos
        section = yield from self.int_(f"the section of {where}")
        if section not in SECTIONS:
            raise Damaged(f"{where} has section {section}", at)
        defn = (yield from self.str_(f"the SQL of {where}", 4096)).value
        yield from self.str_(f"the DROP statement of {where}")
        copy = yield from self.str_(f"the COPY statement of {where}", KEEP_COPY)
        namespace = (yield from self.str_(f"the schema of {where}")).value
        yield from self.str_(f"the tablespace of {where}")
        if self.version >= (1, 14, 0):
            yield from self.str_(f"the access method of {where}")
        if self.version >= (1, 16, 0):
            at = self.cur.pos
            relkind = yield from self.int_(f"the relkind of {where}")
            if not (relkind == 0 or 0x61 <= relkind <= 0x7A):
                raise Damaged(f"{where} has relkind {relkind}", at)
        yield from self.str_(f"the owner of {where}")
        yield from self.text(f"the WITH OIDS flag of {where}", re.compile("true|false"))
        yield from self._deps(where)
        self._special(desc, defn, where, at)
        self.toc.by_desc[desc] = self.toc.by_desc.get(desc, 0) + 1
        columns = _copy_columns(copy.value, namespace, tag, defn, where, at)
        return Entry(dump_id, desc, tag, namespace, columns), bool(had)

    def _deps(self, where: str) -> Parse[None]:
        while True:
            at = self.cur.pos
            dep = yield from self.str_(f"a dependency of {where}", 32)
            if dep.value is None:
                return
            if not _DIGITS.fullmatch(dep.value) or not 0 < int(dep.value) < MAX_DUMP_ID:
                raise Damaged(f"{where} has dependency {dep.value[:20]!r}", at)

    def _special(self, desc: str, defn: str | None, where: str, at: int) -> None:
        """The entries pg_restore itself parses: damaged, they stop a restore."""
        assert self.toc is not None
        if desc == "ENCODING":
            m = _ENCODING.match(defn or "")
            if not m:
                raise Damaged(f"{where}: {defn!r} is not a client_encoding setting", at)
            self.toc.encoding = m.group(1)
        elif desc == "STDSTRINGS" and not _STDSTRINGS.match(defn or ""):
            raise Damaged(f"{where}: {defn!r} is not a standard_conforming_strings setting", at)


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")()


def _idents(text: str) -> tuple[list[str], str]:
    """The dotted, possibly quoted, name at the start of ``text``, and the rest."""
    names: list[str] = []
    i = 0
    while True:
        if text[i : i + 1] == '"':
            j = i + 1
            name = []
            while True:
                k = text.find('"', j)
                if k == -1:
                    raise ValueError("unterminated quoted name")
                name.append(text[j:k])
                if text[k + 1 : k + 2] == '"':
                    name.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            names.append("".join(name))
        else:
            m = re.match(r'[^\s."(),]+', text[i:])
            if not m:
                raise ValueError("no name")
            names.append(m.group(0))
            i += m.end()
        if text[i : i + 1] != ".":
            return names, text[i:]
        i += 1


def _count_columns(cols: str) -> int:
    """Columns in a COPY column list (names may be quoted and hold commas)."""
    n, quoted = 1, False
    for ch in cols:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            n += 1
    if quoted:
        raise ValueError("unterminated quoted name")
    return n


def _copy_columns(
    stmt: str | None, namespace: str | None, tag: str, defn: str | None, where: str, at: int
) -> int | None:
    """The column count of an entry's COPY statement (None when it has none), after
    checking that the statement is pg_dump's and names the entry's own table."""
    if not stmt:
        return None
    head, tail = "COPY ", " FROM stdin;"
    body = stmt.rstrip("\n")
    try:
        if not (body.startswith(head) and body.endswith(tail)):
            raise ValueError("not COPY ... FROM stdin;")
        names, rest = _idents(body[len(head) : -len(tail)])
        if rest == "":
            columns = 0
        elif rest.startswith(" (") and rest.endswith(")"):
            columns = _count_columns(rest[2:-1])
        else:
            raise ValueError("no column list")
    except ValueError as exc:
        why = f"{where}: COPY statement {stmt[:80]!r} is not pg_dump's ({exc})"
        raise Damaged(why, at) from None
    own = [namespace, tag] if namespace else [tag]
    # With --load-via-partition-root a partition's rows are loaded through its root.
    if names != own and not (defn or "").startswith(_PARTITION_ROOT):
        raise Damaged(f"{where}: its COPY statement names {'.'.join(names)!r}", at)
    return columns


def judge_text(toc: Toc, entry: Entry, facts: TextFacts) -> str | None:
    """Why an entry's decoded data cannot be its table's data, or None."""
    if entry.desc not in ("TABLE DATA", "MATERIALIZED VIEW DATA"):
        return None  # large objects are bytes, not text
    return facts.problem(entry.columns, toc.utf8)


def count_rows(facts: ArchiveFacts, entry: Entry, text: TextFacts) -> None:
    if entry.columns is not None:
        facts.rows += text.rows
        facts.table_rows[entry.table] = facts.table_rows.get(entry.table, 0) + text.rows


def unreadable(version: tuple[int, int, int]) -> str:
    v = f"{version[0]}.{version[1]}"
    lo, hi = ".".join(map(str, MIN_VERSION)), ".".join(map(str, MAX_VERSION))
    age = "older" if version[:2] < MIN_VERSION else "newer"
    return f"archive version {v} is {age} than the versions Sealcheck reads ({lo} to {hi})"


# --- the inspector's side: chunks in, facts or a typed error out ----------------------


def to_error(exc: BaseException, obj: str | None, what: str) -> SealcheckError:
    """A parser's exception as the typed error the report shows."""
    if isinstance(exc, Damaged):
        where = f" (at byte {exc.at})" if exc.at is not None else ""
        return IntegrityError(f"{what}: {exc.why}{where}", obj=obj, layer=Layer.PAYLOAD)
    if isinstance(exc, Ended):
        return IncompleteDump(
            f"{what} ends inside {exc.what} (which starts at byte {exc.at}): the archive was "
            "cut short",
            obj=obj,
        )
    if isinstance(exc, Missing):
        return IncompleteDump(f"{what}: {exc}", obj=obj)
    raise exc
