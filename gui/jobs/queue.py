"""Verify, restore and restore-test jobs: one queue, one job at a time, on the one worker type.

The queue lives on the GUI thread. A job's secrets are gathered there when it
is queued (dialogs for a PEM passphrase or a token PIN must run on the GUI
thread); core's ``run`` wipes them when the job ends. The single queue is also
what keeps restore tests to one at a time on this machine.

A batch (``submit_many``: 700 versions at once) gathers each job's secrets when
that job starts, still on the GUI thread: queuing stays cheap, and 700 copies of
a passphrase never wait in memory. The window checks once, before queuing, that
the secrets can be gathered (preflight.py), so no question pops up mid-batch.
"""

from __future__ import annotations

import datetime as _dt
import enum
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import Cancelled, SealcheckError
from sealcheck.core.plumbing.progress import ProgressEvent
from sealcheck.core.records.report import Report
from sealcheck.core.records.restore_result import RestoreTestResult
from sealcheck.core.storage.listing import version_text

from ..errortext import UserMessage, describe
from ..state.results import Outcome, ResultStore
from .run import Clients, run_job
from .spec import Baseline, JobSpec
from .worker import Failure, Worker

LONG_JOB_S = 10.0  # a job that ran longer than this ends with a desktop notification


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class JobRecord:
    id: int
    spec: JobSpec
    secrets: Secrets | None
    state: JobState = JobState.QUEUED
    # A batch's job: its secrets are gathered when it starts (see the module's doc).
    secrets_for: Callable[[JobSpec], Secrets] | None = None
    progress: ProgressEvent | None = None
    report: Report | None = None
    result: RestoreTestResult | None = None  # a restore test's full result
    message: UserMessage | None = None
    trace: str | None = None
    started: float | None = None
    ended: float | None = None
    worker: Worker | None = None

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


