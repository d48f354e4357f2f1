"""A tar stream, and the pg_dump archives in it (tar format -Ft, or a tarred -Fd).

The tar itself is read by the one tar reader (payload/tar.py). pg_dump's tar
format (-Ft) writes toc.dat, one NNNN.dat per table and restore.sql; a directory
archive (-Fd) holds toc.dat and NNNN.dat[.gz|.lz4|.zst] files, and reaches
storage tarred (``tar czf db.tar.gz db/``), so the archive is a folder inside the
tar, in any member order. Several archives may share one tar.

Each member is checked as it streams by (tar header checksum, decompression,
COPY text), keeping only its facts; the TOC decides at the end what each member
had to be, and every data file the TOC names must be there.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..streamparse import Cursor, Damaged, Ended, Feeder, Parse
from ..tar import Member, MemberSink, TarParser
from .archive import (
    FMT_TAR,
    ArchiveFacts,
    Entry,
    Missing,
    Toc,
    TocReader,
    count_rows,
    judge_text,
    to_error,
    unreadable,
)
from .data import EntryData, TextCheck, TextFacts

_SUFFIX = {"": "none", ".gz": "gzip", ".lz4": "lz4", ".zst": "zstd"}
_DATA_FILE = re.compile(r"(\d+|blob_\d+)\.dat(\.gz|\.lz4|\.zst)?")
_BLOBS_TOC = re.compile(r"blobs(_\d+)?\.toc")
_BLOBS_LINE = re.compile(rb"(\d+) (blob_\d+\.dat)")


@dataclass
class _DataFile:
    method: str
    checked: bool
    text: TextFacts
    at: int


@dataclass
class _Archive:
    """One folder of the tar that holds (or should hold) a pg_dump archive."""

    folder: str
    toc: Toc | None = None
    restore_sql: TextFacts | None = None  # the tar format's SQL script
    restore_sql_at: int = 0
    files: dict[str, _DataFile] = field(default_factory=dict)  # "3385.dat" -> facts
    blob_lists: dict[str, set[str]] = field(default_factory=dict)  # "blobs.toc" -> files


class _TocFile(MemberSink):
    """toc.dat: a header (format 3) and the TOC, each entry naming its data file."""

    def __init__(self, arch: _Archive, on_done: Callable[[], None]) -> None:
        self._arch = arch
        self._on_done = on_done
        self.cur = Cursor()
        self._reader = TocReader(self.cur)
        self._feeder = Feeder(self._parse(), self._extra)
        self.not_judged: str | None = None

    def _parse(self) -> Parse[None]:
        header = yield from self._reader.head(FMT_TAR)
        if header is None:
            self.not_judged = unreadable(self._reader.version)
            return
        self._arch.toc = yield from self._reader.read_toc(header, self._filename)

    def _filename(self, entry: Entry | None) -> Parse[None]:
        at = self.cur.pos
        # pg_dump writes "" for an entry without data (older versions: none at all).
        name = (yield from self._reader.str_("a TOC entry's data file name")).value or None
        if (entry is None) != (name is None):
            raise Damaged("a TOC entry's data file name does not fit its entry", at)
        if entry is not None and name is not None:
            if not (_DATA_FILE.fullmatch(name) or _BLOBS_TOC.fullmatch(name)):
                raise Damaged(f"data file name {name[:40]!r} is not pg_dump's", at)
            entry.filename = name
            assert self._reader.toc is not None
            self._reader.toc.data[entry.dump_id] = entry

    def _extra(self, n: int) -> None:
        if self.not_judged is None:
            raise Damaged(f"{n} bytes follow the TOC in toc.dat")

    def feed(self, data: bytes) -> None:
        try:
            self._feeder.feed(data)
        except (Damaged, Ended) as exc:
            raise self._inside(exc) from None

    def finish(self) -> None:
        try:
            self._feeder.finish()
        except (Damaged, Ended) as exc:
            raise self._inside(exc) from None
        self._on_done()

    def _inside(self, exc: Damaged | Ended) -> Damaged:
        """Offsets in toc.dat are not offsets in the tar: say which they are."""
        name = posixpath.join(self._arch.folder, "toc.dat")
        if isinstance(exc, Ended):
            return Damaged(f"{name} ends inside {exc.what} (at its byte {exc.at})")
        where = f" (at its byte {exc.at})" if exc.at is not None else ""
        return Damaged(f"{name}: {exc.why}{where}")


class _DataSink(MemberSink):
    def __init__(self, arch: _Archive, base: str, method: str, at: int, done: Callable[[], None]):
        self._arch, self._base, self._at, self._done = arch, base, at, done
        what = f"the member {posixpath.join(arch.folder, base)}"
        self._data = EntryData(method, what, Damaged)

    def feed(self, data: bytes) -> None:
        self._data.feed(data, self._at)

    def finish(self) -> None:
        text = self._data.finish(self._at)
        dec = self._data.decoder
        name, _, _ = self._base.partition(".dat")
        self._arch.files[name + ".dat"] = _DataFile(dec.method, dec.checked, text, self._at)
        self._done()


class _ScriptSink(MemberSink):
    """restore.sql of the tar format: SQL text, checked like the data's text."""

    def __init__(self, arch: _Archive, at: int) -> None:
        self._arch, self._at = arch, at
        self._text = TextCheck()

    def feed(self, data: bytes) -> None:
        self._text.feed(data)

    def finish(self) -> None:
        self._arch.restore_sql = self._text.finish()
        self._arch.restore_sql_at = self._at


