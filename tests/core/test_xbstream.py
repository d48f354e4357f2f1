"""The one xbstream reader (core/payload/xbstream.py, issue 16): the payload
registry's entry reads with it, as the physical check does, and sparse (``S``)
chunks are read as formats.md §5.1 and XtraBackup's ``xbstream -x`` read them.

No packaged writer makes ``S`` chunks here (mbstream 10.11 neither writes nor reads
them: it stops at "wrong chunk magic"), so the streams are made from the spec by
tests/fixtures/xbcrypt.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from fixtures.xbcrypt import write_xbstream, xbstream_chunk, xbstream_sparse_chunk
from sealcheck.core.errors import (
    IncompleteDump,
    IntegrityError,
    SizeLimitExceeded,
    TruncatedBackup,
)
from sealcheck.core.formats import Fmt
from sealcheck.core.payload.info import Completeness, PayloadInfo
from sealcheck.core.payload.inspector import PayloadInspector
from sealcheck.core.payload.registry import CHECKS
from sealcheck.core.payload.xbstream import MAX_PAYLOAD, ZEROS, XbstreamCheck, XbstreamReader
from sealcheck.core.physical.check import PhysicalCheck
from sealcheck.core.physical.extract import FolderWriter
from sealcheck.core.plumbing.relpath import UnsafeMemberPath

META = {
    "backup-my.cnf": b"[mysqld]\n",
    "xtrabackup_info": b"tool_name = mariabackup\n",
    "xtrabackup_checkpoints": b"backup_type = full-backuped\n",
}


class Files:
    """A handler that keeps what the reader hands on, piece by piece."""

    def __init__(self) -> None:
        self.got: dict[str, bytearray] = {}
        self.pieces: list[int] = []
        self.ended: list[str] = []

    def data(self, path: str, data: bytes) -> None:
        self.got.setdefault(path, bytearray()).extend(data)
        self.pieces.append(len(data))

    def end(self, path: str) -> None:
        self.ended.append(path)


def read(stream: bytes, piece: int = 7) -> Files:
    h = Files()
    r = XbstreamReader(h, obj="t")
    for i in range(0, len(stream), piece):
        r.feed(stream[i : i + piece])
    r.finish()
    return h


def inspect(stream: bytes) -> PayloadInspector:
    insp = PayloadInspector(obj="t")
    for i in range(0, len(stream), 1000):
        insp.feed(stream[i : i + 1000])
    insp.finish()
    return insp


# --- one parser: the registry's entry is the physical reader ---------------------------


def test_the_registry_reads_xbstream_with_the_physical_reader() -> None:
    assert CHECKS[Fmt.XBSTREAM] is XbstreamCheck
    entry = CHECKS[Fmt.XBSTREAM](PayloadInfo(), obj="t")
    assert type(entry._xb) is XbstreamReader  # type: ignore[attr-defined]
    assert type(PhysicalCheck(key=None, obj="t", check_pages=False).reader) is XbstreamReader


def test_payload_check_lists_the_files_metadata_first() -> None:
    stream = write_xbstream({"ibdata1": b"\0" * 5000, "db/t.ibd": b"x" * 3000, **META})
    info = inspect(stream).info
    assert info.kind == "xbstream"
    assert info.completeness is Completeness.STRUCTURE_COMPLETE
    assert info.entries_total == 5
    assert set(info.entries[:3]) == set(META)
    assert info.entries[3:] == ["ibdata1", "db/t.ibd"]


def test_payload_check_refuses_what_the_physical_check_refuses() -> None:
    """A bad CRC, a gap, a hostile path, a cut stream and a missing checkpoints file:
    the same words from either road, because it is the same reader."""
    good = write_xbstream({"f": b"abcdef", **META})
    bad = bytearray(good)
    bad[40] ^= 1  # inside the first chunk's payload
    gap = xbstream_chunk("f", b"abc", 0) + xbstream_chunk("f", b"def", 10)
    hostile = xbstream_chunk("../evil", b"x") + xbstream_chunk("../evil", None)
    cases = [
        (bytes(bad), IntegrityError, "CRC-32 mismatch in a chunk of 'f'"),
        (gap, IntegrityError, "gap or an overlap"),
        (hostile, UnsafeMemberPath, "'../evil'"),
        (good[:-3], TruncatedBackup, "ends inside a chunk"),
    ]
    for stream, err, words in cases:
        with pytest.raises(err, match=words.replace("(", r"\(").replace(".", r"\.")):
            inspect(stream)
        with pytest.raises(err, match=words.replace("(", r"\(").replace(".", r"\.")):
            chk = PhysicalCheck(key=None, obj="t", check_pages=False)
            chk.feed(stream)
            chk.reader.finish()
    with pytest.raises(IncompleteDump, match="no xtrabackup_checkpoints"):
        inspect(write_xbstream({"ibdata1": b"\0" * 100}))


# --- sparse chunks ------------------------------------------------------------------


def test_sparse_chunk_holes_read_as_zeros_and_count_in_offsets() -> None:
    runs = [(5, b"abc"), (0, b"de"), (4096, b"page"), (3, b"")]
    size = 5 + 3 + 2 + 4096 + 4 + 3
    stream = (
        xbstream_chunk("db/t.ibd", b"head", 0)
        + xbstream_sparse_chunk("db/t.ibd", runs, 4)
        + xbstream_chunk("db/t.ibd", b"tail", 4 + size)  # the holes count in the offset
        + xbstream_chunk("db/t.ibd", None)
    )
    h = read(stream)
    want = b"head" + b"\0" * 5 + b"abcde" + b"\0" * 4096 + b"page" + b"\0" * 3 + b"tail"
    assert bytes(h.got["db/t.ibd"]) == want
    assert h.ended == ["db/t.ibd"]


def test_sparse_offset_without_the_holes_is_a_gap() -> None:
    """xbstream -x moves the file's offset by every skip and the payload: a next
    chunk placed after the payload alone overlaps the file."""
    stream = xbstream_sparse_chunk("f", [(100, b"ab")]) + xbstream_chunk("f", b"c", 2)
    with pytest.raises(IntegrityError, match="chunk at offset 2, but 102 bytes"):
        read(stream)


def test_big_holes_are_handed_on_in_bounded_pieces() -> None:
    hole = 3 * ZEROS + 17
    stream = xbstream_sparse_chunk("f", [(hole, b"x")]) + xbstream_chunk("f", None)
    h = read(stream, piece=1 << 16)
    assert len(h.got["f"]) == hole + 1 and h.got["f"][-1:] == b"x"
    assert max(h.pieces) <= ZEROS and h.got["f"].count(0) == hole


def _sparse_raw(path: bytes, smap: bytes, payload: bytes, count: int, crc: int | None) -> bytes:
    crc = zlib.crc32(smap + payload) if crc is None else crc
    head = b"XBSTCK01\0S" + struct.pack("<I", len(path)) + path + struct.pack("<I", count)
    return head + struct.pack("<QQI", len(payload), 0, crc) + smap + payload


@pytest.mark.parametrize(
    ("smap", "payload", "words"),
    [
        (struct.pack("<II", 0, 5), b"abc", "runs past the chunk's payload"),
        (struct.pack("<II", 1, 2), b"abcd", "does not cover the chunk's payload"),
        (struct.pack("<II", 0xFFFFFFFF, 0), b"", "holes add up to over 1 GiB"),
    ],
)
def test_a_sparse_map_that_does_not_fit_its_payload_is_damage(
    smap: bytes, payload: bytes, words: str
) -> None:
    with pytest.raises(IntegrityError, match=words):
        read(_sparse_raw(b"f", smap, payload, len(smap) // 8, None))
    assert MAX_PAYLOAD < 0xFFFFFFFF


def test_the_crc_covers_the_sparse_map() -> None:
    smap, payload = struct.pack("<II", 4, 3), b"abc"
    good = _sparse_raw(b"f", smap, payload, 1, None)
    bad = _sparse_raw(b"f", struct.pack("<II", 5, 3), payload, 1, zlib.crc32(smap + payload))
    read(good + xbstream_chunk("f", None))
    with pytest.raises(IntegrityError, match="CRC-32 mismatch"):
        read(bad)


def test_a_sparse_chunk_cut_short_is_truncation() -> None:
    stream = xbstream_sparse_chunk("f", [(8, b"abcdef")]) + xbstream_chunk("f", None)
    for cut in (20, len(stream) - 12, len(stream) - 20):
        with pytest.raises(TruncatedBackup):
            read(stream[:cut])


class Folder(Files):
    """The extractor's side: holes arrive as lengths (FolderWriter seeks past them)."""

    def __init__(self) -> None:
        super().__init__()
        self.holes: list[int] = []

    def hole(self, path: str, n: int) -> None:
        self.holes.append(n)
        self.data(path, bytes(n))


