"""Cutting a bzip2 stream into items at block boundaries, on the reading thread.

Why a scanner and not libbz2: libbz2 finds a block's end only by decoding it,
one block at a time on one core. The block and end-of-stream magics are found
here by a byte search instead (16 patterns: two magics at eight bit offsets), so
the blocks can be handed to several decoders at once (pool.py). A 48-bit
pattern can also occur by chance inside compressed data (~2^-45 per byte); the
reader recovers from such a false cut (reader.py), so this scanner may be fast
rather than exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import IntegrityError, Layer, TruncatedBackup
from ...plumbing.progress import CancelToken
from ...plumbing.streams import CHUNK, Reader
from ..base import DecompressStats
from .block import BLOCK_MAGIC, EOS_MAGIC, MASK48, BlockJob

BLOCK, EOS = "block", "eos"

# A block header alone (magic, CRC, origPtr, ...) is longer than this, so no
# real boundary can be closer to the previous one.
MIN_BLOCK_BITS = 80
# bzip2's encoder caps Huffman codes at 17 bits: a 900 kB block cannot
# compress to more than ~1.95 MB. No boundary within this distance means the
# data is not bzip2 (or is corrupt); it also caps the look-ahead buffer.
MAX_BLOCK_BITS = (2 << 20) * 8
_WINDOW = 4096  # first window of the boundary search, doubled while empty
_MAX_WINDOW = 1 << 20
_TRIM = 1 << 20  # drop consumed input from the look-ahead buffer in steps this large


@dataclass(frozen=True)
class _Pattern:
    kind: str
    shift: int  # bit offset of the magic within its first byte
    key: bytes  # the 5 bytes the shifted magic fully determines
    magic: int


def _make_patterns() -> tuple[_Pattern, ...]:
    # Shifted by s bits, a 48-bit magic spans 7 bytes: a partial first byte,
    # 5 whole bytes and a partial last one. bytes.find (C, fast) looks for the
    # 5 whole ones; a hit is then confirmed on all 48 bits.
    out = []
    for kind, magic in ((BLOCK, BLOCK_MAGIC), (EOS, EOS_MAGIC)):
        for s in range(8):
            window = (magic << (8 - s)).to_bytes(7, "big")
            out.append(_Pattern(kind, s, window[1:6], magic))
    return tuple(out)


_PATTERNS = _make_patterns()


@dataclass
class Header:
    level: int


@dataclass
class Eos:
    stored: int


@dataclass
class Zeros:
    count: int


@dataclass
class End:
    pass


@dataclass
class SplitError:
    exc: Exception


Item = BlockJob | Header | Eos | Zeros | End | SplitError
Cand = tuple[str, int]  # (kind, absolute bit position)


class Splitter:
    """Cuts the compressed input into items: headers, blocks, end markers.

    Runs on the reading thread. ``buf`` holds the input from ``keep_from``
    (the oldest block not yet delivered, which a failed block rewinds to) or
    the parse cursor, whichever is first, up to the search frontier.
    """

    def __init__(
        self, upstream: Reader, stats: DecompressStats, obj: str | None, stop: CancelToken
    ) -> None:
        self._up = upstream
        self._stop = stop
        self._stats = stats
        self._obj = obj
        self.buf = bytearray()
        self.base = 0  # absolute byte offset of buf[0]
        self.eof = False
        self.keep_from = 0
        self.phase = "between"  # between streams | blocks | zeros | done
        self.pos = 0  # byte cursor (between, zeros)
        self.bstart = 0  # bit position of the current block magic (blocks)
        self.bcrc = 0
        self.level = 9
        self.stream = 0
        self._zeros = 0
        self._hist: deque[int] = deque(maxlen=4)

    # input
    def _cursor(self) -> int:
        return self.bstart // 8 if self.phase == "blocks" else self.pos

    def _fill(self) -> bool:
        if self.eof:
            return False
        cut = min(self.keep_from, self._cursor()) - self.base
        if cut >= _TRIM:
            del self.buf[:cut]
            self.base += cut
        self._stop.check()  # once per chunk read, as every stage does
        chunk = self._up.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self._stats.input_bytes += len(chunk)
        self.buf += chunk
        return True

    def _have(self, end: int) -> bool:
        while self.base + len(self.buf) < end:
            if not self._fill():
                return False
        return True

    def _bits(self, bit: int, n: int) -> int | None:
        end = (bit + n + 7) // 8
        if not self._have(end):
            return None
        v = int.from_bytes(self.buf[bit // 8 - self.base : end - self.base], "big")
        return (v >> (end * 8 - bit - n)) & ((1 << n) - 1)

    def buffered(self) -> int:
        return len(self.buf)

    # errors, in the sequential reader's words
    def _truncated(self) -> TruncatedBackup:
        return TruncatedBackup(
            f"the bzip2 stream ends before its end-of-stream marker (member {max(1, self.stream)})",
            obj=self._obj,
            layer=Layer.DECOMPRESS,
        )

    def corrupt(self, why: str, stream: int | None = None) -> IntegrityError:
        n = self.stream if stream is None else stream
        return IntegrityError(
            f"bzip2 data is corrupt ({why}) in member {max(1, n)}",
            obj=self._obj,
            layer=Layer.DECOMPRESS,
        )

    def _finish(self, items: list[Item]) -> list[Item]:
        self.phase = "done"
        return items

    # parsing
    def step(self) -> list[Item]:
        """The next items; an empty list when only input was consumed."""
        if self.phase == "between":
            return self._between()
        if self.phase == "blocks":
            return self._block()
        if self.phase == "zeros":
            return self._zero_run()
        return []

    def _between(self) -> list[Item]:
        self._have(self.pos + 4)
        head = bytes(self.buf[self.pos - self.base : self.pos - self.base + 4])
        if self.stream == 0 and not head.startswith(b"BZh"):  # the input's own start
            if b"BZh".startswith(head):
                return self._finish([SplitError(self._truncated())])
            return self._finish([SplitError(self.corrupt("no bzip2 stream header"))])
        if not head:
            return self._finish([End()])
        if not head.startswith(b"BZh"):
            self.phase = "zeros"
            return []
        self.stream += 1
        if len(head) < 4:
            return self._finish([SplitError(self._truncated())])
        level = head[3] - 0x30
        if not 1 <= level <= 9:
            return self._finish([SplitError(self.corrupt("bad stream header"))])
        self.level = level
        items: list[Item] = [Header(level)]
        bit = (self.pos + 4) * 8
        magic = self._bits(bit, 48)
        if magic is None:
            return self._finish([*items, SplitError(self._truncated())])
        if magic == EOS_MAGIC:
            return items + self._eos(bit)
        if magic != BLOCK_MAGIC:
            err = self.corrupt("no block after the stream header")
            return self._finish([*items, SplitError(err)])
        return items + self._enter_block(bit)

    def _enter_block(self, bit: int) -> list[Item]:
        crc = self._bits(bit + 48, 32)
        if crc is None:
            return self._finish([SplitError(self._truncated())])
        self.phase, self.bstart, self.bcrc = "blocks", bit, crc
        return []

    def _eos(self, bit: int) -> list[Item]:
        stored = self._bits(bit + 48, 32)
        if stored is None:
            return self._finish([SplitError(self._truncated())])
        self.phase, self.pos = "between", (bit + 80 + 7) // 8
        return [Eos(stored)]

    def _zero_run(self) -> list[Item]:
        # gzip(1)-style tolerance of zero padding after the last stream, as in
        # the sequential reader; anything else is not part of the stream.
        if self.pos - self.base >= len(self.buf) and not self._fill():
            return self._finish([Zeros(self._zeros), End()])
        i = self.pos - self.base
        n = len(self.buf) - i
        if self.buf.count(0, i) != n:
            return self._finish(
                [
                    SplitError(
                        IntegrityError(
                            "unexpected data after the end of the bzip2 stream "
                            f"(member {max(1, self.stream)})",
                            obj=self._obj,
                            layer=Layer.DECOMPRESS,
                        )
                    )
                ]
            )
        self._zeros += n
        self.pos += n
        return []

    def _search_from(self) -> int:
        """Where to start looking for the end of the current block.

        Blocks of one stream are mostly alike in size, so the search skips
        31/32 of the smallest of the last few: that saves most of the 16
        pattern scans. The skipped bytes are handed to the decoder as the
        job's ``check`` prefix, which catches a block that ended inside them.
        """
        floor = self.bstart + MIN_BLOCK_BITS
        if not self._hist:
            return floor
        return max(floor, (self.bstart + min(self._hist) * 31 // 32) // 8 * 8)

    def _block(self) -> list[Item]:
        lo = self._search_from()
        floor = self.bstart + MIN_BLOCK_BITS
        cand = self._find(lo, self.bstart + MAX_BLOCK_BITS)
        check = lo // 8 - self.bstart // 8 if lo > floor else 0
        if cand is None and lo > floor:
            # The skip overshot the end (a stream's last block is short).
            cand, check = self._find(floor, self.bstart + MAX_BLOCK_BITS), 0
        if cand is None:
            return self._finish([SplitError(self.no_end())])
        return self.cut(cand, check)

    def no_end(self) -> Exception:
        if self.eof:
            return self._truncated()
        return self.corrupt("no block boundary where one must be")

    def job_to(self, cand: Cand, check: int = 0) -> BlockJob:
        """The current block, ending at ``cand``, as a job (no state change)."""
        a = self.bstart // 8 - self.base
        b = (cand[1] + 7) // 8 - self.base
        return BlockJob(
            self.buf[a:b],
            self.bstart,
            cand[1] - self.bstart,
            self.bcrc,
            self.level,
            self.stream,
            check,
            self._stop.child(),
        )

    def cut(self, cand: Cand, check: int = 0) -> list[Item]:
        """End the current block at ``cand`` and move past it."""
        job = self.job_to(cand, check)
        self._hist.append(job.nbits)
        if cand[0] == EOS:
            return [job, *self._eos(cand[1])]
        return [job, *self._enter_block(cand[1])]

    def rewind(self, job: BlockJob) -> None:
        """Back to the start of ``job`` (still buffered: see keep_from)."""
        self.phase = "blocks"
        self.bstart, self.bcrc, self.level, self.stream = job.start, job.crc, job.level, job.stream
        self._hist.clear()

    def candidates(self) -> Iterator[Cand]:
        """Every possible end of the current block, in order (no skipping)."""
        lo = self.bstart + MIN_BLOCK_BITS
        while (cand := self._find(lo, self.bstart + MAX_BLOCK_BITS)) is not None:
            yield cand
            lo = cand[1] + 1

    # searching
    def _find(self, lo_bit: int, limit_bit: int) -> Cand | None:
        """The first block or end-of-stream magic at or after ``lo_bit``.

        Searched in growing windows so that the patterns that do not occur
        soon are not scanned far ahead. None at the end of the input or past
        ``limit_bit``.
        """
        start = lo_bit // 8 + 1  # key byte of a magic at lo_bit's byte
        width = _WINDOW
        while True:
            stop = start + width
            final = not self._have(stop + 6)
            end = min(stop + 6, self.base + len(self.buf))
            best = self._scan(start, stop, end, lo_bit)
            if best is not None:
                return best
            if final or stop * 8 > limit_bit:
                return None
            start, width = stop, min(width * 2, _MAX_WINDOW)

    def _scan(self, start: int, stop: int, end: int, lo_bit: int) -> Cand | None:
        """The first confirmed magic whose key starts in [start, stop), byte end ``end``."""
        buf, base = self.buf, self.base
        a = start - base
        e = min(stop - base + 4, end - base - 1)  # key at j: j + 5 <= e
        best: Cand | None = None
        for p in _PATTERNS:
            j = buf.find(p.key, a, e)
            while j >= 0:
                c = (base + j - 1) * 8 + p.shift
                if best is not None and c >= best[1]:
                    break
                if c >= lo_bit and j >= 1 and self._magic_at(j - 1, p.shift) == p.magic:
                    best = (p.kind, c)
                    e = min(e, j + 5)  # a better one has its key before this one's
                    break
                j = buf.find(p.key, j + 1, e)
        return best

    def _magic_at(self, i: int, shift: int) -> int:
        return (int.from_bytes(self.buf[i : i + 7], "big") >> (8 - shift)) & MASK48
