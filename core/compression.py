"""Streaming decompressors with strict end-of-stream checks.

Incremental decompressors stop silently at the end of the first member and
say nothing when the input just stops (formats.md §10, reliability.md §1.8:
``zlib.decompressobj`` returns without error on a truncated stream). Each
reader here therefore (1) continues across concatenated members/streams,
which pigz/pbzip2/pzstd produce, counting them; (2) rejects bytes after the
last member that are not another member; (3) fails when the input ends before
the end-of-stream marker. Output per call is capped so that a decompression
bomb cannot grow memory.
"""

from __future__ import annotations

import bz2
import lzma
from dataclasses import dataclass, field
from typing import Any, Protocol

import zstandard
from isal import isal_zlib

from .errors import IntegrityError, Layer, TruncatedBackup, UnsupportedFormat
from .formats import Fmt, sniff
from .streams import CHUNK, Reader


@dataclass
class DecompressStats:
    fmt: str
    members: int = 0
    input_bytes: int = 0
    trailing_zero_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class DecompressReader(Protocol):
    stats: DecompressStats

    def read(self, n: int = -1, /) -> bytes: ...


class _Obj(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _MemberReader:
    """Common loop for gzip (ISA-L), bzip2 and xz decompressor objects."""

    fmt: Fmt
    magic: bytes

    def __init__(self, upstream: Reader, *, obj: str | None = None) -> None:
        self._up = upstream
        self._obj = obj
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
        while len(rest) < len(self.magic) and self._fill():
            rest += self._pending
            self._pending = b""
        if not rest:
            return False
        if rest.startswith(self.magic):
            self._d = self._new()
            self.stats.members += 1
            self._pending = rest
            return True
        # gzip(1) tolerates zero padding after the last member (tape blocking);
        # anything else after it is not part of the compressed stream.
        while not rest.strip(b"\0"):
            self.stats.trailing_zero_bytes += len(rest)
            if not self._fill():
                self.stats.notes.append(
                    f"{self.stats.trailing_zero_bytes} zero bytes after the last member (ignored)"
                )
                return False
            rest, self._pending = self._pending, b""
        raise IntegrityError(
            f"unexpected data after the end of the {self.fmt.value} stream "
            f"(member {self.stats.members})",
            obj=self._obj,
            layer=Layer.DECOMPRESS,
        )

    def read(self, n: int = -1, /) -> bytes:
        limit = n if n > 0 else CHUNK
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
            except (OSError, EOFError, ValueError, isal_zlib.error, lzma.LZMAError) as exc:
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


class GzipReader(_MemberReader):
    fmt = Fmt.GZIP
    magic = b"\x1f\x8b"

    def _new(self) -> Any:
        # ISA-L inflate is ~3x zlib's and releases the GIL; wbits=31 checks
        # the gzip header, CRC-32 and ISIZE of every member.
        return isal_zlib.decompressobj(31)

    def _needs_no_input(self) -> bool:
        return bool(getattr(self._d, "unconsumed_tail", b""))


class Bzip2Reader(_MemberReader):
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


class _CountingReader:
    def __init__(self, up: Reader, stats: DecompressStats) -> None:
        self._up = up
        self._stats = stats

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self._stats.input_bytes += len(b)
        return b


class ZstdReader:
    """zstd frames (and pzstd's skippable frames), read across frames."""

    def __init__(self, upstream: Reader, *, obj: str | None = None) -> None:
        self.stats = DecompressStats(Fmt.ZSTD.value, members=1)
        self._obj = obj
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        self._r = dctx.stream_reader(
            _CountingReader(upstream, self.stats), read_size=CHUNK, read_across_frames=True
        )

    def read(self, n: int = -1, /) -> bytes:
        try:
            out = self._r.read(n if n > 0 else CHUNK)
        except zstandard.ZstdError as exc:
            msg = str(exc)
            if "incomplete" in msg or "truncat" in msg or "premature" in msg:
                raise TruncatedBackup(
                    f"the zstd stream ends mid-frame ({msg})", obj=self._obj, layer=Layer.DECOMPRESS
                ) from None
            raise IntegrityError(
                f"zstd data is corrupt ({msg})", obj=self._obj, layer=Layer.DECOMPRESS
            ) from None
        return bytes(out)


class PassThrough:
    def __init__(self, upstream: Reader, fmt: str = "none") -> None:
        self._up = upstream
        self.stats = DecompressStats(fmt, members=0)

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self.stats.input_bytes += len(b)
        return b


def open_decompressor(head: bytes, upstream: Reader, *, obj: str | None = None) -> DecompressReader:
    """Pick the decompressor for a stream whose first bytes are ``head``.

    ``upstream`` must still deliver ``head`` itself (use ChainReader).
    """
    fmt = sniff(head)
    if fmt is Fmt.GZIP:
        return GzipReader(upstream, obj=obj)
    if fmt is Fmt.BZIP2:
        return Bzip2Reader(upstream, obj=obj)
    if fmt is Fmt.XZ:
        return XzReader(upstream, obj=obj)
    if fmt is Fmt.ZSTD:
        return ZstdReader(upstream, obj=obj)
    if fmt in (Fmt.LZ4, Fmt.QPRESS):
        raise UnsupportedFormat(f"{fmt.value} compression is not supported yet", obj=obj)
    return PassThrough(upstream)