def test_sparse_members_through_the_physical_check() -> None:
    """The physical road hands the zeros to the member's layers like any payload."""
    got = Folder()
    chk = PhysicalCheck(key=None, obj="t", writer=got, check_pages=False)  # type: ignore[arg-type]
    chk.feed(xbstream_sparse_chunk("db/t.ibd", [(16, b"page")]) + xbstream_chunk("db/t.ibd", None))
    chk.reader.finish()
    assert bytes(got.got["db/t.ibd"]) == b"\0" * 16 + b"page"


def test_max_output_bounds_the_decoded_files_and_their_holes() -> None:
    """--max-output counts what the members decode to: 8 bytes of sparse map can
    claim a 4 GiB hole, far more than the stream's own bytes."""
    stream = xbstream_sparse_chunk("db/t.ibd", [(3 * ZEROS, b"x")]) + xbstream_chunk(
        "db/t.ibd", None
    )
    chk = PhysicalCheck(key=None, obj="t", check_pages=False, max_output=ZEROS)
    with pytest.raises(SizeLimitExceeded, match=r"exceed the limit of 1048576 bytes.*'db/t.ibd'"):
        chk.feed(stream)
    ok = PhysicalCheck(key=None, obj="t", check_pages=False, max_output=3 * ZEROS + 1)
    ok.feed(stream)
    ok.reader.finish()
    assert ok.decoded == 3 * ZEROS + 1


def test_holes_at_the_start_and_the_end_stay_holes(tmp_path: Path) -> None:
    """A member that opens with a hole is decided on its first 8 zero bytes (written),
    the rest of that hole and one at the end are seeks: the file reads back whole and
    takes a few blocks, not 3 MiB."""
    out = tmp_path / "out"
    w = FolderWriter(out)
    chk = PhysicalCheck(key=None, obj="t", writer=w, check_pages=False)
    runs = [(1 << 20, b"page" * 1024), (2 << 20, b"")]
    chk.feed(xbstream_sparse_chunk("db/t.ibd", runs) + xbstream_chunk("db/t.ibd", None))
    chk.reader.finish()
    w.commit()
    f = out / "db" / "t.ibd"
    assert f.read_bytes() == bytes(1 << 20) + b"page" * 1024 + bytes(2 << 20)
    assert w.holes == (1 << 20) - 8 + (2 << 20) and w.bytes == 8 + 4096
    assert f.stat().st_blocks * 512 <= 64 * 1024
