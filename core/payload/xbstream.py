"""xbstream (``XBSTCK01``, formats.md §5.1): the one chunk reader, used by the
payload check (the registry's entry) and by the physical-backup check
(physical/check.py), which decodes the members it hands on (issue 16).

Every chunk's CRC-32, every file's chunks contiguous and closed by its end chunk,
and every path inside the target folder. A push reader: ``feed`` any pieces of
the stream; it calls the handler's ``data(path, bytes)`` for each file's payload
in file order and ``end(path)`` when the file's end chunk arrives. Chunks of
several files interleave (parallel copy threads), each file's own chunks come in
order of their offsets; a chunk that leaves a gap or overlaps is damage.

Sparse chunks (``S``, XtraBackup 8.0 for page-compressed tables): a map of
(skip, len) pairs; the skipped bytes are holes, read as zeros, and count towards
the next chunk's offset as in ``xbstream -x``. A handler that has ``hole(path, n)``
is handed each hole as its length (the extractor seeks past it, as ``xbstream -x``
does); any other is handed the zeros, in pieces of at most ``ZEROS`` bytes, never
built whole. The holes of one chunk add up to at most ``MAX_PAYLOAD`` (a map could
otherwise claim 4 GiB per entry).

A path is refused with its name before anything of it is handed on when it is
absolute, empty, goes up (``..``) or contains a backslash or NUL. xbstream has
no link entries, so a link can only come from the extraction folder itself:
the extractor opens every component with O_NOFOLLOW (physical/extract.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from isal import isal_zlib

from ..errors import IncompleteDump, IntegrityError, Layer, TruncatedBackup
from ..plumbing.relpath import safe_relpath
from .info import MAX_LISTED_ENTRIES, Completeness, PayloadInfo

MAGIC = b"XBSTCK01"
FN_REFLEN = 512  # xbstream's own bound on a path
# Writers use chunks of up to 10 MiB; a larger length field is damage.
MAX_PAYLOAD = 1 << 30
ZEROS = 1 << 20
_ZERO_PIECE = bytes(ZEROS)

# Written by mariabackup/xtrabackup after the data files, once the copy is done
# (``mariadb_backup_*`` from MariaDB 10.8 on, where renamed).
CHECKPOINTS = ("xtrabackup_checkpoints", "mariadb_backup_checkpoints")
INFO = ("xtrabackup_info", "mariadb_backup_info")
MY_CNF = "backup-my.cnf"
META = (*CHECKPOINTS, *INFO, MY_CNF)


class FileHandler(Protocol):
    def data(self, path: str, data: bytes) -> None: ...

    def end(self, path: str) -> None: ...


def zeros(n: int) -> Iterator[bytes]:
    """A hole's zero bytes, a bounded piece at a time."""
    while n:
        k = min(n, ZEROS)
        n -= k
        yield _ZERO_PIECE if k == ZEROS else bytes(k)


@dataclass
class _File:
    size: int = 0  # the next offset expected
    chunks: int = 0
    ended: bool = False


class XbstreamReader:
    def __init__(self, handler: FileHandler, *, obj: str | None = None) -> None:
        self._h = handler
        # Optional: ``hole(path, n)`` takes a hole as its length (see the module).
        self._hole: Callable[[str, int], None] | None = getattr(handler, "hole", None)
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
        try:  # the view is released before the buffer moves on, or an error leaves
            pieces = self._check(body, count, path, f, offset, crc)
        finally:
            body.release()
        f = self.files[path]
        self._eat(end)
        f.chunks += 1
        for piece in pieces:
            self._hand_on(f, path, piece)
        return True

    def _check(
        self, body: memoryview, count: int, path: str, f: _File | None, offset: int, crc: int
    ) -> list[bytes | int]:
        if isal_zlib.crc32(body) != crc:  # ISA-L: several times zlib's speed
            raise self._fail(f"CRC-32 mismatch in a chunk of {path!r} (offset {offset})")
        if f is None:
            f = self.files[path] = _File()
        if f.ended:
            raise self._fail(f"{path!r} has data after its end chunk")
        if offset != f.size:
            raise self._fail(
                f"{path!r}: chunk at offset {offset}, but {f.size} bytes of the file came "
                "before it (a gap or an overlap)"
            )
        if not count:
            return [bytes(body)]
        return self._sparse(body[: count * 8], body[count * 8 :], path)

    def _sparse(self, smap: memoryview, payload: memoryview, path: str) -> list[bytes | int]:
        """The (skip, len) map as pieces: an int is a hole of that many zero bytes."""
        out: list[bytes | int] = []
        used = holes = 0
        for skip, n in struct.iter_unpack("<II", smap):
            if used + n > len(payload):
                raise self._fail(f"{path!r}: the sparse map runs past the chunk's payload")
            holes += skip
            if holes > MAX_PAYLOAD:
                raise self._fail(f"{path!r}: the sparse map's holes add up to over 1 GiB")
            if skip:
                out.append(skip)
            out.append(bytes(payload[used : used + n]))
            used += n
        if used != len(payload):
            raise self._fail(f"{path!r}: the sparse map does not cover the chunk's payload")
        return out

    def _hand_on(self, f: _File, path: str, piece: bytes | int) -> None:
        if isinstance(piece, bytes):
            f.size += len(piece)
            self._h.data(path, piece)
            return
        f.size += piece
        if self._hole is not None:
            self._hole(path, piece)
            return
        for zero in zeros(piece):
            self._h.data(path, zero)

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


class _Skip:
    """The payload check reads the chunks, not the members: nothing is kept."""

    def data(self, path: str, data: bytes) -> None:
        pass

    def end(self, path: str) -> None:
        pass


class XbstreamCheck:
    """The payload check for an xbstream: a StructureCheck (payload/registry.py)."""

    def __init__(self, info: PayloadInfo, *, obj: str | None = None) -> None:
        info.kind = "xbstream"
        info.producer = "xtrabackup/mariabackup (xbstream)"
        self._info = info
        self._obj = obj
        self._xb = XbstreamReader(_Skip(), obj=obj)

    def feed(self, data: bytes) -> None:
        self._xb.feed(data)

    def finish(self, total: int) -> None:
        info = self._info
        self._xb.finish()
        names = list(self._xb.files)
        # The metadata files come last in the stream; list them first.
        meta = [n for n in names if n.rsplit("/", 1)[-1] in META]
        info.entries = (meta + [n for n in names if n not in meta])[:MAX_LISTED_ENTRIES]
        info.entries_total = len(names)
        if not any(n in CHECKPOINTS for n in names):
            info.completeness = Completeness.INCOMPLETE
            raise IncompleteDump(
                "the physical backup stream has no xtrabackup_checkpoints file, which "
                "mariabackup/xtrabackup write when the copy finishes: the backup stopped "
                f"early ({len(names)} files, {total} bytes)",
                obj=self._obj,
            )
        info.completeness = Completeness.STRUCTURE_COMPLETE
