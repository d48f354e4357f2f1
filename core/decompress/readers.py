"""Streaming decompressors with strict end-of-stream checks.

Incremental decompressors stop silently at the end of the first member and
say nothing when the input just stops (formats.md §10, reliability.md §1.8:
``zlib.decompressobj`` returns without error on a truncated stream). Each
reader here therefore (1) continues across concatenated members/streams,
which pigz/pbzip2/pzstd produce, counting them; (2) rejects bytes after the
last member that are not another member (zero padding aside: gzip(1)'s after
the last member, xz's Stream Padding in multiples of four bytes); (3) fails
when the input ends before the end-of-stream marker. Output per call is capped
so that a decompression bomb cannot grow memory.
"""

from __future__ import annotations

import bz2
import lzma
from typing import Any, Protocol

from isal import igzip_lib, isal_zlib

from ..errors import IntegrityError, Layer, TruncatedBackup
from ..formats import Fmt
from ..plumbing.progress import CancelToken
from ..plumbing.streams import CHUNK, Reader
from .base import DecompressReader, DecompressStats

# The isal stubs declare ``error`` as an instance; it is the exception class
# (igzip_lib.IsalError is the same class).
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


class _Obj(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _MemberReader:
    """Common loop for gzip (ISA-L), bzip2 and xz decompressor objects."""

    fmt: Fmt
    magic: bytes

    def __init__(
        self, upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
    ) -> None:
        self._up = upstream
        self._obj = obj
        self._cancel = cancel or CancelToken()
        self._d: Any = self._new()
        self._pending = b""
        self._up_eof = False
        self._done = False
        self._maybe_more = False  # the last call hit the output cap
        self.stats = DecompressStats(self.fmt.value, members=1)

    def _new(self) -> Any:
        raise NotImplementedError

    def _tail_input(self) -> bytes:
        """Input the decompressor received but did not consume."""
        return bytes(getattr(self._d, "unconsumed_tail", b""))

    def _fill(self) -> bool:
        if self._up_eof:
            return False
        self._cancel.check()
        chunk = self._up.read(CHUNK)
        if not chunk:
            self._up_eof = True
            return False
        self.stats.input_bytes += len(chunk)
        self._pending = self._pending + chunk if self._pending else chunk
        return True

    def _error(self, exc: Exception) -> IntegrityError:
        return IntegrityError(
            f"{self.fmt.value} data is corrupt ({exc}) in member {self.stats.members}",
            obj=self._obj,
            layer=Layer.DECOMPRESS,
        )

    def _next_member(self) -> bool:
        """At the end of a member: start the next one, or confirm the true end."""
        rest = bytes(self._d.unused_data) + self._pending
        self._pending = b""
        zeros, rest = self._skip_zeros(rest)
        while rest and len(rest) < len(self.magic) and self._fill():
            rest += self._pending
            self._pending = b""
        if not rest:
            self._end_padding(zeros)
            return False
        if rest.startswith(self.magic) and self._padding_between(zeros):
            self._d = self._new()
            self.stats.members += 1
            self._pending = rest
            return True
        after = f"{zeros} zero bytes and then " if zeros else ""
        raise IntegrityError(
            f"unexpected data after the end of the {self.fmt.value} stream "
            f"({after}bytes that do not start a member, after member {self.stats.members})",
            obj=self._obj,
            layer=Layer.DECOMPRESS,
        )

    def _skip_zeros(self, rest: bytes) -> tuple[int, bytes]:
        """Count and drop the zero bytes after a member, one chunk at a time."""
        zeros = 0
        while True:
            stripped = rest.lstrip(b"\0")
            zeros += len(rest) - len(stripped)
            if stripped or not self._fill():
                return zeros, stripped
            rest, self._pending = self._pending, b""

    def _padding_between(self, zeros: int) -> bool:
        """Whether ``zeros`` zero bytes may sit between two members."""
        # gzip(1) stops at zero bytes and ignores what follows them, so a
        # member after zeros is not data it would restore.
        return zeros == 0

    def _end_padding(self, zeros: int) -> None:
        """Judge the zero bytes after the last member."""
        # gzip(1) tolerates zero padding after the last member (tape blocking).
        if zeros:
            self.stats.trailing_zero_bytes += zeros
            self.stats.notes.append(f"{zeros} zero bytes after the last member (ignored)")

    def read(self, n: int = -1, /) -> bytes:
        limit = n if n > 0 else CHUNK
        # Checked per output chunk too: one input chunk of a bomb decodes to many.
        self._cancel.check()
        while not self._done:
            if self._d.eof:
                if not self._next_member():
                    self._done = True
                    return b""
            if (
                not self._pending
                and not self._maybe_more
                and not self._needs_no_input()
                and not self._fill()
            ):
                raise TruncatedBackup(
                    f"the {self.fmt.value} stream ends before its end-of-stream marker "
                    f"(member {self.stats.members})",
                    obj=self._obj,
                    layer=Layer.DECOMPRESS,
                )
            try:
                out = self._d.decompress(self._pending, limit)
            except (
                OSError,
                EOFError,
                ValueError,
                _ISAL_ERROR,
                lzma.LZMAError,
            ) as exc:
                raise self._error(exc) from None
            self._pending = self._tail_input()
            self._maybe_more = len(out) >= limit
            if out:
                return bytes(out)
        return b""

    def _needs_no_input(self) -> bool:
        # bz2/lzma keep decompressed output buffered internally when capped
        # by max_length; they say so with needs_input == False.
        return getattr(self._d, "needs_input", True) is False


# A gzip header's FNAME and FCOMMENT fields are zero-terminated and RFC 1952
# sets no length limit. They are skipped, never kept, so their length costs no
# memory; the bound only stops a damaged header (a flipped FLG bit) from
# swallowing the whole stream as a "name" before anything is reported.
MAX_GZIP_HEADER_FIELD = 64 << 20
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT, _FRESERVED = 0x02, 0x04, 0x08, 0x10, 0xE0


class _GzipHeader:
    """Incremental RFC 1952 member-header parser that stores no variable-length field.

    ISA-L's own gzip header reader loses its place when a header that has both
    FNAME and FCOMMENT arrives split over two calls (a valid member with a
    long name was reported as corrupt), so the header is read here and ISA-L
    only inflates the body and checks the CRC-32/ISIZE trailer.
    """

    def __init__(self) -> None:
        # The fields still to read, in RFC order: (name, fixed size or 0 for
        # a zero-terminated field).
        self._fields: list[tuple[str, int]] = [("fixed", 10)]
        self._buf = b""  # the part of a fixed-size field read so far
        self._crc = 0  # CRC-32 of the header bytes so far, for FHCRC
        self._field_len = 0  # bytes of the zero-terminated field so far

    def feed(self, data: bytes) -> bytes | None:
        """Consume header bytes; return the bytes after the header once it is
        complete, None while more input is needed."""
        pos = 0
        while self._fields:
            name, size = self._fields[0]
            pos = self._fixed(data, pos, name, size) if size else self._terminated(data, pos, name)
            if pos < 0:
                return None
        return data[pos:] if pos else data

    def _fixed(self, data: bytes, pos: int, name: str, size: int) -> int:
        part = data[pos : pos + size - len(self._buf)]
        self._buf += part
        if len(self._buf) < size:
            return -1
        value, self._buf = self._buf, b""
        self._fields.pop(0)
        if name == "hcrc":
            if int.from_bytes(value, "little") != self._crc & 0xFFFF:
                raise ValueError("the member header's CRC-16 (FHCRC) does not match the header")
        else:
            self._crc = isal_zlib.crc32(value, self._crc)
            self._parsed(name, value)
        return pos + len(part)

    def _terminated(self, data: bytes, pos: int, name: str) -> int:
        nul = data.find(b"\0", pos)
        end = len(data) if nul == -1 else nul + 1
        self._crc = isal_zlib.crc32(memoryview(data)[pos:end], self._crc)
        self._field_len += (end if nul == -1 else nul) - pos
        if self._field_len > MAX_GZIP_HEADER_FIELD:
            raise ValueError(
                f"the member header's {name} field is longer than "
                f"{MAX_GZIP_HEADER_FIELD >> 20} MiB, the most Sealcheck reads (gzip sets no "
                "limit; no producer writes one this long): the header is taken as damaged"
            )
        if nul == -1:
            return -1
        self._field_len = 0
        self._fields.pop(0)
        return end

    def _parsed(self, name: str, value: bytes) -> None:
        if name == "fixed":
            method, flags = value[2], value[3]
            if value[:2] != b"\x1f\x8b":
                raise ValueError("the member does not start with the gzip magic bytes")
            if method != 8:
                raise ValueError(f"unknown compression method {method} in the member header")
            if flags & _FRESERVED:
                raise ValueError(f"reserved header flag bits set (FLG=0x{flags:02x})")
            optional = (
                (_FEXTRA, "XLEN", 2),
                (_FNAME, "FNAME (original file name)", 0),
                (_FCOMMENT, "FCOMMENT", 0),
                (_FHCRC, "hcrc", 2),
            )
            self._fields = [(n, size) for flag, n, size in optional if flags & flag]
        elif name == "XLEN":
            xlen = int.from_bytes(value, "little")
            if xlen:
                self._fields.insert(0, ("FEXTRA", xlen))


class _GzipMember:
    """One gzip member: the header read by _GzipHeader, the body inflated by
    ISA-L, which also verifies the CRC-32 and ISIZE trailer."""

    def __init__(self) -> None:
        self._header = _GzipHeader()
        self._inflate: Any = None

    @property
    def eof(self) -> bool:
        return self._inflate is not None and bool(self._inflate.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._inflate.unused_data) if self._inflate is not None else b""

    @property
    def needs_input(self) -> bool:
        return self._inflate is None or bool(self._inflate.needs_input)

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._inflate is None:
            body = self._header.feed(data)
            if body is None:
                return b""
            # ISA-L inflate is ~3x zlib's and releases the GIL. Unlike
            # zlib-style ``decompressobj`` (whose ``unconsumed_tail`` is a
            # fresh copy of the rest of the input after every capped call) it
            # keeps the unconsumed input internally, as bz2/lzma do.
            self._inflate = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP_NO_HDR_VER)
            data = body
        out: bytes = self._inflate.decompress(data, max_length)
        return out


