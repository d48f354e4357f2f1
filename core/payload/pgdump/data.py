"""The data of one pg_dump archive entry, decoded and checked as it streams.

A table's data in a pg_dump archive (a custom-format block, a tar member, a
file of a directory archive) is compressed with the archive's method and, once
decoded, is COPY text: one line per row, the table's columns separated by tabs,
ended by the line ``\\.``. zlib and gzip carry a checksum of their own; the
rest of the data carries none, so the text itself is checked: every row has as
many fields as the COPY statement names columns, nothing follows the end line,
and the text is valid in the archive's encoding (when that is UTF-8).

Nothing here holds a whole row or block: decoders hand on bounded pieces and
the text check keeps counters, never lines.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from isal import isal_zlib

# Decoded output is handed on in pieces of at most this size (a decompression
# bomb inside an archive is then as harmless as a large table).
OUT_PIECE = 1 << 20
# zstd cannot bound its output per call: it is fed in slices this small (a
# slice of RLE blocks inflates to a few MiB at most).
ZSTD_SLICE = 256
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]
# Distinct field counts remembered per entry (a healthy COPY has one).
MAX_COUNTS = 4


class DataError(Exception):
    """The entry's data is damaged; the message says how (without the entry's name)."""


def _lz4_frame() -> Any:
    try:
        import lz4.frame  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return lz4.frame


class Decoder:
    """Decodes one compressed stream of an archive entry.

    ``method`` is "none", "zlib" (custom-format blocks), "gzip" (files of a
    directory archive), "zstd" or "lz4". ``checked`` is False when the data could
    not be decoded here (lz4 without its Python package): the framing around it
    is still checked, its content is not.
    """

    def __init__(self, method: str, sink: Callable[[bytes], None]) -> None:
        self.method = method
        self._sink = sink
        self.checked = True
        self.input_bytes = 0
        self._d: Any = None
        if method == "zlib":
            self._d = isal_zlib.decompressobj()
        elif method == "gzip":
            self._d = isal_zlib.decompressobj(31)
        elif method == "zstd":
            import zstandard

            self._d = zstandard.ZstdDecompressor().decompressobj()
        elif method == "lz4":
            frame = _lz4_frame()
            if frame is None:
                self.checked = False
            else:
                self._d = frame.LZ4FrameDecompressor()
        elif method != "none":
            raise ValueError(method)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.input_bytes += len(data)
        if self.method == "none":
            self._sink(data)
        elif self._d is None:
            return  # not decodable here (see checked)
        elif self.method in ("zlib", "gzip"):
            self._inflate(data)
        elif self.method == "zstd":
            for i in range(0, len(data), ZSTD_SLICE):
                self._zstd(data[i : i + ZSTD_SLICE])
        else:
            self._lz4(data)

    def _inflate(self, data: bytes) -> None:
        d = self._d
        if d.eof:
            raise DataError(f"{len(data)} bytes follow the end of its {self.method} stream")
        try:
            out = d.decompress(data, OUT_PIECE)
            while True:
                if out:
                    self._sink(out)
                if not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, OUT_PIECE)
        except (zlib.error, _ISAL_ERROR) as exc:
            raise DataError(f"its {self.method} data is damaged ({exc})") from None
        if d.unused_data:
            raise DataError(
                f"{len(d.unused_data)} bytes follow the end of its {self.method} stream"
            )

    def _zstd(self, data: bytes) -> None:
        import zstandard

        d = self._d
        if d.eof:
            raise DataError("data follows the end of its zstd frame")
        try:
            out = d.decompress(data)
        except zstandard.ZstdError as exc:
            raise DataError(f"its zstd data is damaged ({exc})") from None
        if out:
            self._sink(out)
        if d.eof and d.unused_data:
            raise DataError("data follows the end of its zstd frame")

    def _lz4(self, data: bytes) -> None:
        d = self._d
        if d.eof:
            raise DataError("data follows the end of its lz4 frame")
        try:
            out = d.decompress(data)
        except RuntimeError as exc:
            raise DataError(f"its lz4 data is damaged ({exc})") from None
        if out:
            self._sink(out)
        if d.eof and d.unused_data:
            raise DataError("data follows the end of its lz4 frame")

    def finish(self) -> None:
        """The entry's data ended: the compressed stream must have ended with it."""
        if self.method == "none" or self._d is None:
            return
        if self.input_bytes == 0:
            return  # an entry without data: nothing was compressed
        if not self._d.eof:
            raise DataError(f"its {self.method} stream stops before its end (cut short or damaged)")


