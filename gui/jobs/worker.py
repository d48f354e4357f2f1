"""The one worker type: a QRunnable plus a signals QObject (superqt's shape).

A job is a plain function ``fn(ctx, *args)``. It either returns a value, or is
a generator that yields progress values; between yields the worker checks the
cooperative abort flag. ``ctx.cancel`` is core's CancelToken, so core code that
checks it per chunk stops at the same request. ``ctx.forward`` emits what core's
Meter reports (already throttled to 10 a second, every stage change included)
as it is; ``ctx.progress`` is for a job function that reports on its own, and
throttles with core's Throttle. Both may be called from any thread: they only
emit a queued signal.

Invariant: every signal is emitted from the pool thread and delivered on the
GUI thread (the signals object lives there), so slots never race the model.
"""

from __future__ import annotations

import inspect
import threading
import traceback
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from sealcheck.core.errors import Cancelled
from sealcheck.core.plumbing.progress import CancelToken, Throttle

_live: weakref.WeakSet[Worker] = weakref.WeakSet()
_live_lock = threading.Lock()


def live_workers() -> list[Worker]:
    """Workers started and not yet finished (the test fixtures check this is empty)."""
    with _live_lock:
        return [w for w in _live if w.running]


@dataclass(frozen=True)
class Failure:
    """What ``errored`` carries: the exception and its formatted trace."""

    exc: BaseException
    trace: str


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # Failure
    aborted = Signal()
    finished = Signal()


class WorkerContext:
    """What the job function sees: the abort token and the progress signal."""

    def __init__(self, signals: WorkerSignals, cancel: CancelToken) -> None:
        self._signals = signals
        self.cancel = cancel
        self._throttle = Throttle()

    def forward(self, value: Any) -> None:
        """Emit ``value`` as it is: for reports core has throttled (a job's Meter)."""
        self._signals.progress.emit(value)

    def progress(self, value: Any, *, force: bool = False) -> None:
        """Emit ``value`` unless another went out less than core's interval ago."""
        if self._throttle.due(force):
            self._signals.progress.emit(value)

    @property
    def aborted(self) -> bool:
        return bool(self.cancel.cancelled)


class Worker(QRunnable):
    """Run ``fn(ctx, *args, **kwargs)`` on a thread pool; report through ``signals``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # we hold the reference; Qt must not delete it under us
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.signals = WorkerSignals()
        self.cancel_token = CancelToken()
        self.running = False
        self._done = threading.Event()

    def abort(self) -> None:
        """Ask the job to stop; it stops at its next check (core checks per chunk)."""
        self.cancel_token.cancel()

    @property
    def abort_requested(self) -> bool:
        return bool(self.cancel_token.cancelled)

    def start(self, pool: QThreadPool | None = None) -> None:
        self.running = True
        with _live_lock:
            _live.add(self)
        (pool or QThreadPool.globalInstance()).start(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (for shutdown and tests only)."""
        return self._done.wait(timeout)

    def run(self) -> None:
        sig = self.signals
        ctx = WorkerContext(sig, self.cancel_token)
        try:
            sig.started.emit()
            result = self._fn(ctx, *self._args, **self._kwargs)
            if inspect.isgenerator(result):
                result = self._drain(ctx, result)  # type: ignore[arg-type]
            if self.cancel_token.cancelled:
                sig.aborted.emit()
            else:
                sig.returned.emit(result)
        except Cancelled:
            sig.aborted.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure goes to ``errored``
            sig.errored.emit(Failure(exc, traceback.format_exc()))
        finally:
            self.running = False
            self._done.set()
            sig.finished.emit()

    def _drain(self, ctx: WorkerContext, gen: Generator[Any, None, Any]) -> Any:
        while True:
            if self.cancel_token.cancelled:
                gen.close()
                return None
            try:
                value = next(gen)
            except StopIteration as stop:
                return stop.value
            # Generator yields are milestones (a page of rows): never throttled.
            ctx.forward(value)