class GzipReader(_MemberReader):
    fmt = Fmt.GZIP
    magic = b"\x1f\x8b"

    def _new(self) -> Any:
        return _GzipMember()

    def _tail_input(self) -> bytes:
        return b""


class SequentialBzip2Reader(_MemberReader):
    """bzip2 on one core: the fallback when there is a single CPU."""

    fmt = Fmt.BZIP2
    magic = b"BZh"

    def _new(self) -> Any:
        return bz2.BZ2Decompressor()

    def _tail_input(self) -> bytes:
        return b""  # bz2 buffers unconsumed input internally


class XzReader(_MemberReader):
    fmt = Fmt.XZ
    magic = b"\xfd7zXZ\x00"

    def _new(self) -> Any:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def _tail_input(self) -> bytes:
        return b""

    # The xz format allows Stream Padding, zero bytes in multiples of four,
    # between concatenated streams and after the last one; ``xz -t`` accepts
    # it and rejects any other count.
    def _padding_between(self, zeros: int) -> bool:
        self._check_padding(
            zeros, f"between streams {self.stats.members} and {self.stats.members + 1}"
        )
        return True

    def _end_padding(self, zeros: int) -> None:
        self._check_padding(zeros, f"after the last stream ({self.stats.members})")

    def _check_padding(self, zeros: int, where: str) -> None:
        if zeros % 4:
            raise IntegrityError(
                f"xz data is corrupt: {zeros} zero bytes {where}; xz stream padding must be "
                "a multiple of 4 bytes",
                obj=self._obj,
                layer=Layer.DECOMPRESS,
            )
        self.stats.stream_padding_bytes += zeros


