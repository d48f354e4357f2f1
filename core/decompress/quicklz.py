"""QuickLZ block decoder (levels 1 and 3), written from the format description in
formats.md §5.3 (issue 16). QuickLZ and qpress are GPL; this is our own code.

Two implementations of one decoder: ``_quicklz.c``, an optional C extension built
by ``pip install`` where a compiler and the Python headers are present (no
maintained, licence-compatible binding exists: pyquicklz dates from 2016 and
bundles the GPL QuickLZ source), and this pure-Python one, a few MB/s, used when
the extension is absent. They take the same steps, check the same bounds in the
same order and return the same error codes; tests/core/test_quicklz.py runs both
on the same blocks, damaged and random ones included.

A block: one header byte ``01SSLLHC`` (C compressed, H long header, LL level),
then ``csize``/``dsize`` as u8 or u32 LE; csize counts the header. Compressed
data is a sequence of 32-bit control words (LE, read low bit first: 1 = match,
0 = literal), each followed by the items it describes. Level 1 finds a match's
source through a 4096-entry hash table of 3-byte prefixes that the decoder
rebuilds from its own output; level 3 stores the back-offset itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

HEADER_MAX = 9
_SENTINEL = 0x80000000
# The number of literals that follow in a control word: its trailing zero bits, at most 4.
_RUN = (4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0)


class QuickLZError(ValueError):
    """The block does not decode (damaged data): the caller names the layer."""


def block_sizes(head: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(header length, compressed size including the header, decompressed size)."""
    flags = head[0]
    if flags & 0x40 != 0x40 or flags & 0x80:
        raise QuickLZError(f"block header byte {flags:#04x} is not a QuickLZ header")
    if flags & 2:
        if len(head) < 9:
            raise QuickLZError("short block header")
        csize, dsize = struct.unpack_from("<II", head, 1)
        return 9, csize, dsize
    if len(head) < 3:
        raise QuickLZError("short block header")
    return 3, head[1], head[2]


# A decoder: (whole block, level, header length, decoded size) -> bytes or an error code.
Decoder = Callable[[bytes | bytearray, int, int, int], "bytes | int"]
ENDS_EARLY, BAD_MATCH, PAST_SIZE = 1, 2, 3
_ERRORS = {
    ENDS_EARLY: "block data ends early",
    BAD_MATCH: "a match points outside the data decoded so far",
    PAST_SIZE: "block decodes past its stated size",
}


def decode_python(block: bytes | bytearray, level: int, s: int, dsize: int) -> bytes | int:
    """Levels 1 and 3 in one loop; _quicklz.c takes exactly these steps."""
    csize = len(block)
    src = bytes(block) + b"\0\0\0\0"  # a 4-byte fetch near the end reads zeros
    dst = bytearray()
    table = [0] * 4096 if level == 1 else None
    hashed = -1  # level 1: the last output position entered into the table
    cword = 1
    frombytes = int.from_bytes
    while True:
        if cword == 1:
            if csize - s < 4:
                return ENDS_EARLY
            cword = frombytes(src[s : s + 4], "little") | _SENTINEL
            s += 4
        d = len(dst)
        if cword & 1:
            cword >>= 1
            f = frombytes(src[s : s + 4], "little")
            if table is not None:
                start = table[(f >> 4) & 0xFFF]
                n, k = ((f & 0xF) + 2, 2) if f & 0xF else ((f >> 16) & 0xFF, 3)
                if csize - s < k:
                    return ENDS_EARLY
                if start >= d or n < 3:
                    return BAD_MATCH
            else:
                dist, n, k = _level3_match(f)
                if csize - s < k:
                    return ENDS_EARLY
                if dist == 0 or dist > d:
                    return BAD_MATCH
                start = d - dist
            if dsize - d < n:
                return PAST_SIZE
            s += k
            if d - start >= n:
                dst += dst[start : start + n]
            else:  # overlapping: each byte may be one just written
                for i in range(start, start + n):
                    dst.append(dst[i])
            if table is not None:
                # The table holds every position up to the match's start, none inside it.
                hashed = _rehash(dst, table, hashed, d)
                hashed = len(dst) - 1
        elif d + 11 < dsize:
            n = _RUN[cword & 0xF]
            if csize - s < n:
                return ENDS_EARLY
            dst += src[s : s + n]
            s += n
            cword >>= n
            if table is not None:
                hashed = _rehash(dst, table, hashed, len(dst) - 3)
        else:
            # The last bytes of a block are literals; the control word still counts them.
            while len(dst) < dsize:
                if cword == 1:
                    s += 4
                    cword = _SENTINEL
                if s >= csize:
                    return ENDS_EARLY
                dst.append(src[s])
                s += 1
                cword >>= 1
            return bytes(dst)


def _level3_match(f: int) -> tuple[int, int, int]:
    """(back-distance, length, bytes the match takes) of a level-3 match."""
    if f & 3 == 0:
        return (f & 0xFF) >> 2, 3, 1
    if f & 2 == 0:
        return (f & 0xFFFF) >> 2, 3, 2
    if f & 1 == 0:
        return (f & 0xFFFF) >> 6, ((f >> 2) & 15) + 3, 2
    if f & 127 != 3:
        return (f >> 7) & 0x1FFFF, ((f >> 2) & 0x1F) + 2, 3
    return f >> 15, ((f >> 7) & 255) + 3, 4


def _rehash(dst: bytearray, table: list[int], hashed: int, upto: int) -> int:
    """Enter output positions up to ``upto`` (3-byte prefixes) into the level-1 table."""
    while hashed < upto:
        hashed += 1
        v = dst[hashed] | dst[hashed + 1] << 8 | dst[hashed + 2] << 16
        table[((v >> 12) ^ v) & 0xFFF] = hashed
    return hashed


DECODERS: dict[str, Decoder] = {"python": decode_python}
try:  # the C accelerator, built by pip where it can be (pyproject.toml: ext-modules)
    from . import _quicklz

    DECODERS["c"] = _quicklz.decode
except ImportError:  # pragma: no cover - installed without a compiler: the slow road
    pass
# The one used: the C accelerator when it was built.
DECODER = "c" if "c" in DECODERS else "python"


def decompress_block(block: bytes | bytearray, *, decoder: str | None = None) -> bytes:
    """Decode one whole QuickLZ block (exactly ``csize`` bytes)."""
    hdr, csize, dsize = block_sizes(block)
    if csize != len(block):
        raise QuickLZError(f"block is {len(block)} bytes, its header says {csize}")
    flags = block[0]
    if not flags & 1:  # stored
        if csize - hdr != dsize:
            raise QuickLZError("stored block length does not match its header")
        return bytes(block[hdr:])
    level = (flags >> 2) & 3
    if level not in (1, 3):
        raise QuickLZError(f"QuickLZ level {level} is not decoded here (levels 1 and 3 are)")
    out = DECODERS[decoder or DECODER](block, level, hdr, dsize)
    if isinstance(out, int):
        raise QuickLZError(_ERRORS[out])
    return out
