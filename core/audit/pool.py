"""Running many work items on this machine with bounded parallelism: a local campaign
and one shard of a plan both go through ``run_pool``; they differ only in where each
result goes (the history, or the shard's results destination)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..decrypt.secrets import Secrets
from .item import ItemContext, Result, run_item
from .plan import WorkItem


@dataclass
class Progress:
    """The campaign's one progress line: versions and bytes done of the sample."""

    total_versions: int
    total_bytes: int
    started: float = field(default_factory=time.monotonic)
    done_versions: int = 0
    done_bytes: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)

    def done(self, item: WorkItem) -> None:
        self.in_flight.pop(item.id, None)
        self.done_versions += 1
        self.done_bytes += item.size

    @property
    def eta(self) -> float | None:
        done = self.done_bytes + sum(self.in_flight.values())
        elapsed = time.monotonic() - self.started
        if done <= 0 or elapsed < 0.5:
            return None
        return max(0.0, elapsed / done * (self.total_bytes - done))


def run_pool(
    todo: Sequence[WorkItem],
    secrets: Secrets,
    ctx: ItemContext,
    *,
    parallel: int,
    deadline: float | None,
    on_result: Callable[[WorkItem, Result], None],
    on_progress: Callable[[Progress], None],
    prog: Progress | None = None,
) -> str | None:
    """Run ``todo`` in order, ``parallel`` at a time; each result is handed to
    ``on_result`` on this thread as it comes. ``deadline``: ``time.monotonic()`` at
    which to stop; ``prog``: a progress line already counting other items (a cluster's).
    Returns why it stopped early ("max-duration", "cancelled") or None; items left are
    for the next run."""
    prog = prog or Progress(len(todo), sum(i.size for i in todo))
    lock = threading.Lock()

    def one(item: WorkItem) -> Result | None:
        size = max(item.size, 1)

        def progress(frac: float) -> None:
            with lock:
                prog.in_flight[item.id] = int(frac * size)

        return run_item(item, secrets, ctx, progress)

    pending = list(reversed(todo))
    running: dict[cf.Future[Result | None], WorkItem] = {}
    stopped: str | None = None
    with cf.ThreadPoolExecutor(parallel, thread_name_prefix="audit") as pool:
        while pending or running:
            if stopped is None and deadline is not None and time.monotonic() >= deadline:
                stopped = "max-duration"
                ctx.cancel.cancel()  # the running ones stop; the next run redoes them
            if stopped is None and ctx.cancel.cancelled:
                stopped = "cancelled"
            while pending and stopped is None and len(running) < parallel:
                item = pending.pop()
                running[pool.submit(one, item)] = item
            if not running:
                break
            done, _ = cf.wait(running, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            for f in done:
                item = running.pop(f)
                result = f.result()
                with lock:
                    prog.done(item)
                if result is not None:
                    on_result(item, result)
            on_progress(prog)
    return stopped
