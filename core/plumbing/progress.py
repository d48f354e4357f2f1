"""Progress reporting and cooperative cancellation for long operations.

Progress is throttled here, once: :class:`Meter` reports at most every
:data:`INTERVAL` seconds, and always at a change of stage. A UI forwards what it
receives; a job that reports on its own uses a :class:`Throttle`.

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


INTERVAL = 0.1  # seconds between two reports: no UI needs more than 10 a second


class Throttle:
    """Decides when to report: at most once per ``interval``, or when forced.

    Thread-safe: the test and the new mark are one step, so two threads crossing
    the interval together report once.
    """

    def __init__(
        self, interval: float = INTERVAL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def due(self, force: bool = False) -> bool:
        """Whether to report now; if so, the next interval starts now."""
        now = self._clock()
        with self._lock:
            if not force and self._last is not None and now - self._last < self._interval:
                return False
            self._last = now
            return True


class Meter:
    """Thread-safe counters for one job, throttled into ProgressEvents.

    Workers call :meth:`add` from their threads; the callback runs on whichever
    thread crosses the throttle interval, so it must be cheap and thread-safe
    (the GUI's adapter only emits a queued signal). Every change of stage is
    reported at once, and the events reach the callback in the order they were
    taken, so the last one a UI sees is the job's latest stage.
    """

    def __init__(
        self,
        callback: ProgressCallback = no_progress,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._throttle = Throttle(interval, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()  # one report at a time, in order
        self._stages: dict[str, list[int | None]] = {}
        self._input_stage: str | None = None
        self._current = "start"
        self._start = clock()
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
            changed = name != self._current
            self._current = name
        self._emit(force=changed)

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
        if not self._throttle.due(force):
            return
        with self._emit_lock:
            self._callback(self.snapshot())
