"""One bzip2 block, cut out of its stream, rebuilt as a standalone stream and decoded.

Why a block can be decoded on its own: each starts with the bit-aligned 48-bit
magic 0x314159265359 and carries the CRC of its own output, so libbz2 checks it
fully inside a one-block stream made of a stream header, the block's bits and an
end-of-stream marker whose combined CRC is the block's. This module knows
nothing of threads or of where blocks come from (see scanner.py and pool.py).
"""

from __future__ import annotations

import bz2
import functools
import queue
from collections.abc import Callable
from dataclasses import dataclass, field

from ...plumbing.progress import CancelToken
from ...plumbing.streams import CHUNK

BLOCK_MAGIC = 0x314159265359
EOS_MAGIC = 0x177245385090
MASK48 = (1 << 48) - 1
MASK32 = 0xFFFFFFFF


def rotl(crc: int) -> int:
    """One step of the combined stream CRC: rotate left by one bit (bzip2's rule)."""
    return ((crc << 1) | (crc >> 31)) & MASK32


def _single_block(plain: bytes) -> tuple[int, int, int]:
    """(bits, bit length, CRC) of the only block of ``bz2.compress(plain)``."""
    s = bz2.compress(plain, 1)
    total = len(s) * 8
    v = int.from_bytes(s, "big")
    for pad in range(8):
        eos = total - pad - 80
        if (v >> (total - eos - 48)) & MASK48 == EOS_MAGIC:
            nbits = eos - 32
            bits = (v >> (total - eos)) & ((1 << nbits) - 1)
            return bits, nbits, (bits >> (nbits - 80)) & MASK32
    raise AssertionError("bz2.compress made a stream without an end-of-stream marker")


@functools.cache
def _dummies() -> dict[int, tuple[int, int, int, int]]:
    """For each bit length residue 1..7: a tiny block (bits, nbits, crc, output size).

    A block that starts s bits into a byte can be copied byte for byte (no bit
    shifting of the whole block) if the rebuilt stream puts something of
    length = s (mod 8) bits between the 32-bit header and it: a tiny valid
    block, whose output is dropped and whose CRC enters the combined CRC.
    """
    found: dict[int, tuple[int, int, int, int]] = {}
    i = 0
    while len(found) < 7:
        i += 1
        plain = str(i * 7919).encode() * (1 + i % 3)
        bits, nbits, crc = _single_block(plain)
        if nbits % 8:
            found.setdefault(nbits % 8, (bits, nbits, crc, len(plain)))
    return found


@dataclass(frozen=True)
class _Prefix:
    head: bytes  # whole bytes before the block's first byte
    part: int  # the prefix's last ``shift`` bits, merged into that byte
    drop: int  # output bytes of the dummy block, to discard
    crc: int | None  # the dummy block's CRC (None: no dummy)


@functools.cache
def _prefix(level: int, shift: int) -> _Prefix:
    header = int.from_bytes(b"BZh" + bytes([0x30 + level]), "big")
    if shift == 0:
        return _Prefix(header.to_bytes(4, "big"), 0, 0, None)
    bits, nbits, crc, out_len = _dummies()[shift]
    v = (header << nbits) | bits
    whole = (32 + nbits - shift) // 8
    return _Prefix((v >> shift).to_bytes(whole, "big"), v & ((1 << shift) - 1), out_len, crc)


@dataclass
class BlockJob:
    """One block: its bytes (first byte partly the previous block's) and checks."""

    data: bytearray
    start: int  # absolute bit position of the block magic
    nbits: int
    crc: int  # from the block header
    level: int
    stream: int  # 1-based stream (member) number, for messages
    check: int  # see decode: bytes of ``data`` in which no block may end (0: none)
    # Cancelled with the reader (the job's cancel, or the reader closed), or alone
    # when the block was cut wrongly and its output is no longer wanted.
    stop: CancelToken
    out: queue.Queue[object] = field(default_factory=lambda: queue.Queue(maxsize=2))

    @property
    def shift(self) -> int:
        return self.start % 8


def rebuild(job: BlockJob) -> tuple[bytes, int, int]:
    """The job's block as a stream: (stream, output bytes to drop, offset).

    ``offset`` is the index of ``job.data[0]`` in the stream: the block's
    bytes are copied as they are, after a prefix that ends at the same bit
    offset as the block starts in its first byte.
    """
    pre = _prefix(job.level, job.shift)
    data = job.data
    first = (pre.part << (8 - job.shift)) | (data[0] & (0xFF >> job.shift))
    end = job.shift + job.nbits
    r = end % 8
    last = data[end // 8] >> (8 - r) if r else 0
    combined = job.crc if pre.crc is None else rotl(pre.crc) ^ job.crc
    tail = (last << 80) | (EOS_MAGIC << 32) | combined
    pad = -(r + 80) % 8
    with memoryview(data) as mv:
        stream = b"".join(
            (
                pre.head,
                bytes((first,)),
                mv[1 : end // 8],
                (tail << pad).to_bytes((r + 80 + pad) // 8, "big"),
            )
        )
    return stream, pre.drop, len(pre.head)


def decode(job: BlockJob, sink: Callable[[bytes], bool]) -> str | None:
    """Decode the job's rebuilt stream into ``sink``; the failure, or None.

    With ``job.check``, the first ``check`` bytes of the block go in first: the
    boundary search skipped them (see scanner.Splitter._search_from), so a block
    ending in them would have been missed, and libbz2 emits output as soon as
    it has a block's last bit. Output beyond the dummy's at that point means a
    missed boundary (another block or an end-of-stream marker follows).
    ``sink`` returns False to stop (cancelled).
    """
    stream, drop, offset = rebuild(job)
    d = bz2.BZ2Decompressor()
    with memoryview(stream) as mv:
        rest = mv
        try:
            if job.check:
                cut = offset + job.check
                early = d.decompress(mv[:cut], drop + 1)
                if len(early) > drop:
                    return "a boundary was missed"
                drop -= len(early)
                rest = mv[cut:]
            while True:
                out = d.decompress(rest, CHUNK)
                rest = mv[:0]
                if drop:
                    n = min(drop, len(out))
                    out, drop = out[n:], drop - n
                if out and not sink(out):
                    return "cancelled"
                if d.eof:
                    break
                if d.needs_input:
                    return "the block is incomplete"
        except (OSError, EOFError, ValueError) as exc:
            return str(exc)
    if d.unused_data:
        return "data after the block"
    return None
