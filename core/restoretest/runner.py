"""The restore test, start to end: server, streaming load, checks, clean-up, result."""

from __future__ import annotations

import contextlib
import datetime as _dt
import time
from dataclasses import replace

from ..errors import SealcheckError, UsageError
from ..pipeline.job import Job
from ..pipeline.run import run
from ..plumbing.progress import ProgressEvent
from ..records.report import ErrorInfo, Report
from ..records.restore_result import LoadError, RestoreTestResult
from .archiveload import archive_kind
from .confine import refused_by_privilege
from .drift import compare, load_baseline
from .errors import ChecksFailed, DumpCutShort, DumpRefused, LoadFailed, PreparedDataUnreadable
from .loader import Deadline, Limits, LimitToken, StreamingLoader
from .procs import StateDir, default_state_dir
from .scan.common import ScannerBase, ScanSummary, StatementTooLarge
from .scan.mysql import MySQLScanner
from .scan.pg import PgScanner
from .session import ENGINES, Plaintext, RestoreTestOptions, Session, looks_mysql, looks_pg
from .target import CheckOutcome

__all__ = ["ENGINES", "RestoreTestOptions", "restore_test"]  # options: see session


def restore_test(job: Job, options: RestoreTestOptions) -> RestoreTestResult:
    if options.baseline is not None:
        load_baseline(options.baseline)  # a bad file: a usage error now, not after the test
    if options.engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}")
    if not options.max_seconds > 0:
        raise UsageError(f"the wall-clock limit must be positive, not {options.max_seconds}")
    if options.max_disk_bytes is not None and options.max_disk_bytes <= 0:
        raise UsageError(f"the disk limit must be positive, not {options.max_disk_bytes}")
    t0 = time.monotonic()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    state = StateDir(options.state_dir or default_state_dir())
    deadline = Deadline(options.max_seconds)
    session = Session(options, state, job, deadline)
    limits = Limits(options.max_seconds, options.max_disk_bytes)
    loader = StreamingLoader(session.prepare, job.cancel, limits, deadline)
    job.extra_sink = Plaintext(loader, session)
    # A physical backup (xbstream, or a tar of its folder): its files go into the
    # sandbox as the pipeline verifies them, and the server starts on them afterwards.
    job.physical_into = session.physical_folder
    if job.max_disk_bytes is None:  # also bounds the system tablespace's page check
        job.max_disk_bytes = options.max_disk_bytes
    job.operation = "verify"
    report: Report | None = None
    outcome: CheckOutcome | None = None
    error: SealcheckError | None = None
    load_error: LoadError | None = None
    checks_s: float | None = None
    cleanup: list[str] = []
    left: list[str] = []
    try:
        report = run(job)
        if session.physical is not None:
            if report.ok:
                outcome, checks_s = _physical(session, report, job, deadline, t0)
                error = _physical_verdict(outcome)
        else:
            outcome, error, load_error, checks_s = _logical(
                session, loader, report, job, deadline, t0
            )
    except SealcheckError as exc:
        error = exc
    finally:
        loader.close()
        cleanup += session.close()
        left += session.target.left if session.target is not None else []
    res = _result(
        session, loader, report, outcome, error, load_error, checks_s, cleanup, started, t0, options
    )
    # Whether the throwaway server, its folder and (on --server) the scratch database
    # and account are gone, as checked after the clean-up: the record says so.
    return replace(res, cleanup_status="left: " + "; ".join(left) if left else "cleaned")


def _logical(
    session: Session,
    loader: StreamingLoader,
    report: Report,
    job: Job,
    deadline: Deadline,
    t0: float,
) -> tuple[CheckOutcome | None, SealcheckError | None, LoadError | None, float | None]:
    """A dump streamed into the server: what the load got to, then the checks."""
    options = session.options
    if report.error is not None and loader.scanner is not None and not loader.finished:
        # The stream stopped early (cut, corrupt, cancelled): what did the load get to?
        loader.settle()
    elif report.error is not None and report.error.kind in _CUT_KINDS:
        # A dump cut before the client started (under HEAD_BYTES): no server is
        # needed to name the statement it stops in.
        loader.scanner = _offline_scan(loader.unstarted_head, options.engine)
    load_error, error = _load_verdict(loader, report, session.engine or options.engine)
    if error is not None or not report.ok or session.target is None:
        return None, error, load_error, None
    tc = time.monotonic()
    job.progress(_stage_event("checks", report, t0))
    # The wall-clock limit runs on through the checks (checked between tables).
    checks_cancel = LimitToken(job.cancel, deadline, "while checking the restored data")
    checks_cancel.check()
    assert loader.scanner is not None
    counted = _archive_rows(report, loader.scanner.summary)
    outcome = session.target.check(loader.scanner.summary, checks_cancel)
    outcome.problems += counted
    return outcome, _check_verdict(outcome), load_error, round(time.monotonic() - tc, 3)


