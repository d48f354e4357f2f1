"""Parallel bzip2 decoding on the stdlib ``bz2`` module, keeping every check.

libbz2 decodes one block at a time on one core (~19 s/GiB here), but bzip2
blocks are independent: each starts with the bit-aligned 48-bit magic
0x314159265359 and a CRC of its own output, and the end-of-stream marker
0x177245385090 carries the combined CRC of the stream's blocks. So the
compressed stream is cut at block boundaries (:class:`_Splitter`, on the
reading thread), each block is rebuilt as a standalone one-block stream and
handed to a small pool of threads (libbz2 releases the GIL), and the output
is delivered in order with a bounded number of blocks in flight.

Nothing is weakened: libbz2 checks each block's CRC inside its rebuilt
stream; the reader folds the block CRCs into the combined CRC and compares it
with the stored one at each end-of-stream marker; input that ends before that
marker is :class:`TruncatedBackup`; bytes after the last stream that are not
zero padding are rejected (the sequential reader's policy); concatenated
streams (pbzip2, lbzip2, ``cat a.bz2 b.bz2``) are counted as members.

A 48-bit pattern can also occur by chance inside compressed data (~2^-45
per byte). Such a false cut makes the rebuilt block fail to decode; the
reader then searches that block's true end exactly, trying each candidate
boundary in turn with a discarding decode, and only reports corruption when
no candidate decodes (as the sequential decoder would fail there too). A
worker never delivers output before its block's CRC has been checked, so a
failed attempt leaves no trace in the output.
"""

from __future__ import annotations

import bz2
import functools
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import Cancelled, IntegrityError, Layer, TruncatedBackup
from ..formats import Fmt
from ..plumbing.streams import CHUNK, Reader, put_unless
from .base import DecompressStats

BLOCK_MAGIC = 0x314159265359
EOS_MAGIC = 0x177245385090
_MASK48 = (1 << 48) - 1
_MASK32 = 0xFFFFFFFF
_BLOCK, _EOS = "block", "eos"

# A block header alone (magic, CRC, origPtr, ...) is longer than this, so no
# real boundary can be closer to the previous one.
MIN_BLOCK_BITS = 80
# bzip2's encoder caps Huffman codes at 17 bits: a 900 kB block cannot
# compress to more than ~1.95 MB. No boundary within this distance means the
# data is not bzip2 (or is corrupt); it also caps the look-ahead buffer.
MAX_BLOCK_BITS = (2 << 20) * 8
# Output held back per block until its CRC is checked. Larger outputs (long
# runs: a 900k block of zeros decodes to 45 MB) are checked in a first,
# discarding pass and then decoded again and streamed.
HOLD_BYTES = 4 << 20
_WINDOW = 4096  # first window of the boundary search, doubled while empty
_MAX_WINDOW = 1 << 20
_TRIM = 1 << 20  # drop consumed input from the look-ahead buffer in steps this large
_MAX_TRIALS = 4  # candidate ends tried for a block that failed to decode


def _rotl(crc: int) -> int:
    return ((crc << 1) | (crc >> 31)) & _MASK32


# --- boundary patterns ------------------------------------------------------------


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
    for kind, magic in ((_BLOCK, BLOCK_MAGIC), (_EOS, EOS_MAGIC)):
        for s in range(8):
            window = (magic << (8 - s)).to_bytes(7, "big")
            out.append(_Pattern(kind, s, window[1:6], magic))
    return tuple(out)


_PATTERNS = _make_patterns()


# --- rebuilding one block as a stream -----------------------------------------------


def _single_block(plain: bytes) -> tuple[int, int, int]:
    """(bits, bit length, CRC) of the only block of ``bz2.compress(plain)``."""
    s = bz2.compress(plain, 1)
    total = len(s) * 8
    v = int.from_bytes(s, "big")
    for pad in range(8):
        eos = total - pad - 80
        if (v >> (total - eos - 48)) & _MASK48 == EOS_MAGIC:
            nbits = eos - 32
            bits = (v >> (total - eos)) & ((1 << nbits) - 1)
            return bits, nbits, (bits >> (nbits - 80)) & _MASK32
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
class _Job:
    """One block: its bytes (first byte partly the previous block's) and checks."""

    data: bytearray
    start: int  # absolute bit position of the block magic
    nbits: int
    crc: int  # from the block header
    level: int
    stream: int  # 1-based stream (member) number, for messages
    check: int  # see _decode: bytes of ``data`` in which no block may end (0: none)
    out: queue.Queue[object] = field(default_factory=lambda: queue.Queue(maxsize=2))
    cancelled: bool = False

    @property
    def shift(self) -> int:
        return self.start % 8


