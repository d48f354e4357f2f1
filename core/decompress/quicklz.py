"""QuickLZ block decoder (levels 1 and 3), written from the format description in
formats.md §5.3 (issue 16). QuickLZ and qpress are GPL; this is our own code.

PURE PYTHON, AND SLOW: measured at a few MB/s of output (bench/qpress_bench.py),
against hundreds for the C library. It is correct and bounded in memory (one
block, at most qpress's chunk size, 64 KiB by default), fine for metadata and
small backups; a multi-GB ``--compress`` backup needs a compiled decoder, which
is left to a later slice (no maintained, licence-compatible binding exists:
pyquicklz dates from 2016 and bundles the GPL QuickLZ source).

A block: one header byte ``01SSLLHC`` (C compressed, H long header, LL level),
then ``csize``/``dsize`` as u8 or u32 LE; csize counts the header. Compressed
data is a sequence of 32-bit control words (LE, read low bit first: 1 = match,
0 = literal), each followed by the items it describes. Level 1 finds a match's
source through a 4096-entry hash table of 3-byte prefixes that the decoder
rebuilds from its own output; level 3 stores the back-offset itself.
"""

from __future__ import annotations

import struct

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


def decompress_block(block: bytes | bytearray) -> bytes:
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
    # Padding so that 4-byte reads near the end never fall off the block.
    src = bytes(block) + b"\0\0\0\0"
    try:
        if level == 1:
            out = _level1(src, hdr, dsize, csize)
        elif level == 3:
            out = _level3(src, hdr, dsize, csize)
        else:
            raise QuickLZError(f"QuickLZ level {level} is not decoded here (levels 1 and 3 are)")
    except IndexError:
        raise QuickLZError("a match points outside the data decoded so far") from None
    if len(out) != dsize:
        raise QuickLZError(f"block decodes to {len(out)} bytes, its header says {dsize}")
    return bytes(out)


def _tail(src: bytes, s: int, cword: int, dst: bytearray, last: int, csize: int) -> bytearray:
    """The last bytes of a block are literals; the control word still counts them."""
    while len(dst) <= last:
        if cword == 1:
            s += 4
            cword = _SENTINEL
        if s >= csize:
            raise QuickLZError("block data ends early")
        dst.append(src[s])
        s += 1
        cword >>= 1
    return dst


def _copy(dst: bytearray, off: int, n: int) -> None:
    end = off + n
    if off < 0:
        raise IndexError
    if end <= len(dst):
        dst += dst[off:end]
        return
    for i in range(off, end):  # overlapping: each byte may be one just written
        dst.append(dst[i])


def _level1(src: bytes, s: int, dsize: int, csize: int) -> bytearray:
    dst = bytearray()
    table = [0] * 4096
    hashed = -1  # the last output position entered into the table
    last = dsize - 1
    cword = 1
    frombytes = int.from_bytes
    while True:
        if cword == 1:
            cword = frombytes(src[s : s + 4], "little") | _SENTINEL
            s += 4
        if s >= csize and len(dst) <= last:
            raise QuickLZError("block data ends early")
        if cword & 1:
            cword >>= 1
            fetch = frombytes(src[s : s + 4], "little")
            off = table[(fetch >> 4) & 0xFFF]
            if fetch & 0xF:
                n = (fetch & 0xF) + 2
                s += 2
            else:
                n = src[s + 2]
                s += 3
            start = len(dst)
            if off >= start:
                raise IndexError
            _copy(dst, off, n)
            # The table holds every position up to the match's start, none inside it.
            while hashed < start:
                hashed += 1
                v = dst[hashed] | dst[hashed + 1] << 8 | dst[hashed + 2] << 16
                table[((v >> 12) ^ v) & 0xFFF] = hashed
            hashed = len(dst) - 1
        elif len(dst) < last - 10:
            n = _RUN[cword & 0xF]
            dst += src[s : s + n]
            s += n
            cword >>= n
            upto = len(dst) - 3
            while hashed < upto:
                hashed += 1
                v = dst[hashed] | dst[hashed + 1] << 8 | dst[hashed + 2] << 16
                table[((v >> 12) ^ v) & 0xFFF] = hashed
        else:
            return _tail(src, s, cword, dst, last, csize)
        if len(dst) > dsize:
            raise QuickLZError("block decodes past its stated size")


def _level3(src: bytes, s: int, dsize: int, csize: int) -> bytearray:
    dst = bytearray()
    last = dsize - 1
    cword = 1
    frombytes = int.from_bytes
    while True:
        if cword == 1:
            cword = frombytes(src[s : s + 4], "little") | _SENTINEL
            s += 4
        if s >= csize and len(dst) <= last:
            raise QuickLZError("block data ends early")
        if cword & 1:
            cword >>= 1
            fetch = frombytes(src[s : s + 4], "little")
            if fetch & 3 == 0:
                off, n = (fetch & 0xFF) >> 2, 3
                s += 1
            elif fetch & 2 == 0:
                off, n = (fetch & 0xFFFF) >> 2, 3
                s += 2
            elif fetch & 1 == 0:
                off, n = (fetch & 0xFFFF) >> 6, ((fetch >> 2) & 15) + 3
                s += 2
            elif fetch & 127 != 3:
                off, n = (fetch >> 7) & 0x1FFFF, ((fetch >> 2) & 0x1F) + 2
                s += 3
            else:
                off, n = fetch >> 15, ((fetch >> 7) & 255) + 3
                s += 4
            if off == 0 or off > len(dst):
                raise IndexError
            _copy(dst, len(dst) - off, n)
        elif len(dst) < last - 10:
            dst.append(src[s])
            s += 1
            cword >>= 1
        else:
            return _tail(src, s, cword, dst, last, csize)
        if len(dst) > dsize:
            raise QuickLZError("block decodes past its stated size")
