"""Progress reporting and cooperative cancellation for long operations.

A job is a stream: the download, decryption, decompression and writing all run
at once on worker threads. The whole-job fraction is therefore the fraction of
the job's *input* consumed, and there is exactly one ETA, derived from it. Each
stage also reports its own byte counter so a UI can show where time goes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Cancelled


class CancelToken:
    """Set from any thread; checked by workers between chunks.

    The one way a stage is told to stop. A stage that must also stop on its own
    (its consumer closed it, an in-flight block became useless) takes a
    :meth:`child` of the job's token instead of keeping a second flag: the child
    is cancelled with the job, or alone, and every check looks at both.
    """

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def child(self) -> CancelToken:
        """A token cancelled when this one is, and also on its own."""
        return CancelToken(self)


@dataclass(frozen=True)
class StageProgress:
    name: str
    done: int
    total: int | None


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # the stage the job is in, for a label ("download", "verify", ...)
    done: int  # bytes of the job's input processed
    total: int | None  # bytes of input expected, when known
    rate: float  # input bytes per second, smoothed
    eta: float | None  # seconds left for the whole job
    elapsed: float
    stages: tuple[StageProgress, ...]

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """The default: report nothing."""


class Meter:
    """Thread-safe counters for one job, throttled into ProgressEvents.

    Workers call :meth:`add` from their threads; the callback runs on whichever
    thread crosses the throttle interval, so it must be cheap and thread-safe
    (the GUI's adapter only emits a queued signal).
    """

    def __init__(
        self,
        callback: ProgressCallback = no_progress,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stages: dict[str, list[int | None]] = {}
        self._input_stage: str | None = None
        self._current = "start"
        self._start = clock()
        self._last_emit = 0.0
        self._rate = 0.0
        self._rate_mark: tuple[float, int] = (self._start, 0)

    def stage(self, name: str, total: int | None = None, *, is_input: bool = False) -> None:
        with self._lock:
            self._stages.setdefault(name, [0, total])[1] = total
            if is_input:
                self._input_stage = name
            self._current = name
        self._emit(force=True)

    def set_current(self, name: str) -> None:
        with self._lock:
            self._current = name
        self._emit(force=True)

    def add(self, name: str, n: int) -> None:
        with self._lock:
            entry = self._stages.setdefault(name, [0, None])
            entry[0] = int(entry[0] or 0) + n
        self._emit()

    def finish(self) -> None:
        self._emit(force=True)

    def snapshot(self) -> ProgressEvent:
        with self._lock:
            now = self._clock()
            stages = tuple(StageProgress(k, int(v[0] or 0), v[1]) for k, v in self._stages.items())
            inp = self._stages.get(self._input_stage or "", [0, None])
            done, total = int(inp[0] or 0), inp[1]
            mark_t, mark_done = self._rate_mark
            if now - mark_t >= 0.5:
                inst = (done - mark_done) / (now - mark_t)
                # Exponential smoothing keeps the ETA from jittering at 10 Hz.
                self._rate = inst if self._rate == 0 else 0.7 * self._rate + 0.3 * inst
                self._rate_mark = (now, done)
            elapsed = now - self._start
            rate = self._rate or (done / elapsed if elapsed > 0 else 0.0)
            eta = (total - done) / rate if total is not None and rate > 0 else None
            return ProgressEvent(self._current, done, total, rate, eta, elapsed, stages)

    def _emit(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_emit < self._interval:
            return
        self._last_emit = now
        self._callback(self.snapshot())
