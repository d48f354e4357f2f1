"""xbstream reader (``XBSTCK01``, formats.md §5.1): every chunk's CRC-32, every
file's chunks contiguous and closed by its end chunk, and every path inside the
target folder (issue 16).

A push reader: ``feed`` any pieces of the stream; it calls the handler's
``data(path, bytes)`` for each file's payload in file order and ``end(path)``
when the file's end chunk arrives. Chunks of several files interleave (parallel
copy threads), each file's own chunks come in order of their offsets; a chunk
that leaves a gap or overlaps is damage.

A path is refused with its name before anything of it is handed on when it is
absolute, empty, goes up (``..``) or contains a backslash or NUL. xbstream has
no link entries, so a link can only come from the extraction folder itself:
the extractor opens every component with O_NOFOLLOW (physical/extract.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

from ..decompress.qpress import safe_relpath
from ..errors import IntegrityError, Layer, TruncatedBackup

MAGIC = b"XBSTCK01"
FN_REFLEN = 512  # xbstream's own bound on a path
# Writers use chunks of up to 10 MiB; a larger length field is damage.
MAX_PAYLOAD = 1 << 30


class FileHandler(Protocol):
    def data(self, path: str, data: bytes) -> None: ...

    def end(self, path: str) -> None: ...


@dataclass
class _File:
    size: int = 0  # the next offset expected
    chunks: int = 0
    ended: bool = False


class XbstreamReader:
    def __init__(self, handler: FileHandler, *, obj: str | None = None) -> None:
        self._h = handler
        self._obj = obj
        self._buf = bytearray()
        self._at = 0  # stream offset of _buf[0]
        self.files: dict[str, _File] = {}
        self.chunks = 0
        self.bytes = 0

    def _fail(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"xbstream, chunk {self.chunks + 1} at byte {self._at}: {why}",
            obj=self._obj,
            layer=Layer.PAYLOAD,
        )

    def feed(self, data: bytes | memoryview) -> None:
        self._buf += data
        self.bytes += len(data)
        while self._chunk():
            pass

    def _chunk(self) -> bool:
        b = self._buf
        if len(b) < 14:
            return False
        if b[:8] != MAGIC:
            raise self._fail("no XBSTCK01 magic where a chunk starts (damaged or not xbstream)")
        flags, ctype = b[8], chr(b[9])
        (plen,) = struct.unpack_from("<I", b, 10)
        if plen >= FN_REFLEN:
            raise self._fail(f"path length {plen} is out of range")
        if len(b) < 14 + plen:
            return False
        raw = bytes(b[14 : 14 + plen])
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"path {raw!r} is not UTF-8") from None
        safe_relpath(path, where="xbstream entry", obj=self._obj)
        f = self.files.get(path)
        if ctype == "E":
            if f is None:
                f = self.files[path] = _File()
            elif f.ended:
                raise self._fail(f"{path!r} is ended twice")
            self._eat(14 + plen)
            f.ended = True
            self._h.end(path)
            return True
        if ctype not in ("P", "S"):
            if flags & 1:
                raise self._fail(
                    f"chunk type {ctype!r} (ignorable) has no length, so it cannot be skipped"
                )
            raise self._fail(f"unknown chunk type {ctype!r}")
        pos = 14 + plen
        count = 0
        if ctype == "S":
            if len(b) < pos + 4:
                return False
            (count,) = struct.unpack_from("<I", b, pos)
            pos += 4
        if len(b) < pos + 20:
            return False
        length, offset, crc = struct.unpack_from("<QQI", b, pos)
        pos += 20
        if length > MAX_PAYLOAD or count > MAX_PAYLOAD // 8:
            raise self._fail(f"chunk length {length} of {path!r} is out of range")
        end = pos + count * 8 + length
        if len(b) < end:
            return False
        body = memoryview(b)[pos:end]
        ok = zlib.crc32(body) == crc
        if not ok:
            body.release()
            raise self._fail(f"CRC-32 mismatch in a chunk of {path!r} (offset {offset})")
        if f is None:
            f = self.files[path] = _File()
        if f.ended:
            body.release()
            raise self._fail(f"{path!r} has data after its end chunk")
        if offset != f.size:
            body.release()
            raise self._fail(
                f"{path!r}: chunk at offset {offset}, but {f.size} bytes of the file came "
                "before it (a gap or an overlap)"
            )
        if ctype == "P":
            data = bytes(body)
        else:
            data = self._sparse(body[: count * 8], body[count * 8 :], path)
        body.release()
        f.size += len(data)
        f.chunks += 1
        self._eat(end)
        self._h.data(path, data)
        return True

    def _sparse(self, smap: memoryview, payload: memoryview, path: str) -> bytes:
        """Sparse chunk: (skip, len) pairs; the skipped bytes are zeros in the file."""
        parts: list[bytes] = []
        used = 0
        for skip, n in struct.iter_unpack("<II", smap):
            parts.append(bytes(skip))
            parts.append(bytes(payload[used : used + n]))
            used += n
        if used != len(payload):
            raise self._fail(f"{path!r}: sparse map does not cover the chunk's payload")
        return b"".join(parts)

    def _eat(self, n: int) -> None:
        del self._buf[:n]
        self._at += n
        self.chunks += 1

    def finish(self) -> None:
        if self._buf:
            raise TruncatedBackup(
                f"the xbstream ends inside a chunk ({len(self._buf)} bytes of it, at byte "
                f"{self._at})",
                obj=self._obj,
                layer=Layer.PAYLOAD,
            )
        open_files = [p for p, f in self.files.items() if not f.ended]
        if open_files:
            more = f" and {len(open_files) - 1} more" if len(open_files) > 1 else ""
            raise TruncatedBackup(
                f"the xbstream ends before the end chunk of {open_files[0]!r}{more}: "
                "the stream was cut short",
                obj=self._obj,
                layer=Layer.PAYLOAD,
            )