def _rebuild(job: _Job) -> tuple[bytes, int, int]:
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
    combined = job.crc if pre.crc is None else _rotl(pre.crc) ^ job.crc
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


def _decode(job: _Job, sink: Callable[[bytes], bool]) -> str | None:
    """Decode the job's rebuilt stream into ``sink``; the failure, or None.

    With ``job.check``, the first ``check`` bytes of the block go in first: the
    boundary search skipped them (see _Splitter._search_from), so a block
    ending in them would have been missed, and libbz2 emits output as soon as
    it has a block's last bit. Output beyond the dummy's at that point means a
    missed boundary (another block or an end-of-stream marker follows).
    ``sink`` returns False to stop (cancelled).
    """
    stream, drop, offset = _rebuild(job)
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


# --- splitting ---------------------------------------------------------------------


@dataclass
class _Header:
    level: int


@dataclass
class _Eos:
    stored: int


@dataclass
class _Zeros:
    count: int


@dataclass
class _End:
    pass


@dataclass
class _Error:
    exc: Exception


_Item = _Job | _Header | _Eos | _Zeros | _End | _Error
_Cand = tuple[str, int]  # (kind, absolute bit position)


class _Splitter:
    """Cuts the compressed input into items: headers, blocks, end markers.

    Runs on the reading thread. ``buf`` holds the input from ``keep_from``
    (the oldest block not yet delivered, which a failed block rewinds to) or
    the parse cursor, whichever is first, up to the search frontier.
    """

    def __init__(self, upstream: Reader, stats: DecompressStats, obj: str | None) -> None:
        self._up = upstream
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

    def _finish(self, items: list[_Item]) -> list[_Item]:
        self.phase = "done"
        return items

    # parsing
    def step(self) -> list[_Item]:
        """The next items; an empty list when only input was consumed."""
        if self.phase == "between":
            return self._between()
        if self.phase == "blocks":
            return self._block()
        if self.phase == "zeros":
            return self._zero_run()
        return []

    def _between(self) -> list[_Item]:
        self._have(self.pos + 4)
        head = bytes(self.buf[self.pos - self.base : self.pos - self.base + 4])
        if self.stream == 0 and not head.startswith(b"BZh"):  # the input's own start
            if b"BZh".startswith(head):
                return self._finish([_Error(self._truncated())])
            return self._finish([_Error(self.corrupt("no bzip2 stream header"))])
        if not head:
            return self._finish([_End()])
        if not head.startswith(b"BZh"):
            self.phase = "zeros"
            return []
        self.stream += 1
        if len(head) < 4:
            return self._finish([_Error(self._truncated())])
        level = head[3] - 0x30
        if not 1 <= level <= 9:
            return self._finish([_Error(self.corrupt("bad stream header"))])
        self.level = level
        items: list[_Item] = [_Header(level)]
        bit = (self.pos + 4) * 8
        magic = self._bits(bit, 48)
        if magic is None:
            return self._finish([*items, _Error(self._truncated())])
        if magic == EOS_MAGIC:
            return items + self._eos(bit)
        if magic != BLOCK_MAGIC:
            return self._finish([*items, _Error(self.corrupt("no block after the stream header"))])
        return items + self._enter_block(bit)

    def _enter_block(self, bit: int) -> list[_Item]:
        crc = self._bits(bit + 48, 32)
        if crc is None:
            return self._finish([_Error(self._truncated())])
        self.phase, self.bstart, self.bcrc = "blocks", bit, crc
        return []

    def _eos(self, bit: int) -> list[_Item]:
        stored = self._bits(bit + 48, 32)
        if stored is None:
            return self._finish([_Error(self._truncated())])
        self.phase, self.pos = "between", (bit + 80 + 7) // 8
        return [_Eos(stored)]

    def _zero_run(self) -> list[_Item]:
        # gzip(1)-style tolerance of zero padding after the last stream, as in
        # the sequential reader; anything else is not part of the stream.
        if self.pos - self.base >= len(self.buf) and not self._fill():
            return self._finish([_Zeros(self._zeros), _End()])
        i = self.pos - self.base
        n = len(self.buf) - i
        if self.buf.count(0, i) != n:
            return self._finish(
                [
                    _Error(
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

    def _block(self) -> list[_Item]:
        lo = self._search_from()
        floor = self.bstart + MIN_BLOCK_BITS
        cand = self._find(lo, self.bstart + MAX_BLOCK_BITS)
        check = lo // 8 - self.bstart // 8 if lo > floor else 0
        if cand is None and lo > floor:
            # The skip overshot the end (a stream's last block is short).
            cand, check = self._find(floor, self.bstart + MAX_BLOCK_BITS), 0
        if cand is None:
            return self._finish([_Error(self.no_end())])
        return self.cut(cand, check)

    def no_end(self) -> Exception:
        if self.eof:
            return self._truncated()
        return self.corrupt("no block boundary where one must be")

    def job_to(self, cand: _Cand, check: int = 0) -> _Job:
        """The current block, ending at ``cand``, as a job (no state change)."""
        a = self.bstart // 8 - self.base
        b = (cand[1] + 7) // 8 - self.base
        return _Job(
            self.buf[a:b],
            self.bstart,
            cand[1] - self.bstart,
            self.bcrc,
            self.level,
            self.stream,
            check,
        )

    def cut(self, cand: _Cand, check: int = 0) -> list[_Item]:
        """End the current block at ``cand`` and move past it."""
        job = self.job_to(cand, check)
        self._hist.append(job.nbits)
        if cand[0] == _EOS:
            return [job, *self._eos(cand[1])]
        return [job, *self._enter_block(cand[1])]

    def rewind(self, job: _Job) -> None:
        """Back to the start of ``job`` (still buffered: see keep_from)."""
        self.phase = "blocks"
        self.bstart, self.bcrc, self.level, self.stream = job.start, job.crc, job.level, job.stream
        self._hist.clear()

    def candidates(self) -> Iterator[_Cand]:
        """Every possible end of the current block, in order (no skipping)."""
        lo = self.bstart + MIN_BLOCK_BITS
        while (cand := self._find(lo, self.bstart + MAX_BLOCK_BITS)) is not None:
            yield cand
            lo = cand[1] + 1

    # searching
    def _find(self, lo_bit: int, limit_bit: int) -> _Cand | None:
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

    def _scan(self, start: int, stop: int, end: int, lo_bit: int) -> _Cand | None:
        """The first confirmed magic whose key starts in [start, stop), byte end ``end``."""
        buf, base = self.buf, self.base
        a = start - base
        e = min(stop - base + 4, end - base - 1)  # key at j: j + 5 <= e
        best: _Cand | None = None
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
        return (int.from_bytes(self.buf[i : i + 7], "big") >> (8 - shift)) & _MASK48


# --- the reader ----------------------------------------------------------------------

_DONE = object()


@dataclass
class _Failed:
    why: str


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class ParallelBzip2Reader:
    """bzip2 streams decoded block-parallel; the DecompressReader interface."""

    def __init__(
        self, upstream: Reader, *, obj: str | None = None, workers: int | None = None
    ) -> None:
        self.stats = DecompressStats(Fmt.BZIP2.value, members=1)
        self._obj = obj
        self._split = _Splitter(upstream, self.stats, obj)
        self._nworkers = workers or default_workers()
        self._max_inflight = 2 * self._nworkers + 1
        self._items: deque[_Item] = deque()
        self._inflight = 0  # jobs in _items, plus the current one
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._job: _Job | None = None  # the block being delivered
        self._pieces: deque[bytes] = deque()
        self._cur = b""
        self._off = 0
        self._combined = 0
        self._streams = 0
        self._done = False

    # DecompressReader
    def read(self, n: int = -1, /) -> bytes:
        limit = n if n > 0 else CHUNK
        while True:
            if self._off < len(self._cur):
                if self._off == 0 and len(self._cur) <= limit:
                    out, self._cur = self._cur, b""  # hand the piece over uncopied
                    return out
                out = self._cur[self._off : self._off + limit]
                self._off += len(out)
                return out
            if self._pieces:
                self._cur, self._off = self._pieces.popleft(), 0
            elif self._done:
                return b""
            elif self._job is not None:
                self._next_piece(self._job)
            else:
                self._next_item()

    def close(self) -> None:
        """Stop the workers; safe to call more than once."""
        self._closed = True
        self._shutdown()

    # items
    def _next_item(self) -> None:
        self._pump()
        item = self._items.popleft()
        if isinstance(item, _Job):
            self._job = item
        elif isinstance(item, _Header):
            self._streams += 1
            self.stats.members = self._streams
            self._combined = 0
        elif isinstance(item, _Eos):
            if item.stored != self._combined:
                self._fail(
                    self._split.corrupt(
                        f"stream CRC {self._combined:08x} of the blocks, {item.stored:08x} stored",
                        self._streams,
                    )
                )
        elif isinstance(item, _Zeros):
            if item.count:
                self.stats.trailing_zero_bytes += item.count
                self.stats.notes.append(f"{item.count} zero bytes after the last member (ignored)")
        elif isinstance(item, _End):
            self._done = True
            self._shutdown()
        else:
            self._fail(item.exc)

    def _fail(self, exc: Exception) -> None:
        self._done = True
        self._shutdown()
        raise exc

    def _next_piece(self, job: _Job) -> None:
        self._pump()
        got = self._get(job)
        if isinstance(got, bytes):
            self._pieces.append(got)
        elif isinstance(got, list):
            self._pieces.extend(got)
        elif isinstance(got, _Failed):
            self._job = None
            self._inflight -= 1
            self._recover(job, got.why)
        else:  # _DONE: the block's CRC was checked by libbz2
            self._combined = _rotl(self._combined) ^ job.crc
            self._job = None
            self._inflight -= 1

    def _get(self, job: _Job) -> object:
        while True:
            try:
                return job.out.get(timeout=0.1)
            except queue.Empty:
                if self._closed:
                    raise Cancelled() from None

    # feeding the workers
    def _pump(self) -> None:
        sp = self._split
        while sp.phase != "done" and (
            not self._items
            or (self._inflight < self._max_inflight and sp.buffered() < 4 * MAX_BLOCK_BITS // 8)
        ):
            sp.keep_from = self._oldest_start()
            for item in sp.step():
                if isinstance(item, _Job):
                    self._submit(item)
                self._items.append(item)

    def _oldest_start(self) -> int:
        if self._job is not None:
            return self._job.start // 8
        for item in self._items:
            if isinstance(item, _Job):
                return item.start // 8
        return 1 << 62

    def _submit(self, job: _Job) -> None:
        if len(self._threads) < self._nworkers:
            t = threading.Thread(
                target=self._work, name=f"sealcheck-bzip2-{len(self._threads)}", daemon=True
            )
            self._threads.append(t)
            t.start()
        self._inflight += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancelled:
                continue
            try:
                self._run(job)
            except BaseException as exc:  # noqa: BLE001 - reported as this block's failure
                self._put(job, _Failed(f"{type(exc).__name__}: {exc}"))

    def _run(self, job: _Job) -> None:
        held: list[bytes] = []
        size = 0

        def hold(b: bytes) -> bool:
            nonlocal size
            size += len(b)
            if size <= HOLD_BYTES:
                held.append(b)
            elif held:
                held.clear()  # too big to hold: verified first, streamed after
            return not (job.cancelled or self._closed)

        why = _decode(job, hold)
        if why is not None:
            self._put(job, _Failed(why))
            return
        if size > HOLD_BYTES:
            why = _decode(job, lambda b: self._put(job, b))
            if why is not None:  # cannot happen: the same bytes decoded a moment ago
                self._put(job, _Failed(why))
                return
        elif held:
            self._put(job, held)
        self._put(job, _DONE)

    def _put(self, job: _Job, item: object) -> bool:
        return put_unless(job.out, item, lambda: job.cancelled or self._closed)

    # a block that failed to decode
    def _recover(self, job: _Job, why: str) -> None:
        """Find the true end of ``job``'s block by trying each candidate in turn.

        The cut was wrong (a chance magic match inside the data, or a missed
        boundary in the skipped prefix), or the block is corrupt. Later items
        came from the wrong cut: drop them and re-split from this block.
        """
        self._cancel_inflight()
        sp = self._split
        sp.rewind(job)
        errors: list[str] = []
        for cand in sp.candidates():
            err = _decode(sp.job_to(cand), lambda _b: not self._closed)
            if self._closed:
                raise Cancelled()
            if err is None:
                for item in sp.cut(cand):
                    if isinstance(item, _Job):
                        self._submit(item)
                    self._items.append(item)
                return
            errors.append(err)
            if len(errors) >= _MAX_TRIALS:
                break
        if not errors:  # no end at all: truncated (or not bzip2 past this point)
            self._fail(sp.no_end())
        self._fail(sp.corrupt(errors[0] if errors else why, job.stream))

    def _cancel_inflight(self) -> None:
        for item in self._items:
            if isinstance(item, _Job):
                item.cancelled = True
        self._items.clear()
        self._inflight = 0

    def _shutdown(self) -> None:
        self._cancel_inflight()
        if self._job is not None:
            self._job.cancelled = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