class JobQueue(QObject):
    """One queue; one job runs at a time; Cancel works on queued and running jobs."""

    added = Signal(object)  # JobRecord
    changed = Signal(object)  # JobRecord (state or progress)
    ended = Signal(object)  # JobRecord, once, when it leaves the queue for good
    unexpected = Signal(object)  # Failure: a bug, for the exception dialog

    def __init__(self, results: ResultStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._results = results
        self._pending: deque[JobRecord] = deque()
        self._current: JobRecord | None = None
        self._ids = itertools.count(1)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._clients = Clients()
        self.records: list[JobRecord] = []
        self.job_fn: Callable[..., Any] = run_job  # tests may swap in a slow fake

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._pending)

    @property
    def current(self) -> JobRecord | None:
        """The running job (one at a time), if any."""
        return self._current

    def pending(self) -> tuple[JobRecord, ...]:
        """The queued jobs, in the order they will run."""
        return tuple(self._pending)

    def submit(self, spec: JobSpec, secrets: Secrets) -> JobRecord:
        rec = JobRecord(next(self._ids), spec, secrets)
        self.records.append(rec)
        self._pending.append(rec)
        self.added.emit(rec)
        self._start_next()
        return rec

    def submit_many(
        self, specs: list[JobSpec], secrets_for: Callable[[JobSpec], Secrets]
    ) -> list[JobRecord]:
        """Queue a batch; each job's secrets are gathered by ``secrets_for`` (on this
        thread) when it starts. A failure there ends that job as a setup problem."""
        out = []
        for spec in specs:
            rec = JobRecord(next(self._ids), spec, None, secrets_for=secrets_for)
            self.records.append(rec)
            self._pending.append(rec)
            out.append(rec)
            self.added.emit(rec)
        self._start_next()
        return out

    def submit_failed(self, spec: JobSpec, msg: UserMessage) -> JobRecord:
        """A job that could not even start (no key, unreadable passphrase file)."""
        rec = JobRecord(next(self._ids), spec, None)
        self.records.append(rec)
        self.added.emit(rec)
        rec.started = time.monotonic()
        self._finish(rec, JobState.FAILED, msg)
        return rec

    def clear_finished(self) -> list[JobRecord]:
        """Forget the jobs that have ended (their results stay in the history)."""
        gone = [r for r in self.records if r.state in _ENDED]
        self.records = [r for r in self.records if r.state not in _ENDED]
        return gone

    def cancel(self, rec: JobRecord) -> None:
        if rec.state is JobState.QUEUED:
            self._pending.remove(rec)
            if rec.secrets is not None:
                rec.secrets.wipe()
            rec.secrets = None
            self._finish(rec, JobState.CANCELLED, describe(_cancelled()))
        elif rec.state is JobState.RUNNING and rec.worker is not None:
            rec.worker.abort()

    def cancel_all(self) -> None:
        for rec in list(self._pending):
            self.cancel(rec)
        if self._current is not None:
            self.cancel(self._current)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel everything and wait for the running job (the window is closing)."""
        self.cancel_all()
        worker = self._current.worker if self._current else None
        ok = worker.wait(timeout) if worker else True
        return self._pool.waitForDone(int(timeout * 1000)) and ok

    def _start_next(self) -> None:
        if self._current is not None or not self._pending:
            return
        rec = self._pending.popleft()
        if self._gathered(rec):
            self._start(rec)
        else:
            # The next one on a later turn: a batch whose key went away fails one job
            # per turn instead of stalling the window for all of them.
            QTimer.singleShot(0, self._start_next)

    def _gathered(self, rec: JobRecord) -> bool:
        """A batch job's secrets, gathered now; False when that failed (the job has
        then ended as a setup problem, as a single job does in the window's submit)."""
        if rec.secrets is not None or rec.secrets_for is None:
            return True
        try:
            rec.secrets = rec.secrets_for(rec.spec)
        except SealcheckError as exc:
            msg = describe(exc)
            rec.started = time.monotonic()
            self._record(rec, Outcome(None, msg, utc_now()))
            self._finish(rec, JobState.FAILED, msg)
            return False
        return True

    def _start(self, rec: JobRecord) -> None:
        self._current = rec
        secrets, rec.secrets = rec.secrets, None  # the job owns (and wipes) them now
        rec.spec = self._with_baseline(rec.spec)
        w = Worker(self.job_fn, rec.spec, secrets, self._clients)
        rec.worker = w
        rec.state = JobState.RUNNING
        rec.started = time.monotonic()
        w.signals.progress.connect(lambda ev, r=rec: self._on_progress(r, ev))
        w.signals.returned.connect(lambda rep, r=rec: self._on_returned(r, rep))
        w.signals.errored.connect(lambda f, r=rec: self._on_errored(r, f))
        w.signals.aborted.connect(
            lambda r=rec: self._finish(r, JobState.CANCELLED, describe(_cancelled()))
        )
        w.signals.finished.connect(lambda r=rec: self._on_worker_finished(r))
        self.changed.emit(rec)
        w.start(self._pool)

    def _with_baseline(self, spec: JobSpec) -> JobSpec:
        """The latest earlier restore-test result among ``compare_with``, if any."""
        rt = spec.restore_test
        if spec.operation != "restore-test" or rt is None:
            return spec
        for key in rt.compare_with:
            prev = self._results.last_verdict(key)  # a run that could not check is no baseline
            if prev is not None and prev.restore_test is not None:
                when = prev.when.astimezone().strftime("%Y-%m-%d %H:%M")
                label = f"version {version_text(key[1])}, tested {when}"
                return replace(
                    spec, restore_test=replace(rt, baseline=Baseline(label, prev.restore_test))
                )
        return spec

    def _on_progress(self, rec: JobRecord, ev: Any) -> None:
        if isinstance(ev, ProgressEvent) and rec.state is JobState.RUNNING:
            rec.progress = ev
            self.changed.emit(rec)

    def _on_returned(self, rec: JobRecord, value: Report | RestoreTestResult) -> None:
        if isinstance(value, RestoreTestResult):
            self._on_restore_tested(rec, value)
            return
        report = value
        rec.report = report
        if report.error is not None and report.error.kind == "Cancelled":
            self._finish(rec, JobState.CANCELLED, describe(report.error))
            return
        self._record(rec, Outcome(report, None, utc_now()))
        msg = describe(report.error, report) if report.error else None
        self._finish(rec, JobState.DONE if report.ok else JobState.FAILED, msg)

    def _on_restore_tested(self, rec: JobRecord, result: RestoreTestResult) -> None:
        rec.result, rec.report = result, result.verification
        if result.error is not None and result.error.kind == "Cancelled":
            self._finish(rec, JobState.CANCELLED, describe(result.error))
            return
        # The restore test's own verdict (a load error, checks that do not match) is
        # the outcome's message; the verification report's layers stay as evidence.
        msg = describe(result.error) if result.error is not None else None
        self._record(rec, Outcome(result.verification, msg, utc_now(), restore_test=result))
        self._finish(rec, JobState.DONE if result.ok else JobState.FAILED, msg)

    def _on_errored(self, rec: JobRecord, failure: Failure) -> None:
        msg = describe(failure.exc)
        rec.trace = failure.trace
        if not isinstance(failure.exc, SealcheckError):
            self.unexpected.emit(failure)
        self._record(rec, Outcome(None, msg, utc_now()))
        self._finish(rec, JobState.FAILED, msg)

    def _record(self, rec: JobRecord, outcome: Outcome) -> None:
        self._results.put((rec.spec.object_key, rec.spec.version_id), outcome)

    def _finish(self, rec: JobRecord, state: JobState, msg: UserMessage | None) -> None:
        if rec.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
            return
        rec.state, rec.message = state, msg
        rec.ended = time.monotonic()
        self.changed.emit(rec)
        self.ended.emit(rec)

    def _on_worker_finished(self, rec: JobRecord) -> None:
        if rec.state is JobState.RUNNING:  # finished without a verdict: treat as cancelled
            self._finish(rec, JobState.CANCELLED, describe(_cancelled()))
        rec.worker = None
        if self._current is rec:
            self._current = None
        self._start_next()


_ENDED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


def _cancelled() -> SealcheckError:
    return Cancelled()


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)
