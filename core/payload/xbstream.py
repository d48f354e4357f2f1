"""The xbstream payload (mariabackup/xtrabackup --stream=xbstream): every chunk
header parsed and every chunk's CRC-32 checked (formats.md §5.1), and the copy
judged complete by the checkpoints file the tools write last."""

from __future__ import annotations

import struct

from isal import isal_zlib

from ..errors import IncompleteDump, IntegrityError, Layer, TruncatedBackup
from .info import MAX_LISTED_ENTRIES, Completeness, PayloadInfo

# Written by mariabackup/xtrabackup after the data files, once the copy is done.
XB_CHECKPOINTS = ("xtrabackup_checkpoints", "mariadb_backup_checkpoints")
XB_METADATA = (*XB_CHECKPOINTS, "backup-my.cnf", "xtrabackup_info", "mariadb_backup_info")


class XbstreamCheck:
    """The payload check for an xbstream: a StructureCheck (payload/registry.py)."""

    def __init__(self, info: PayloadInfo, *, obj: str | None = None) -> None:
        info.kind = "xbstream"
        info.producer = "xtrabackup/mariabackup (xbstream)"
        self._info = info
        self._obj = obj
        self._xb = XbstreamParser(obj=obj)

    def feed(self, data: bytes) -> None:
        self._xb.feed(data)

    def finish(self, total: int) -> None:
        info = self._info
        self._xb.finish()
        names = self._xb.names
        # The metadata files come last in the stream; list them first.
        meta = [n for n in names if n.rsplit("/", 1)[-1] in XB_METADATA]
        info.entries = (meta + [n for n in names if n not in meta])[:MAX_LISTED_ENTRIES]
        info.entries_total = len(names)
        if not any(n in XB_CHECKPOINTS for n in names):
            info.completeness = Completeness.INCOMPLETE
            raise IncompleteDump(
                "the physical backup stream has no xtrabackup_checkpoints file, which "
                "mariabackup/xtrabackup write when the copy finishes: the backup stopped "
                f"early ({len(names)} files, {total} bytes)",
                obj=self._obj,
            )
        info.completeness = Completeness.STRUCTURE_COMPLETE


class XbstreamParser:
    """Incremental parser of xbstream/mbstream chunks (formats.md §5.1)."""

    def __init__(self, *, obj: str | None = None) -> None:
        self._buf = bytearray()
        self._obj = obj
        self._need_payload = 0
        self._crc = 0
        self._want_crc = 0
        self._path = ""
        self.names: list[str] = []
        self._seen: set[str] = set()
        self.chunks = 0

    def _fail(self, why: str) -> IntegrityError:
        return IntegrityError(f"xbstream: {why}", obj=self._obj, layer=Layer.PAYLOAD)

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            if self._need_payload:
                if not view:
                    return
                take = min(self._need_payload, len(view))
                self._crc = isal_zlib.crc32(view[:take], self._crc)
                self._need_payload -= take
                view = view[take:]
                if not self._need_payload and self._crc != self._want_crc:
                    raise self._fail(f"CRC-32 mismatch in a chunk of {self._path}")
                continue
            if view:
                self._buf += view
                view = memoryview(b"")
            if not self._parse_header():
                return
            if self._need_payload and self._buf:
                view = memoryview(bytes(self._buf))
                self._buf.clear()

    def _parse_header(self) -> bool:
        b = self._buf
        if len(b) < 14:
            return False
        if b[:8] != b"XBSTCK01":
            raise self._fail("bad chunk magic (not an xbstream, or damaged)")
        ctype = chr(b[9])
        (plen,) = struct.unpack_from("<I", b, 10)
        if plen >= 512:
            raise self._fail(f"path length {plen} is out of range")
        if len(b) < 14 + plen:
            return False
        path = bytes(b[14 : 14 + plen]).decode(errors="replace")
        if ctype == "E":
            del b[: 14 + plen]
            self.chunks += 1
            self._record(path)  # an empty file has only its end chunk
            return True
        if ctype not in ("P", "S"):
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
        payload_len, _offset, crc = struct.unpack_from("<QQI", b, pos)
        pos += 20
        if payload_len > 1 << 34:
            raise self._fail(f"chunk length {payload_len} is out of range")
        self._path = path
        self._record(path)
        self.chunks += 1
        self._want_crc = crc
        self._crc = 0
        # Sparse maps are covered by the chunk CRC too.
        self._need_payload = count * 8 + payload_len
        del b[:pos]
        return True

    def _record(self, path: str) -> None:
        if path not in self._seen:
            self._seen.add(path)
            self.names.append(path)

    def finish(self) -> None:
        if self._need_payload or self._buf:
            raise TruncatedBackup(
                "the xbstream ends in the middle of a chunk", obj=self._obj, layer=Layer.PAYLOAD
            )