def _physical(
    session: Session, report: Report, job: Job, deadline: Deadline, t0: float
) -> tuple[CheckOutcome, float]:
    """Every layer verified and the files in the sandbox: prepare, start, check."""
    phys = session.physical
    assert phys is not None
    job.progress(_stage_event("prepare", report, t0))
    phys.start(LimitToken(job.cancel, deadline, "while preparing and starting"), deadline.left)
    tc = time.monotonic()
    job.progress(_stage_event("checks", report, t0))
    outcome, session.summary = phys.check(
        LimitToken(job.cancel, deadline, "while checking the restored data")
    )
    return outcome, round(time.monotonic() - tc, 3)


_CUT_KINDS = ("IncompleteDump", "TruncatedBackup")


def _offline_scan(head: bytes, engine: str) -> ScannerBase | None:
    """Scan a short, cut dump as its client would, without a server (hooks off)."""
    if not head.strip() or archive_kind(head) is not None:
        return None  # nothing, or a pg_dump archive (its own check named what is cut)
    pg = engine == "postgres" or (engine == "auto" and looks_pg(head) and not looks_mysql(head))
    scanner: ScannerBase = PgScanner() if pg else MySQLScanner("restoretest")
    with contextlib.suppress(StatementTooLarge):
        scanner.feed(head)
        scanner.finish()
    return scanner


def _engine_name(engine: str) -> str:
    return "postgresql" if engine == "postgres" else engine


def _load_verdict(
    loader: StreamingLoader, report: Report, engine: str
) -> tuple[LoadError | None, SealcheckError | None]:
    scanner = loader.scanner
    cut = scanner.summary.unterminated if scanner is not None else None
    # A cut statement explains a cut dump; it says nothing about a cancelled run, a
    # wrong key or a corrupt envelope, whose own error stands.
    if report.error is not None and report.error.kind not in _CUT_KINDS:
        return None, None
    if cut is not None:
        err = LoadError(f"the dump ends inside a statement (line {cut.line})", cut.line, cut.head)
        exc: SealcheckError = DumpCutShort(f"at line {cut.line}: {cut.head}")
        if report.error is not None:
            exc = DumpCutShort(
                f"{report.error.message}; the load stopped inside the statement "
                f"at line {cut.line}: {cut.head}"
            )
        return err, exc
    if report.error is not None:
        return None, None  # the report's own error stands (layer, exit code)
    le = loader.load_error()
    if le is not None:
        where = f" at line {le.line}" if le.line is not None else ""
        stmt = f" in: {le.statement}" if le.statement else ""
        if refused_by_privilege(engine, le.code, le.message):
            tried = _tried_at(loader.scanner, le.line)
            return le, LoadFailed(
                f"the server refused the statement{where} for lack of privilege "
                f"({le.message}): the dump is loaded by an account that can reach nothing "
                f"but its own database, and {tried}{stmt}"
            )
        return le, LoadFailed(f"{le.message}{where}{stmt}")
    return None, None


def _tried_at(scanner: ScannerBase | None, line: int | None) -> str:
    """What the scanner saw the refused statement try, in words."""
    kinds = [
        h.kind
        for h in (scanner.summary.hostile if scanner is not None else [])
        if line is not None and h.line == line
    ]
    if kinds:
        return "the dump tried: " + ", ".join(dict.fromkeys(kinds))
    return (
        "this statement needs more (a superuser-only feature, another database, or an "
        "account's privileges)"
    )


def _refused_before(
    error: SealcheckError | None, summary: ScanSummary | None
) -> list[dict[str, object]]:
    """A statement refused before it ran, when no pattern recorded it already."""
    if not isinstance(error, DumpRefused) or not error.tried:
        return []
    if summary is not None and any(h.line == error.line for h in summary.hostile):
        return []
    return [{"line": error.line, "kind": f"refused: {error.tried}", "statement": error.statement}]


def _refusal(load_error: LoadError | None, engine: str) -> dict[str, object] | None:
    """The server's refusal as one of the things the dump tried (for the result)."""
    if load_error is None or not refused_by_privilege(engine, load_error.code, load_error.message):
        return None
    return {
        "line": load_error.line,
        "kind": f"refused by the server: {load_error.message[:200]}",
        "statement": load_error.statement or "",
    }


def _archive_rows(report: Report, summary: ScanSummary) -> list[str]:
    """A pg_dump archive: each table must come back with the rows its data block holds
    (counted by the payload check as it read the archive), and pg_restore's script must
    have carried every one of them. Returns the tables where the two differ."""
    payload = report.layer("payload")
    archives = payload.details.get("archives") if payload is not None else None
    if not isinstance(archives, list) or len(archives) != 1:
        return []
    counts = archives[0].get("table_rows") or {}
    problems = []
    for (schema, name), tally in summary.tables.items():
        want = counts.get(f"{schema}.{name}")
        if not isinstance(want, int):
            continue
        if tally.rows != want:
            problems.append(
                f"{schema}.{name}: the archive's data holds {want} rows, pg_restore's "
                f"script {tally.rows}"
            )
        tally.rows = want
    return problems


