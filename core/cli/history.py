"""``sealcheck history`` and ``sealcheck report export|check|verify``.

Recording after a run is record.py's: a verify needs none of the evidence reports.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ExitCode, UsageError
from ..keys.signing import CustodySigner
from ..records import evidence_check, evidence_verify, report_file, sections, timestamp
from ..records.chain import Signer
from ..records.history import Entry, History, Kind
from ..records.verdict import Verdict
from .record import warn
from .termtext import echo


def evidence_signer() -> Signer | None:
    """The evidence signing key from custody (made on first use), or None with a
    warning: a report is still written, sealed but unsigned, and says so."""
    custody = CustodySigner()
    signer = custody()
    if signer is None:
        warn(f"the report is NOT signed: {custody.why}")
    elif custody.created:
        echo(
            f"Created the evidence signing key (Ed25519, {signer.fingerprint}); "
            "publish its public key: sealcheck key export-public --signing",
            file=sys.stderr,
        )
    return signer


def write_report(
    history: History,
    ids: Sequence[int],
    fmt: str,
    output: Path,
    force: bool,
    tsa: str | None = None,
    *,
    sections: dict[str, Any] | None = None,
) -> str | None:
    """Core's signed report of history entries ``ids`` (in that order) and ``sections``
    (report_file: the records streamed, the file written atomically), signed with the
    evidence key from custody, its chain head timestamped when ``tsa`` names an RFC 3161
    authority; the signing key's fingerprint, or None when unsigned."""
    stamp = None if tsa is None else functools.partial(_timestamp, url=tsa)
    done = report_file.write(
        history,
        ids,
        fmt,
        output,
        signer=evidence_signer,
        sections=sections,
        overwrite=force,
        stamp=stamp,
    )
    return done.signed_by


def check_tsa(url: str | None) -> None:
    """Up front, before any work: only an http(s) URL names a TSA."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"--tsa {url}: give the TSA's http:// or https:// URL")


def _timestamp(signed: dict[str, Any], url: str) -> None:
    """Adds the chain head's RFC 3161 token; an unreachable TSA is a setup problem:
    the report is written all the same and says it is not timestamped."""
    head = signed["chain"]["statement"]["head"]["hash"]
    ts = timestamp.stamp(url, head)
    signed["chain"]["timestamp"] = ts
    if ts["status"] == timestamp.NOT_TIMESTAMPED:
        warn(f"the report is NOT timestamped: {ts['reason']}")
    else:
        echo(f"  timestamped by {url} at {ts['gen_time']}", file=sys.stderr)


def cmd_history(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    entries = History.default().entries(
        source=args.source, failed=args.failed, limit=args.limit, rotations=True
    )
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
    if e.kind is Kind.ROTATION:
        verdict = sections.rotation_summary(json.loads(e.result_json))
    return f"#{e.id:<5} {when}  {e.kind.value:<12} {e.subject.label}  {verdict}"


def cmd_report_export(args: argparse.Namespace) -> int:
    check_tsa(args.tsa)
    history = History.default()
    ids = _selected(args, history)
    signed_by = write_report(history, ids, args.format, args.output, args.force, args.tsa)
    n = len(ids)
    echo(f"wrote an evidence report of {n} {'entry' if n == 1 else 'entries'} to {args.output}")
    echo(f"  signed by {signed_by}" if signed_by else "  NOT signed")
    return 0


def cmd_report_verify(args: argparse.Namespace) -> int:
    """Exit 0 when signature and chain hold, 1 naming what was altered, 2 unreadable."""
    # Deliberately lazy: report_formats loads reportlab (PDF), ~0.3 s that the other
    # history commands do not need.
    from ..records import report_formats

    data = evidence_check.read(args.file)
    pem = tsa_cert = None
    if args.public_key is not None:
        pem = evidence_check.read(args.public_key)
    if args.tsa_cert is not None:
        tsa_cert = evidence_check.read(args.tsa_cert)
    try:
        out = evidence_verify.verify(data, pem, report_formats.RENDERERS, tsa_cert)
    except evidence_verify.NotAReport as exc:
        raise evidence_check.ReportUnreadable(str(exc), obj=str(args.file)) from None
    head = out.head or {}
    if out.ok:
        echo(f"report intact  {args.file}")
        echo(f"  {out.format.upper()}: {out.records} records, hash chain to head #{head.get('id')}")
        echo(f"  chain head {head.get('hash')}")
        echo(f"  signed by Ed25519 key {out.signer}")
        if out.timestamped:
            echo(f"  chain head timestamped (RFC 3161) at {out.timestamped}")
    else:
        echo(f"REPORT ALTERED  {args.file}")
        for p in out.problems:
            echo(f"  {p}")
    for n in out.notes:
        echo(f"  note: {n}")
    return int(ExitCode.OK if out.ok else ExitCode.BACKUP_FAILED)


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


def _selected(args: argparse.Namespace, hist: History) -> list[int]:
    """The ids to report on, in the report's order (their records are read as it is
    written: ``--latest`` over 100,000 versions holds their ids, not their records)."""
    if args.latest == bool(args.ids):
        raise UsageError("give history entry IDs or --latest (not both)")
    if args.source and not args.latest:
        raise UsageError("--source goes with --latest")
    if args.latest:
        found = hist.latest_ids(source=args.source, verdicts_only=True)
        if not found:
            raise UsageError(
                "no verdicts in the history"
                + (" match" if args.source else "")
                + " (runs that could not check a backup are not verdicts; export them by ID)"
            )
        return found
    missing = hist.missing_ids(args.ids)
    if missing:
        raise UsageError(f"there is no history entry {missing[0]} (see sealcheck history)")
    # An entry named twice is reported once: a report holds each record once, and
    # ``report verify`` refuses one that repeats a record.
    return list(dict.fromkeys(args.ids))