@dataclass
class TextFacts:
    """What the decoded data of one entry looked like, for judging once the TOC
    (its COPY statement and the archive's encoding) is known."""

    bytes: int = 0
    rows: int = 0
    utf8_bad_at: int | None = None
    nul_at: int | None = None
    # Tab count of a row -> the first row (1-based) with that many tabs.
    tab_counts: dict[int, int] = field(default_factory=dict)
    many_counts: bool = False
    end_line: bool = False  # the "\." line was seen
    after_end_at: int | None = None  # a non-empty line after it
    unfinished: bool = False  # the data stops inside a line

    def problem(self, columns: int | None, utf8: bool) -> str | None:
        """Why this data cannot be the entry's, or None. ``columns``: the COPY
        statement's column count (None: not COPY data, e.g. --inserts)."""
        if utf8 and self.utf8_bad_at is not None:
            return (
                f"its text is not valid UTF-8 at byte {self.utf8_bad_at} (the archive's "
                "encoding is UTF8)"
            )
        if self.nul_at is not None:
            return f"its text holds a NUL byte at byte {self.nul_at}, which a dump never writes"
        if columns is None:
            return None
        if self.unfinished:
            return "its COPY data stops inside a row"
        if not self.end_line:
            return "its COPY data has no end-of-data line (\\.): it was cut short"
        if self.after_end_at is not None:
            return f"data follows its end-of-data line (\\.) at byte {self.after_end_at}"
        want = max(columns - 1, 0)
        for tabs, row in sorted(self.tab_counts.items(), key=lambda kv: kv[1]):
            if tabs != want:
                return f"row {row} has {tabs + 1} fields where the table has {columns} columns"
        if self.many_counts:
            return "its rows have differing numbers of fields"
        return None


class TextCheck:
    """Collects TextFacts from decoded data fed in pieces (constant memory)."""

    def __init__(self) -> None:
        self.facts = TextFacts()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._tabs = 0  # tabs in the current, unfinished line
        self._len = 0  # its length
        self._head = b""  # its first bytes (enough to tell the "\." line)

    def feed(self, data: bytes) -> None:
        f = self.facts
        start = f.bytes
        f.bytes += len(data)
        if f.utf8_bad_at is None:
            try:
                self._utf8.decode(data)
            except UnicodeDecodeError as exc:
                f.utf8_bad_at = start + max(exc.start, 0)
        if f.nul_at is None and (i := data.find(b"\0")) != -1:
            f.nul_at = start + i
        lines = data.split(b"\n")
        last = lines.pop()
        offset = start
        for seg in lines:
            self._line(self._tabs + seg.count(b"\t"), self._len + len(seg), seg, offset)
            offset += len(seg) + 1
            self._tabs = self._len = 0
            self._head = b""
        self._tabs += last.count(b"\t")
        if len(self._head) < 3:
            self._head += last[: 3 - len(self._head)]
        self._len += len(last)

    def _line(self, tabs: int, length: int, seg: bytes, at: int) -> None:
        f = self.facts
        if f.end_line:
            if length and f.after_end_at is None:
                f.after_end_at = at
            return
        head = (self._head + seg[:3])[:3] if self._len else seg[:3]
        if length == 2 and head == b"\\.":
            f.end_line = True
            return
        f.rows += 1
        if tabs not in f.tab_counts:
            if len(f.tab_counts) < MAX_COUNTS:
                f.tab_counts[tabs] = f.rows
            else:
                f.many_counts = True

    def finish(self) -> TextFacts:
        f = self.facts
        if f.utf8_bad_at is None:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                f.utf8_bad_at = f.bytes
        if self._len:
            f.unfinished = True
        return f


def _discard(_data: bytes) -> None:
    """A large object's content: decoded (its stream checked), not read as text."""


class EntryData:
    """One entry's data as it streams by (a custom-format block's chunks, a file in a
    tar): decoded with ``method`` and, unless ``text`` is False (a large object), its
    COPY text checked. A decoding error is raised as ``damaged(f"{what}: {why}", at)``,
    the archive's own error (archive.Damaged: that module imports this one), at the
    position the caller gives with each piece."""

    def __init__(
        self,
        method: str,
        what: str,
        damaged: Callable[[str, int], Exception],
        *,
        text: bool = True,
    ) -> None:
        self._text = TextCheck() if text else None
        self.decoder = Decoder(method, self._text.feed if self._text else _discard)
        self._what = what
        self._damaged = damaged

    def feed(self, data: bytes, at: int) -> None:
        try:
            self.decoder.feed(data)
        except DataError as exc:
            raise self._damaged(f"{self._what}: {exc}", at) from None

    def finish(self, at: int) -> TextFacts:
        """The data ended: its compressed stream must have ended too. Its text's facts
        (empty for a large object)."""
        try:
            self.decoder.finish()
        except DataError as exc:
            raise self._damaged(f"{self._what}: {exc}", at) from None
        return self._text.finish() if self._text is not None else TextFacts()