def _check_verdict(outcome: CheckOutcome) -> SealcheckError | None:
    bad = [f"{t.name}: {t.note}" for t in outcome.tables if not t.ok]
    bad += [f"missing {m}" for m in outcome.missing]
    bad += outcome.problems
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        return ChecksFailed("; ".join(bad[:5]) + more)
    return None


def _physical_verdict(outcome: CheckOutcome) -> SealcheckError | None:
    """A table the started server could not read is that table's failure: the verdict
    names it with the server's error and says what the other tables proved."""
    unread = outcome.unreadable
    if not unread:
        return _check_verdict(outcome)
    whole = [t for t in outcome.tables if t.ok]
    names = [f"{name} ({why})" for name, why in list(unread.items())[:5]]
    more = f" and {len(unread) - 5} more" if len(unread) > 5 else ""
    rest = _check_verdict(
        replace(outcome, tables=[t for t in outcome.tables if t.name not in unread])
    )
    return PreparedDataUnreadable(
        f"{len(unread)} of {len(outcome.tables)} tables could not be read: "
        + "; ".join(names)
        + more
        + ". Every layer of the backup verified, mariabackup --prepare applied its redo "
        f"log and the server started on it; the other {len(whole)} tables were read "
        "whole (rows counted, CHECKSUM TABLE taken)"
        + (f". Also: {rest.detail}" if rest is not None else "")
    )


def _stage_event(stage: str, report: Report, t0: float) -> ProgressEvent:
    # The pipeline's meter has finished with the load; the checks (and a physical
    # backup's prepare and start) run after it, with no byte count and so no ETA. One
    # event tells a UI the job is in its last stages.
    size = report.source.size if report.source is not None else 0
    return ProgressEvent(stage, size, size, 0.0, None, time.monotonic() - t0, ())


def _result(
    session: Session,
    loader: StreamingLoader,
    report: Report | None,
    outcome: CheckOutcome | None,
    error: SealcheckError | None,
    load_error: LoadError | None,
    checks_s: float | None,
    cleanup: list[str],
    started: str,
    t0: float,
    options: RestoreTestOptions,
) -> RestoreTestResult:
    target = session.target
    summary = loader.scanner.summary if loader.scanner is not None else session.summary
    info = (
        ErrorInfo.from_exc(error)
        if error is not None
        else (report.error if report is not None else None)
    )
    warnings = loader.warnings()
    if report is not None:
        warnings += list(report.warnings)
    o = outcome or CheckOutcome()
    ok = info is None and outcome is not None
    dump: dict[str, object] = dict(session.producer)
    load_seconds = loader.load_seconds
    if session.physical is not None:
        dump = session.physical.details()
        t = session.physical.times
        if t.start_s is not None:  # extracted, prepared, started: the load's equivalent
            load_seconds = round((t.extract_s or 0) + (t.prepare_s or 0) + t.start_s, 3)
    elif summary is not None:
        dump.update(
            bytes=summary.bytes, statements=summary.statements, sandbox_line=summary.sandbox_line
        )
    res = RestoreTestResult(
        ok=ok,
        engine=_engine_name(
            target.engine if target is not None else session.engine or options.engine
        ),
        server=target.server if target is not None else "",
        mode=target.mode if target is not None else ("server" if options.server else "throwaway"),
        databases=tuple(summary.schemas) if summary is not None else (),
        tables=tuple(o.tables),
        views=tuple(o.views),
        triggers=tuple(o.triggers),
        routines=tuple(o.routines),
        events=tuple(o.events),
        missing=tuple(o.missing),
        load_seconds=load_seconds,
        checks_seconds=checks_s,
        total_seconds=round(time.monotonic() - t0, 3),
        started_at=started,
        warnings=tuple(warnings),
        hostile=tuple(
            [
                {"line": h.line, "kind": h.kind, "statement": h.statement}
                for h in (summary.hostile if summary is not None else [])
            ]
            + [r for r in [_refusal(load_error, session.engine or options.engine)] if r]
            + _refused_before(error, summary)
        ),
        roles_created=tuple(target.roles_created) if target is not None else (),
        rewritten=tuple(summary.rewritten) if summary is not None else (),
        error=info,
        load_error=load_error,
        verification=report,
        dump=dump,
        cleanup=tuple(cleanup),
    )
    if options.baseline is not None:
        res = replace(res, drift=compare(res, options.baseline))
    return res
