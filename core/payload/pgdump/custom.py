"""The custom format (-Fc) read to its last data block, as a stream.

After the header and TOC (pgarchive), one block per TOC entry with data: a type
byte (1 table data, 3 large objects), the dump id, then length-prefixed chunks of
the compressed data ended by a zero length (large objects: one such run per
object, each after its OID). No trailer follows the last block: the archive is
complete when every entry with data has had its block. When pg_dump could seek
(it wrote to a file), the TOC records where each block starts, and that must be
where it is found.
"""

from __future__ import annotations

from ..streamparse import PIECE, Cursor, Damaged, Ended, Feeder, Parse, take, take_or_end
from .archive import (
    BLK_BLOBS,
    BLK_DATA,
    FMT_CUSTOM,
    NO_DATA,
    POS_NOT_SET,
    POS_SET,
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
from .data import EntryData, TextFacts


class CustomParser:
    """The custom format from its header to its last data block (a stream parser)."""

    def __init__(self, facts: ArchiveFacts) -> None:
        self.cur = Cursor()
        self.reader = TocReader(self.cur)
        self.facts = facts
        self._seen: set[int] = set()

    def parse(self) -> Parse[None]:
        header = yield from self.reader.head(FMT_CUSTOM)
        if header is None:
            self.facts.not_judged = unreadable(self.reader.version)
            return
        spans = self.facts.spans
        spans.append(("header", 0, self.cur.pos))
        toc = yield from self.reader.read_toc(header, self._extra)
        spans.append(("TOC", spans[-1][2], self.cur.pos))
        self.facts.toc = toc
        while True:
            at = self.cur.pos
            kind = yield from take_or_end(self.cur, 1, "a data block")
            if kind is None:
                break
            name = yield from self._block(toc, kind[0], at)
            spans.append((name, at, self.cur.pos))
        missing = [e for i, e in toc.data.items() if i not in self._seen]
        if missing:
            names = ", ".join(e.name for e in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise Missing(
                f"the archive ends after {len(self._seen)} of its {len(toc.data)} data blocks; "
                f"missing: {names}{more}"
            )

    def _extra(self, entry: Entry | None) -> Parse[None]:
        at = self.cur.pos
        state, offset = yield from self.reader.offset("a TOC entry's data position")
        if state not in (POS_NOT_SET, POS_SET, NO_DATA) or (entry is None) != (state == NO_DATA):
            raise Damaged(f"data position flag {state} does not fit its entry", at)
        # pg_dump writes a position only where it wrote a block (the TOC rewritten
        # once the blocks are in place); elsewhere the field is zero.
        if state != POS_SET and offset != 0:
            raise Damaged(f"data position {offset} with flag {state}", at)
        if entry is not None:
            assert self.reader.toc is not None
            entry.state, entry.offset = state, offset
            self.reader.toc.data[entry.dump_id] = entry

    def _block(self, toc: Toc, kind: int, at: int) -> Parse[str]:
        dump_id = yield from self.reader.int_("a data block's dump id")
        entry = toc.data.get(dump_id)
        if entry is None or dump_id in self._seen:
            raise Damaged(f"a data block names dump id {dump_id}, which has no (other) data", at)
        if entry.state == POS_SET and entry.offset != at:
            raise Damaged(f"the TOC puts the data of {entry.name} at byte {entry.offset}", at)
        want = BLK_BLOBS if entry.desc == "BLOBS" else BLK_DATA
        if kind != want:
            raise Damaged(f"block type {kind} for {entry.name}", at)
        self._seen.add(dump_id)
        method = _block_method(toc.header.compression)
        if kind == BLK_BLOBS:
            yield from self._blobs(entry, method)
        else:
            data = EntryData(method, f"the data of {entry.name}", Damaged)
            text = yield from self._chunks(entry, data)
            self._judge(toc, entry, text, at)
        self.facts.blocks += 1
        return entry.name

    def _chunks(self, entry: Entry, data: EntryData) -> Parse[TextFacts]:
        while True:
            at = self.cur.pos
            n = yield from self.reader.int_(f"a chunk length in the data of {entry.name}")
            if n == 0:
                break
            if n < 0:
                raise Damaged(f"chunk length {n} in the data of {entry.name}", at)
            while n > 0:
                piece = yield from take(self.cur, min(n, PIECE), f"the data of {entry.name}")
                n -= len(piece)
                data.feed(piece, at)
        text = data.finish(at)
        if not data.decoder.checked:
            self.facts.not_decoded.add(data.decoder.method)
        return text

    def _blobs(self, entry: Entry, method: str) -> Parse[None]:
        while True:
            at = self.cur.pos
            oid = yield from self.reader.int_(f"a large object's OID in {entry.name}")
            if oid == 0:
                return
            if oid < 0:
                raise Damaged(f"large object OID {oid} in {entry.name}", at)
            yield from self._chunks(
                entry, EntryData(method, f"the data of {entry.name}", Damaged, text=False)
            )
            self.facts.blobs += 1

    def _judge(self, toc: Toc, entry: Entry, facts: TextFacts, at: int) -> None:
        why = judge_text(toc, entry, facts)
        if why is not None:
            raise Damaged(f"the data of {entry.name}: {why}", at)
        count_rows(self.facts, entry, facts)


def _block_method(compression: str) -> str:
    # Custom-format blocks compressed "gzip" are zlib streams (no gzip header).
    return "zlib" if compression == "gzip" else compression


class CustomArchiveCheck:
    """Fed the plaintext of a custom-format archive; ``finish`` gives its facts."""

    WHAT = "pg_dump custom-format archive"

    def __init__(self, *, obj: str | None = None) -> None:
        self._obj = obj
        self.facts = ArchiveFacts("custom")
        self._parser = CustomParser(self.facts)
        self._feeder = Feeder(self._parser.parse(), self._extra)
        self._extra_bytes = 0

    def _extra(self, n: int) -> None:
        self._extra_bytes += n

    def feed(self, data: bytes) -> None:
        try:
            self._feeder.feed(data)
        except (Damaged, Ended, Missing) as exc:
            raise to_error(exc, self._obj, self.WHAT) from None

    def finish(self) -> ArchiveFacts:
        try:
            self._feeder.finish()
        except (Damaged, Ended, Missing) as exc:
            raise to_error(exc, self._obj, self.WHAT) from None
        return self.facts
