"""qpress archives (``qpress10``): XtraBackup ``--compress`` before 8.0.34 and
mariabackup ``--compress`` (formats.md §5.3, issue 16).

::

    ARCHIVE = "qpress10" u64 chunk_size { "D" u32 n name "\\0" | "U" | FILE }*
    FILE    = "F" u32 n name "\\0" { "NEWBNEWB" u64 recovery u32 adler32 BLOCK }*
              "ENDSENDS" u64 recovery

Every block carries the Adler-32 of its compressed bytes (header included),
and a file is whole only once its ``ENDSENDS`` is read; an archive that stops
inside a file is truncated. Names are relative, with "D"/"U" entering and
leaving folders; a name that leaves the archive's folder (``..``, absolute) is
refused with its name before anything is written.

A push decoder (``feed`` → pieces of (file, bytes)) so that it runs inside the
xbstream reader per member; :class:`QpressReader` reads a one-file archive as a
stream (ApsaraDB's ``*_xb.qp``: qpress around the whole xbstream).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import IntegrityError, Layer, TruncatedBackup, UnsupportedFormat
from ..plumbing.progress import CancelToken
from ..plumbing.relpath import safe_relpath
from ..plumbing.streams import CHUNK, Reader
from .base import DecompressStats
from .quicklz import QuickLZError, block_sizes, decompress_block

MAGIC = b"qpress10"
_NEWB = b"NEWBNEWB"
_ENDS = b"ENDSENDS"
# Blocks are at most the archive's chunk size (64 KiB by default) plus a header;
# a larger size field is damage, not something to buffer.
MAX_BLOCK = 1 << 26


@dataclass
class QpressFile:
    name: str
    blocks: int = 0
    bytes: int = 0
    complete: bool = False


class QpressDecoder:
    """Decodes one qpress archive fed in pieces; yields (file name, data) pieces."""

    def __init__(self, *, name: str, obj: str | None = None) -> None:
        self._name = name
        self._obj = obj
        self._buf = bytearray()
        self._at = 0
        self._state = "magic"
        self._dirs: list[str] = []
        self.files: list[QpressFile] = []
        self.input_bytes = 0

    def _fail(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"qpress {self._name}, byte {self._at}: {why}", obj=self._obj, layer=Layer.DECOMPRESS
        )

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._at += n
        return out

    def feed(self, data: bytes | memoryview) -> list[tuple[str, bytes]]:
        self._buf += data
        self.input_bytes += len(data)
        out: list[tuple[str, bytes]] = []
        while self._step(out):
            pass
        return out

    def _name_record(self) -> str | None:
        """u32 n, name, NUL (after the record letter, which is still in the buffer)."""
        if len(self._buf) < 5:
            return None
        (n,) = struct.unpack_from("<I", self._buf, 1)
        if n > 4096:
            raise self._fail(f"name length {n} is out of range")
        if len(self._buf) < 6 + n:
            return None
        if self._buf[5 + n] != 0:
            raise self._fail("a name is not followed by its NUL")
        rec = self._take(6 + n)
        return rec[5 : 5 + n].decode("utf-8", errors="replace")

    def _step(self, out: list[tuple[str, bytes]]) -> bool:
        b = self._buf
        if self._state == "magic":
            if len(b) < 16:
                return False
            if b[:8] != MAGIC:
                raise self._fail("no qpress10 magic")
            self._take(16)
            self._state = "record"
            return True
        if self._state == "record":
            if not b:
                return False
            kind = bytes(b[0:1])
            if kind == b"U":
                if not self._dirs:
                    raise self._fail("leaves a folder it never entered")
                self._take(1)
                self._dirs.pop()
                return True
            if kind not in (b"D", b"F"):
                raise self._fail(f"unknown record {bytes(kind)!r}")
            name = self._name_record()
            if name is None:
                return False
            path = "/".join([*self._dirs, name])
            safe_relpath(path, where=f"qpress {self._name}", obj=self._obj)
            if kind == b"D":
                self._dirs.append(name)
                return True
            self.files.append(QpressFile(path))
            out.append((path, b""))
            self._state = "block"
            return True
        # inside a file: a block or the file's end
        if len(b) < 16:
            return False
        tag = bytes(b[:8])
        cur = self.files[-1]
        if tag == _ENDS:
            self._take(16)
            cur.complete = True
            self._state = "record"
            return True
        if tag != _NEWB:
            raise self._fail(f"in {cur.name!r}: neither a block (NEWBNEWB) nor the file's end")
        if len(b) < 20 + 9:
            return False
        (adler,) = struct.unpack_from("<I", b, 16)
        try:
            _hdr, csize, dsize = block_sizes(b[20:29])
        except QuickLZError as exc:
            raise self._fail(f"in {cur.name!r}, block {cur.blocks + 1}: {exc}") from None
        if csize > MAX_BLOCK or dsize > MAX_BLOCK:
            raise self._fail(f"in {cur.name!r}: block size {csize}/{dsize} is out of range")
        if len(b) < 20 + csize:
            return False
        self._take(20)
        block = self._take(csize)
        where = f"in {cur.name!r}, block {cur.blocks + 1}"
        if zlib.adler32(block) != adler:
            self._at -= csize
            raise self._fail(f"{where}: Adler-32 of the compressed block does not match")
        try:
            data = decompress_block(block)
        except QuickLZError as exc:
            raise self._fail(f"{where}: {exc}") from None
        cur.blocks += 1
        cur.bytes += len(data)
        out.append((cur.name, data))
        return True

    def finish(self) -> None:
        if self._state == "magic":
            raise TruncatedBackup(
                f"qpress {self._name}: shorter than its header", obj=self._obj,
                layer=Layer.DECOMPRESS,
            )  # fmt: skip
        if self._state == "block" or self._buf:
            inside = f" inside {self.files[-1].name!r}" if self.files else ""
            raise TruncatedBackup(
                f"qpress {self._name}: the archive ends{inside} before its end marker "
                f"(ENDSENDS); {len(self._buf)} bytes of an unfinished record",
                obj=self._obj,
                layer=Layer.DECOMPRESS,
            )
        if self._dirs:
            raise TruncatedBackup(
                f"qpress {self._name}: the archive ends inside folder {'/'.join(self._dirs)!r}",
                obj=self._obj,
                layer=Layer.DECOMPRESS,
            )


class QpressReader:
    """A qpress archive of one file read as a stream (``qpress -do X_xb.qp``)."""

    def __init__(
        self, upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
    ) -> None:
        self._up = upstream
        self._obj = obj
        self._cancel = cancel or CancelToken()
        self._dec = QpressDecoder(name="stream", obj=obj)
        self._out = b""
        self._eof = False
        self.stats = DecompressStats("qpress")

    def read(self, n: int = -1, /) -> bytes:
        while not self._out and not self._eof:
            self._cancel.check()
            data = self._up.read(CHUNK)
            self.stats.input_bytes += len(data)
            if not data:
                self._eof = True
                self._dec.finish()
                self.stats.members = len(self._dec.files)
                break
            pieces = self._dec.feed(data)
            if len(self._dec.files) > 1:
                raise UnsupportedFormat(
                    f"the qpress archive holds several files ({self._dec.files[0].name!r}, "
                    f"{self._dec.files[1].name!r}, …): read it as a stream of one file is "
                    "not possible; restore it with --extract",
                    obj=self._obj,
                    layer=Layer.DECOMPRESS,
                )
            self._out = b"".join(d for _, d in pieces)
        if n < 0 or n >= len(self._out):
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:n], self._out[n:]
        return out
