"""Verify and restore jobs: one queue, one job at a time, each on the one worker type.

The queue lives on the GUI thread. A job's secrets are gathered there when it
is queued (dialogs for a PEM passphrase or a token PIN must run on the GUI
thread); core's ``run`` wipes them when the job ends.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QObject, QThreadPool, Signal

from sealcheck.core.errors import SealcheckError
from sealcheck.core.pipeline import Job, run
from sealcheck.core.progress import CancelToken, ProgressEvent
from sealcheck.core.report import Report
from sealcheck.core.s3 import S3Object, S3Settings, make_client, parse_uri
from sealcheck.core.sources import LocalFile, Source
from sealcheck.core.unlock import Secrets

from .errortext import UserMessage, describe
from .results import Outcome, ResultStore
from .worker import Failure, Worker, WorkerContext

LONG_JOB_S = 10.0  # a job that ran longer than this ends with a desktop notification


@dataclass(frozen=True)
class JobSpec:
    """What to run. ``data`` is ``s3://bucket/key`` or a local path."""

    operation: Literal["verify", "restore"]
    data: str
    version_id: str | None = None
    wrapped: str | None = None
    wrapped_version_id: str | None = None
    s3: S3Settings = field(default_factory=S3Settings)
    destination: Path | None = None
    overwrite: bool = False
    title: str = ""

    @property
    def object_key(self) -> str:
        return self.data.split("/", 3)[3] if self.data.startswith("s3://") else self.data


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
    progress: ProgressEvent | None = None
    report: Report | None = None
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


class _Clients:
    """One boto3 client per S3 settings (boto3 clients are thread-safe; sessions are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[S3Settings, Any] = {}

    def client(self, settings: S3Settings) -> Any:
        with self._lock:
            if settings not in self._by:
                self._by[settings] = make_client(settings)
            return self._by[settings]


def open_source(
    uri: str, version_id: str | None, settings: S3Settings, clients: _Clients, cancel: CancelToken
) -> Source:
    """An S3 object version (read with the job's token, so Cancel reaches retries) or a file."""
    if uri.startswith("s3://"):
        u = parse_uri(uri)
        return S3Object(clients.client(settings), u.bucket, u.key, version_id, cancel=cancel)
    return LocalFile(Path(uri))


def run_job(ctx: WorkerContext, spec: JobSpec, secrets: Secrets, clients: _Clients) -> Report:
    """The job body, on a pool thread: open the sources, then core's one pipeline."""
    try:
        data = open_source(spec.data, spec.version_id, spec.s3, clients, ctx.cancel)
        wrapped = (
            open_source(spec.wrapped, spec.wrapped_version_id, spec.s3, clients, ctx.cancel)
            if spec.wrapped
            else None
        )
    except BaseException:
        secrets.wipe()
        raise
    job = Job(
        data=data,
        secrets=secrets,
        wrapped_key=wrapped,
        operation=spec.operation,
        destination=spec.destination,
        overwrite=spec.overwrite,
        progress=ctx.progress,
        cancel=ctx.cancel,
    )
    return run(job)


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
        self._clients = _Clients()
        self.records: list[JobRecord] = []
        self.job_fn: Callable[..., Any] = run_job  # tests may swap in a slow fake

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._pending)

    def submit(self, spec: JobSpec, secrets: Secrets) -> JobRecord:
        rec = JobRecord(next(self._ids), spec, secrets)
        self.records.append(rec)
        self._pending.append(rec)
        self.added.emit(rec)
        self._start_next()
        return rec

    def submit_failed(self, spec: JobSpec, msg: UserMessage) -> JobRecord:
        """A job that could not even start (no key, unreadable passphrase file)."""
        rec = JobRecord(next(self._ids), spec, None)
        self.records.append(rec)
        self.added.emit(rec)
        rec.started = time.monotonic()
        self._finish(rec, JobState.FAILED, msg)
        return rec

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
        rec = self._current = self._pending.popleft()
        secrets, rec.secrets = rec.secrets, None  # the job owns (and wipes) them now
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

    def _on_progress(self, rec: JobRecord, ev: Any) -> None:
        if isinstance(ev, ProgressEvent) and rec.state is JobState.RUNNING:
            rec.progress = ev
            self.changed.emit(rec)

    def _on_returned(self, rec: JobRecord, report: Report) -> None:
        rec.report = report
        if report.error is not None and report.error.kind == "Cancelled":
            self._finish(rec, JobState.CANCELLED, describe(report.error))
            return
        self._record(rec, Outcome(report, None, utc_now()))
        msg = describe(report.error) if report.error else None
        self._finish(rec, JobState.DONE if report.ok else JobState.FAILED, msg)

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


def _cancelled() -> SealcheckError:
    from sealcheck.core.errors import Cancelled

    return Cancelled()


def utc_now() -> Any:
    import datetime as _dt

    return _dt.datetime.now(_dt.UTC)