# bzip2 stays on libbz2 (bz2, in-process, releases the GIL), decoded block-
# parallel by the core/decompress/bzip2 package. indexed_bzip2 1.7 was measured as a parallel
# replacement (bench/RESULTS.md) and rejected: its
# ``read`` holds the GIL while it waits on its input fd (so it can only be fed
# from another process), fed from a pipe it keeps the whole compressed input
# in memory (RSS grew to 260 MB for a 232 MB stream), it used twice libbz2's
# CPU time on mysqldump text, and when parallel it ignores trailing garbage
# and does not compare the combined stream CRC.


def Bzip2Reader(
    upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
) -> DecompressReader:
    """The bzip2 reader: block-parallel on the CPUs free now, else sequential."""
    from . import bzip2  # its threads and block scanner only when a bzip2 stream is read

    workers = bzip2.default_workers()
    if workers < 2:
        return SequentialBzip2Reader(upstream, obj=obj, cancel=cancel)
    return bzip2.ParallelBzip2Reader(upstream, obj=obj, cancel=cancel, workers=workers)


class PassThrough:
    def __init__(
        self, upstream: Reader, fmt: str = "none", *, cancel: CancelToken | None = None
    ) -> None:
        self._up = upstream
        self._cancel = cancel or CancelToken()
        self.stats = DecompressStats(fmt, members=0)

    def read(self, n: int = -1, /) -> bytes:
        self._cancel.check()
        b = self._up.read(n)
        self.stats.input_bytes += len(b)
        return b
