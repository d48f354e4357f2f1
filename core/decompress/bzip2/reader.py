"""The parallel bzip2 reader: feeds the scanner's blocks to the pool, checks what
only the whole stream can prove, and delivers the output in order.

What is checked here and not in a block: the combined CRC of each stream (the
block CRCs folded in order, compared at each end-of-stream marker), the count
of concatenated streams (pbzip2, lbzip2, ``cat a.bz2 b.bz2``), zero padding
after the last one. A block that fails to decode may be a false cut (a chance
magic inside the data): the reader then searches that block's true end
exactly, trying each candidate boundary in turn with a discarding decode, and
only reports corruption when no candidate decodes (as the sequential decoder
would fail there too).
"""

from __future__ import annotations

import queue
from collections import deque

from ...errors import Cancelled
from ...formats import Fmt
from ...plumbing.progress import CancelToken
from ...plumbing.streams import CHUNK, Reader
from ..base import DecompressStats
from .block import BlockJob, decode, rotl
from .pool import DONE, DecoderPool, Failed, default_workers
from .scanner import MAX_BLOCK_BITS, End, Eos, Header, Item, Splitter, Zeros

_MAX_TRIALS = 4  # candidate ends tried for a block that failed to decode


class ParallelBzip2Reader:
    """bzip2 streams decoded block-parallel; the DecompressReader interface."""

    def __init__(
        self,
        upstream: Reader,
        *,
        obj: str | None = None,
        workers: int | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.stats = DecompressStats(Fmt.BZIP2.value, members=1)
        self._obj = obj
        # Cancelled with the job, or by close(); every block's token derives from it.
        self._stop = (cancel or CancelToken()).child()
        self._split = Splitter(upstream, self.stats, obj, self._stop)
        nworkers = workers or default_workers()
        self._pool = DecoderPool(nworkers, self._stop)
        self._max_inflight = 2 * nworkers + 1
        self._items: deque[Item] = deque()
        self._inflight = 0  # jobs in _items, plus the current one
        self._job: BlockJob | None = None  # the block being delivered
        self._pieces: deque[bytes] = deque()
        self._cur = b""
        self._off = 0
        self._combined = 0
        self._streams = 0
        self._done = False

    # DecompressReader
    def read(self, n: int = -1, /) -> bytes:
        limit = n if n > 0 else CHUNK
        self._stop.check()
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
        self._stop.cancel()
        self._shutdown()

    # items
    def _next_item(self) -> None:
        self._pump()
        item = self._items.popleft()
        if isinstance(item, BlockJob):
            self._job = item
        elif isinstance(item, Header):
            self._streams += 1
            self.stats.members = self._streams
            self._combined = 0
        elif isinstance(item, Eos):
            if item.stored != self._combined:
                self._fail(
                    self._split.corrupt(
                        f"stream CRC {self._combined:08x} of the blocks, {item.stored:08x} stored",
                        self._streams,
                    )
                )
        elif isinstance(item, Zeros):
            if item.count:
                self.stats.trailing_zero_bytes += item.count
                self.stats.notes.append(f"{item.count} zero bytes after the last member (ignored)")
        elif isinstance(item, End):
            self._done = True
            self._shutdown()
        else:
            self._fail(item.exc)

    def _fail(self, exc: Exception) -> None:
        self._done = True
        self._shutdown()
        raise exc

    def _next_piece(self, job: BlockJob) -> None:
        self._pump()
        got = self._get(job)
        if isinstance(got, bytes):
            self._pieces.append(got)
        elif isinstance(got, list):
            self._pieces.extend(got)
        elif isinstance(got, Failed):
            self._job = None
            self._inflight -= 1
            self._recover(job, got.why)
        else:  # DONE: the block's CRC was checked by libbz2
            assert got is DONE
            self._combined = rotl(self._combined) ^ job.crc
            self._job = None
            self._inflight -= 1

    def _get(self, job: BlockJob) -> object:
        while True:
            try:
                return job.out.get(timeout=0.1)
            except queue.Empty:
                if self._stop.cancelled:
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
                if isinstance(item, BlockJob):
                    self._submit(item)
                self._items.append(item)

    def _oldest_start(self) -> int:
        if self._job is not None:
            return self._job.start // 8
        for item in self._items:
            if isinstance(item, BlockJob):
                return item.start // 8
        return 1 << 62

    def _submit(self, job: BlockJob) -> None:
        self._inflight += 1
        self._pool.submit(job)

    # a block that failed to decode
    def _recover(self, job: BlockJob, why: str) -> None:
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
            err = decode(sp.job_to(cand), lambda _b: not self._stop.cancelled)
            self._stop.check()
            if err is None:
                for item in sp.cut(cand):
                    if isinstance(item, BlockJob):
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
            if isinstance(item, BlockJob):
                item.stop.cancel()
        self._items.clear()
        self._inflight = 0

    def _shutdown(self) -> None:
        self._cancel_inflight()
        if self._job is not None:
            self._job.stop.cancel()
        self._pool.shutdown()
