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

import enum
import itertools
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import Cancelled, SealcheckError
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.plumbing.progress import ProgressEvent
from sealcheck.core.records.report import Report
from sealcheck.core.restoretest import RestoreTestOptions, RestoreTestResult, restore_test
from sealcheck.core.storage.listing import version_text
from sealcheck.core.storage.locate import ListedVersion, Locator
from sealcheck.core.storage.s3 import S3Settings, make_client

from ..errortext import UserMessage, describe
from ..state.results import Outcome, ResultStore, VersionKey
from .worker import Failure, Worker, WorkerContext

LONG_JOB_S = 10.0  # a job that ran longer than this ends with a desktop notification

Operation = Literal["verify", "restore", "restore-test"]


@dataclass(frozen=True)
class Baseline:
    """An earlier restore-test result the new one is compared with (drift)."""

    label: str  # how the Details pane names it: "version 3HL4kqt…, tested 2026-11-27 03:00"
    result: RestoreTestResult


@dataclass(frozen=True)
class RestoreTestSpec:
    """How to run a restore test.

    Invariant: a DSN and a password *file path* only. The password is read by core
    when the test connects, never kept here, in settings or in a log.
    """

    engine: str = "auto"  # auto (from the dump's header) | mariadb | mysql | postgres
    server: str | None = None  # DSN of an existing local server; None: a throwaway one
    password_file: Path | None = None
    max_seconds: float = 6 * 3600.0
    # Where drift is measured from: the versions of the same backup whose last result
    # counts as "the previous one", preferred first. Resolved when the job starts, so a
    # version queued behind another is compared with that one's fresh result.
    compare_with: tuple[VersionKey, ...] = ()
    baseline: Baseline | None = None  # set by the queue at start

    @property
    def mode(self) -> str:
        return "server" if self.server else "throwaway"

    def options(self, baseline_file: Path | None) -> RestoreTestOptions:
        # A MySQL-format dump loads into MariaDB (core's throwaway server), as the CLI does.
        engine = "mariadb" if self.engine == "mysql" else self.engine
        return RestoreTestOptions(
            engine=engine,
            server=self.server or None,
            server_password_file=self.password_file if self.server else None,
            max_seconds=self.max_seconds,
            baseline=baseline_file,
        )


@dataclass(frozen=True)
class JobSpec:
    """What to run: a version as the listing produced it. Core opens exactly that version
    and the wrapped-key version paired with it (storage.locate), nothing re-listed."""

    operation: Operation
    version: ListedVersion
    s3: S3Settings = field(default_factory=S3Settings)
    destination: Path | None = None
    overwrite: bool = False
    title: str = ""
    restore_test: RestoreTestSpec | None = None  # operation "restore-test" (default options)

    @property
    def object_key(self) -> str:
        key: str = self.version.data.key
        return key

    @property
    def version_id(self) -> str | None:
        vid: str | None = self.version.data.version_id
        return vid


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


def run_job(
    ctx: WorkerContext, spec: JobSpec, secrets: Secrets, clients: _Clients
) -> Report | RestoreTestResult:
    """The job body, on a pool thread: open the sources, then core's one pipeline
    (inside core's restore test for a restore-test job)."""
    # A local file needs no client; an S3 version shares this settings' client. The
    # job's token goes with it, so Cancel reaches S3 retries.
    client = clients.client(spec.s3) if spec.version.bucket is not None else None
    try:
        data, wrapped = Locator(spec.s3, ctx.cancel, client=client).open_listed(spec.version)
    except BaseException:
        secrets.wipe()
        raise
    job = Job(
        data=data,
        secrets=secrets,
        wrapped_key=wrapped,
        operation="restore" if spec.operation == "restore" else "verify",
        destination=spec.destination,
        overwrite=spec.overwrite,
        progress=_StageForcing(ctx),
        cancel=ctx.cancel,
    )
    if spec.operation == "restore-test":
        try:
            return _restore_test(job, spec.restore_test or RestoreTestSpec())
        finally:
            secrets.wipe()  # core's run wipes them too, but the test may stop before it runs
    return run(job)


class _StageForcing:
    """Progress to the worker, throttled, except that a change of stage always gets
    through (the last "load" event and the "checks" one may come 1 ms apart)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self._stage: str | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        changed = ev.stage != self._stage
        self._stage = ev.stage
        self._ctx.progress(ev, force=changed)


def _restore_test(job: Job, rt: RestoreTestSpec) -> RestoreTestResult:
    if rt.baseline is None:
        return restore_test(job, rt.options(None))
    # Core reads the baseline as a saved result (the CLI's --baseline): hand it a private
    # copy that lives only as long as the test.
    with tempfile.TemporaryDirectory(prefix="sealcheck-baseline-") as tmp:
        path = Path(tmp) / "baseline.json"
        path.write_text(rt.baseline.result.to_json())
        result = restore_test(job, rt.options(path))
    if result.drift is not None:
        result = replace(result, drift=replace(result.drift, baseline=rt.baseline.label))
    return result


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


def utc_now() -> Any:
    import datetime as _dt

    return _dt.datetime.now(_dt.UTC)
