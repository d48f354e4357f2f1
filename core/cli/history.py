"""``sealcheck history``, ``sealcheck report export|check``, and recording after a run.

Recording never changes a run's verdict: a history that cannot be written (damaged,
unreadable, locked too long) is a warning on stderr and the exit code stays the
verify's, restore's or restore test's own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import ExitCode, UsageError
from ..plumbing.atomic import AtomicWriter
from ..records import evidence, evidence_check
from ..records.history import Entry, History, HistoryError, Result, Subject
from ..records.verdict import Verdict
from .termtext import echo

log = logging.getLogger("sealcheck")


def add_history_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-history",
        action="store_true",
        help="do not record the result in the verification history",
    )


def record_history(args: argparse.Namespace, result: Result) -> None:
    """Append a finished run's result to the history unless ``--no-history``."""
    if getattr(args, "no_history", False):
        return
    if result.error is not None and result.error.kind == "Cancelled":
        return  # a cancelled run proved nothing either way
    fallback = None
    if getattr(args, "source", None):
        fallback = Subject.from_uri(args.source, getattr(args, "version_id", None))
    try:
        History.default().record(result, subject=fallback)
    except HistoryError as exc:
        _warn(f"{exc.message()}. The result was not recorded; the run itself is unaffected.")
    except Exception as exc:  # the verdict outranks a bug in the history
        log.debug("recording the history failed", exc_info=True)
        _warn(
            f"the result was not recorded in the history (internal error "
            f"{type(exc).__name__}); the run itself is unaffected."
        )


def _warn(text: str) -> None:
    echo(f"sealcheck: warning: {text}", file=sys.stderr)


def register(sub: Any) -> None:
    h = sub.add_parser("history", help="list recorded verifications, restores and restore tests")
    h.add_argument("--json", action="store_true", help="print the entries as JSON")
    h.add_argument(
        "--source",
        metavar="PATTERN",
        help="only these objects: a shell pattern on s3://bucket/key or the path "
        "(without * ? [ it matches anywhere)",
    )
    h.add_argument(
        "--failed",
        action="store_true",
        help="only FAILED verdicts (not runs that could not check the backup)",
    )
    h.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    h.set_defaults(func=cmd_history)

    r = sub.add_parser("report", help="evidence reports from the history")
    r.set_defaults(func=lambda _a: _usage(r))
    rsub = r.add_subparsers(dest="report_command", metavar="COMMAND")
    e = rsub.add_parser(
        "export",
        help="write an evidence report an auditor can file (HTML or JSON, sealed with a SHA-256)",
    )
    e.add_argument("ids", nargs="*", type=int, metavar="ID", help="history entry ids")
    e.add_argument(
        "--latest",
        action="store_true",
        help="the newest verdict (OK or FAILED) of every object version; runs that could "
        "not check the backup are left out (narrow it with --source)",
    )
    e.add_argument("--source", metavar="PATTERN", help="with --latest: only these objects")
    e.add_argument("--format", choices=("html", "json"), required=True)
    e.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    e.add_argument("--force", action="store_true", help="replace an existing file")
    e.set_defaults(func=cmd_report_export)
    c = rsub.add_parser(
        "check",
        help="check the seal of an exported evidence report (HTML or JSON), offline",
    )
    c.add_argument(
        "file", type=Path, metavar="FILE", help="an HTML or JSON report from report export"
    )
    c.set_defaults(func=cmd_report_check)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return int(ExitCode.USAGE)


def cmd_history(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    entries = History.default().entries(source=args.source, failed=args.failed, limit=args.limit)
    if args.json:
        print(json.dumps({"entries": [e.summary() for e in entries]}, indent=2))
        return 0
    if not entries:
        echo("No entries in the history" + (" match" if args.source or args.failed else ""))
        return 0
    for e in entries:
        echo(history_line(e))
    return 0


def history_line(e: Entry) -> str:
    when = e.when.replace("T", " ").replace("+00:00", " UTC")
    verdict = e.verdict.short_label  # a setup problem is "NOT CHECKED (setup)", not FAILED
    if e.verdict is Verdict.FAILED and e.failed_layer:
        verdict += f" ({e.failed_layer})"
    return f"#{e.id:<5} {when}  {e.kind.value:<12} {e.subject.label}  {verdict}"


def cmd_report_export(args: argparse.Namespace) -> int:
    entries = _selected(args)
    try:
        body = evidence.build(entries)
    except ValueError as exc:
        raise HistoryError(History.default().path, f"an entry is damaged ({exc})") from None
    data = evidence.to_html(body) if args.format == "html" else evidence.to_json(body)
    with AtomicWriter(args.output, overwrite=args.force) as f:
        f.write(data)
    n = len(entries)
    echo(f"wrote an evidence report of {n} {'entry' if n == 1 else 'entries'} to {args.output}")
    return 0


def cmd_report_check(args: argparse.Namespace) -> int:
    """Exit 0 when the seal holds, 1 when it does not (naming why), 2 when unreadable."""

    verdict = evidence_check.check(evidence_check.read(args.file))
    kind = verdict.format.upper()
    if verdict.problem is None:
        print(f"seal intact  {args.file}")
        print(f"  {kind} evidence report: {verdict.detail}")
        print(f"  SHA-256 {verdict.digest} (compare it with the copy filed elsewhere)")
        return int(ExitCode.OK)
    print(f"SEAL BROKEN  {args.file}")
    print(f"  {verdict.problem.value}: {verdict.detail} (checked as {kind})")
    return int(ExitCode.BACKUP_FAILED)


def _selected(args: argparse.Namespace) -> list[Entry]:
    if args.latest == bool(args.ids):
        raise UsageError("give history entry IDs or --latest (not both)")
    if args.source and not args.latest:
        raise UsageError("--source goes with --latest")
    hist = History.default()
    if args.latest:
        found = list(hist.latest_by_version(source=args.source, verdicts_only=True).values())
        if not found:
            raise UsageError(
                "no verdicts in the history"
                + (" match" if args.source else "")
                + " (runs that could not check a backup are not verdicts; export them by ID)"
            )
        return found
    out = []
    for i in args.ids:
        e = hist.get(i)
        if e is None:
            raise UsageError(f"there is no history entry {i} (see sealcheck history)")
        out.append(e)
    return out