class _BlobList(MemberSink):
    """blobs.toc: "OID blob_OID.dat" per line, naming the large objects' files."""

    def __init__(self, arch: _Archive, base: str, at: int) -> None:
        self._names: set[str] = set()
        arch.blob_lists[base] = self._names
        self._carry = b""
        self._at = at

    def feed(self, data: bytes) -> None:
        lines = (self._carry + data).split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > 256:
            raise Damaged("a line of a large-object list is too long", self._at)
        for line in lines:
            m = _BLOBS_LINE.fullmatch(line)
            if not m:
                raise Damaged(f"large-object list line {line[:40]!r} is not pg_dump's", self._at)
            self._names.add(m.group(2).decode())

    def finish(self) -> None:
        if self._carry:
            raise Damaged("the large-object list stops inside a line", self._at)


class TarCheck:
    """Fed the plaintext of a tar stream; ``finish`` gives the pg_dump archives in it."""

    def __init__(self, *, obj: str | None = None) -> None:
        self._obj = obj
        self._archives: dict[str, _Archive] = {}
        self._parser = TarParser(self._member)
        self._feeder = Feeder(self._parser.parse(), lambda _n: None)
        self.results: list[ArchiveFacts] = []
        self.not_judged: str | None = None

    @property
    def members(self) -> int:
        return self._parser.members

    def _arch(self, folder: str) -> _Archive:
        return self._archives.setdefault(folder, _Archive(folder))

    def _member(self, m: Member) -> MemberSink | None:
        folder, base = posixpath.split(m.name.removeprefix("./"))
        if base == "toc.dat":
            arch = self._arch(folder)
            sink = _TocFile(arch, lambda: self._toc_done(arch, sink))
            return sink
        if base == "restore.sql":
            return _ScriptSink(self._arch(folder), m.at)
        if _BLOBS_TOC.fullmatch(base):
            return _BlobList(self._arch(folder), base, m.at)
        if dm := _DATA_FILE.fullmatch(base):
            arch = self._arch(folder)
            return _DataSink(arch, base, _SUFFIX[dm.group(2) or ""], m.at,
                             lambda: self._judge_early(arch))  # fmt: skip
        return None

    def _toc_done(self, arch: _Archive, sink: _TocFile) -> None:
        if sink.not_judged is not None:
            self.not_judged = f"{self._label(arch)}: {sink.not_judged}"
        self._judge_early(arch)

    def _judge_early(self, arch: _Archive) -> None:
        """Judge the data files read so far once the TOC is known (fail early)."""
        if arch.toc is None:
            return
        for entry in arch.toc.data.values():
            got = arch.files.get(entry.filename or "")
            if got is not None and (why := judge_text(arch.toc, entry, got.text)):
                raise Damaged(f"{self._label(arch)}: the data of {entry.name}: {why}", got.at)

    def _label(self, arch: _Archive) -> str:
        return f"the archive in folder {arch.folder!r}" if arch.folder else "the archive"

    def feed(self, data: bytes) -> None:
        try:
            self._feeder.feed(data)
        except (Damaged, Ended, Missing) as exc:
            raise to_error(exc, self._obj, "tar archive") from None

    def finish(self) -> list[ArchiveFacts]:
        try:
            self._feeder.finish()
            if self._parser.not_judged:
                self.not_judged = self._parser.not_judged
            self.results = [self._complete(a) for a in self._archives.values()]
        except (Damaged, Ended, Missing) as exc:
            raise to_error(exc, self._obj, "tar archive") from None
        return self.results

    def _complete(self, arch: _Archive) -> ArchiveFacts:
        toc = arch.toc
        facts = ArchiveFacts("directory" if arch.restore_sql is None else "tar", toc)
        if toc is None:
            if arch.files:
                raise Missing(
                    f"{self._label(arch)} holds pg_dump data files ({len(arch.files)}) but no "
                    "toc.dat: without it nothing can be restored"
                )
            return facts
        self._judge_early(arch)
        script = arch.restore_sql
        if script is not None and (why := script.problem(None, toc.utf8)):
            raise Damaged(f"{self._label(arch)}: restore.sql: {why}", arch.restore_sql_at)
        missing = [e for e in toc.data.values() if not self._has(arch, e, facts)]
        if missing:
            names = ", ".join(f"{e.filename} ({e.name})" for e in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise Missing(
                f"{self._label(arch)}: the TOC names data files that are not in the tar: "
                f"{names}{more}"
            )
        return facts

    def _has(self, arch: _Archive, entry: Entry, facts: ArchiveFacts) -> bool:
        name = entry.filename or ""
        if entry.desc == "BLOBS" and not _BLOBS_TOC.fullmatch(name):
            # The tar format names the entry NNNN.dat but writes the list of its large
            # objects to blobs.toc (blobs_NNNN.toc from archive version 1.16).
            assert arch.toc is not None
            old = arch.toc.header.version < (1, 16, 0)
            name = "blobs.toc" if old else f"blobs_{entry.dump_id}.toc"
        if _BLOBS_TOC.fullmatch(name):
            blobs = arch.blob_lists.get(name)
            if blobs is None:
                return False
            absent = sorted(b for b in blobs if b not in arch.files)
            if absent:
                raise Missing(
                    f"{self._label(arch)}: large-object files named by {name} are not in the "
                    f"tar: {', '.join(absent[:5])}"
                )
            facts.blobs += len(blobs)
            facts.blocks += 1
            return True
        got = arch.files.get(name)
        if got is None:
            return False
        if not got.checked:
            facts.not_decoded.add(got.method)
        facts.blocks += 1
        count_rows(facts, entry, got.text)
        return True
