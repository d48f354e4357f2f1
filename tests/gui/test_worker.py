"""The one worker type and its signals."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThreadPool

from sealcheck.core.errors import Cancelled, WrongKey
from sealcheck.gui.jobs.worker import Failure, Worker, WorkerContext


@pytest.fixture
def pool(qapp):
    p = QThreadPool()
    yield p
    p.waitForDone(5000)
    p.deleteLater()


def _record(w: Worker) -> dict[str, list]:
    seen: dict[str, list] = {
        k: [] for k in ("started", "progress", "returned", "errored", "aborted", "finished")
    }
    w.signals.started.connect(lambda: seen["started"].append(threading.current_thread().name))
    w.signals.progress.connect(lambda v: seen["progress"].append(v))
    w.signals.returned.connect(lambda v: seen["returned"].append(v))
    w.signals.errored.connect(lambda f: seen["errored"].append(f))
    w.signals.aborted.connect(lambda: seen["aborted"].append(True))
    w.signals.finished.connect(lambda: seen["finished"].append(True))
    return seen


def test_function_returns_value_on_gui_thread(qtbot, pool):
    gui_thread = threading.current_thread().name
    ran_on: list[str] = []

    def job(ctx: WorkerContext, x: int) -> int:
        ran_on.append(threading.current_thread().name)
        ctx.progress("half", force=True)
        return x * 2

    w = Worker(job, 21)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
    assert seen["returned"] == [42]
    assert seen["progress"] == ["half"]
    assert seen["started"] == [gui_thread]  # delivered on the GUI thread
    assert ran_on and ran_on[0] != gui_thread  # ran on a pool thread
    assert not seen["errored"] and not seen["aborted"]


def test_generator_yields_progress_and_returns(qtbot, pool):
    def job(ctx: WorkerContext):
        yield from range(3)
        return "done"

    w = Worker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
    assert seen["progress"] == [0, 1, 2]
    assert seen["returned"] == ["done"]


def test_abort_between_yields(qtbot, pool):
    gate = threading.Event()

    def job(ctx: WorkerContext):
        yield 1
        gate.wait(5)
        yield 2
        yield 3
        return "not reached"

    w = Worker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
        qtbot.waitUntil(lambda: seen["progress"] == [1], timeout=5000)
        w.abort()
        gate.set()
    assert seen["aborted"] == [True]
    assert not seen["returned"]
    assert seen["progress"][:1] == [1] and 3 not in seen["progress"]


def test_core_cancel_token_and_cancelled_error(qtbot, pool):
    def job(ctx: WorkerContext) -> None:
        while True:
            ctx.cancel.check()  # what core does per chunk
            time.sleep(0.01)

    w = Worker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
        qtbot.wait(50)
        t0 = time.monotonic()
        w.abort()
    assert time.monotonic() - t0 < 2.0
    assert seen["aborted"] == [True]
    assert isinstance(Cancelled(), Exception)


def test_errors_carry_the_exception_and_trace(qtbot, pool):
    def job(ctx: WorkerContext) -> None:
        raise WrongKey("test", obj="s3://b/k")

    w = Worker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
    (f,) = seen["errored"]
    assert isinstance(f, Failure) and isinstance(f.exc, WrongKey)
    assert "Traceback" in f.trace
    assert seen["finished"] == [True]


def test_progress_is_throttled(qtbot, pool):
    def job(ctx: WorkerContext) -> None:
        for i in range(10_000):
            ctx.progress(i)
        time.sleep(0.25)
        ctx.progress("last")

    w = Worker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.signals.finished, timeout=5000, raising=True):
        w.start(pool)
    assert 1 <= len(seen["progress"]) <= 5
    assert seen["progress"][-1] == "last"
