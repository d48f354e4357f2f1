"""The worker threads that decode blocks, and how their output reaches the reader.

Why threads and not processes: libbz2 releases the GIL while it decodes, so
threads use every core without copying blocks between processes. Each block
has its own small output queue, so the reader takes output in block order
whatever order the workers finish in, and the number of blocks in flight
(bounded by the reader) bounds memory.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from ...plumbing.cpus import free_cpus
from ...plumbing.progress import CancelToken
from ...plumbing.streams import put_unless
from .block import BlockJob, decode

# Output held back per block until its CRC is checked. Larger outputs (long
# runs: a 900k block of zeros decodes to 45 MB) are checked in a first,
# discarding pass and then decoded again and streamed.
HOLD_BYTES = 4 << 20

DONE = object()  # the last item of a block's output: its CRC was checked by libbz2


@dataclass
class Failed:
    """The last item of a block that did not decode: why (a wrong cut, or corruption)."""

    why: str


def default_workers() -> int:
    """Decoding threads: the CPUs free now (plumbing/cpus.py), at most 8. With one
    free, the caller takes the sequential reader: on a busy machine the split's
    overhead buys no parallelism (issue 17)."""
    return free_cpus(cap=8)


class DecoderPool:
    """Up to ``workers`` threads, started as blocks arrive, decoding BlockJobs.

    A worker never delivers output before its block's CRC has been checked, so
    a block that fails (and is then decoded again from another cut) leaves no
    trace in the output.
    """

    def __init__(self, workers: int, stop: CancelToken) -> None:
        self._workers = workers
        self._stop = stop  # the reader's: cancelled with the job, or by close()
        self._jobs: queue.Queue[BlockJob | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def submit(self, job: BlockJob) -> None:
        if len(self._threads) < self._workers:
            t = threading.Thread(
                target=self._work, name=f"sealcheck-bzip2-{len(self._threads)}", daemon=True
            )
            t.start()  # started before it is listed: shutdown() joins only started threads
            self._threads.append(t)
        self._jobs.put(job)

    def shutdown(self) -> None:
        """Stop and join the threads (the jobs left are to be cancelled first).

        The None sent to each thread is the end of the work at the end of the data,
        not a cancel: on cancel the threads stop on the reader's token by themselves
        (a job under way on the job's token, which derives from it)."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def _work(self) -> None:
        while not self._stop.cancelled:
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if job is None:
                return
            if job.stop.cancelled:
                continue
            try:
                self._run(job)
            except BaseException as exc:  # noqa: BLE001 - reported as this block's failure
                self._put(job, Failed(f"{type(exc).__name__}: {exc}"))

    def _run(self, job: BlockJob) -> None:
        held: list[bytes] = []
        size = 0

        def hold(b: bytes) -> bool:
            nonlocal size
            size += len(b)
            if size <= HOLD_BYTES:
                held.append(b)
            elif held:
                held.clear()  # too big to hold: verified first, streamed after
            return not job.stop.cancelled

        why = decode(job, hold)
        if why is not None:
            self._put(job, Failed(why))
            return
        if size > HOLD_BYTES:
            why = decode(job, lambda b: self._put(job, b))
            if why is not None:  # cannot happen: the same bytes decoded a moment ago
                self._put(job, Failed(why))
                return
        elif held:
            self._put(job, held)
        self._put(job, DONE)

    def _put(self, job: BlockJob, item: object) -> bool:
        return put_unless(job.out, item, job.stop)
