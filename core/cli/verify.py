"""``sealcheck verify`` and ``sealcheck restore``: run one backup through the pipeline."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from ..pipeline.job import Job
from ..pipeline.run import run
from ..records.report import Report, Status
from ..records.verdict import Verdict
from .common import run_backup_command
from .termtext import echo


def _run_job(args: argparse.Namespace, operation: str) -> int:
    def work(job: Job) -> Report:
        return run(
            replace(
                job,
                operation="restore" if operation == "restore" else "verify",
                destination=getattr(args, "output", None),
                overwrite=getattr(args, "force", False),
                max_output_bytes=args.max_output,
                strict=args.strict,
                extract=getattr(args, "extract", False),
                max_disk_bytes=getattr(args, "max_disk", None),
            )
        )

    return run_backup_command(args, work, print_report)


def cmd_verify(args: argparse.Namespace) -> int:
    return _run_job(args, "verify")


def cmd_restore(args: argparse.Namespace) -> int:
    return _run_job(args, "restore")


_MARK = {
    Status.OK: "ok",
    Status.FAILED: "FAILED",
    Status.WARNING: "warning",
    Status.SKIPPED: "skipped",
    Status.NOT_REACHED: "-",
    Status.INCOMPLETE: "partial",
    Status.NOT_CHECKED: "unable",
}


def print_report(report: Report, out: Any = None) -> None:
    out = out or sys.stdout
    src = report.source.uri if report.source else "?"
    if report.ok:
        verb = "RESTORED" if report.operation == "restore" else "VERIFIED"
        unchecked = _payload_unchecked(report)
        echo(f"{verb}{' (payload not checked)' if unchecked else ''}  {src}", file=out)
        if unchecked:
            proved = [x.layer for x in report.layers if x.status is Status.OK]
            echo(
                f"  proved: {', '.join(proved) or 'nothing'}; NOT proved: the payload "
                "(the backup's content and completeness); --strict makes this a failure",
                file=out,
            )
    else:
        assert report.error is not None
        # A setup problem (exit 2) is no verdict on the backup: say so, not FAILED.
        head = (
            "FAILED" if Verdict.of(report.exit_code).is_verdict else "NOT CHECKED (setup problem)"
        )
        echo(f"{head}  {src}", file=out)
        echo(f"  {report.error.message}", file=out)
    if report.formats:
        echo(f"  formats: {' > '.join(report.formats)}", file=out)
    width = max([11, *(len(x.layer) for x in report.layers)])
    for layer in report.layers:
        # Physical backups add longer layer names (member-decompress): they get the width.
        echo(f"  {layer.layer:<{width}} {_MARK[layer.status]:<8} {layer.proved}", file=out)
        if layer.layer == "hashes" and layer.status is Status.OK:
            d = layer.details
            echo(f"  {'':<{width}} {'':<8} object    sha256 {d.get('ciphertext_sha256')}", file=out)
            echo(
                f"  {'':<{width}} {'':<8} plaintext sha256 {d.get('plaintext_sha256')} "
                f"({d.get('plaintext_bytes')} bytes)",
                file=out,
            )
    for w in report.warnings:
        echo(f"  warning: {w}", file=out)
    if report.destination and report.ok:
        echo(f"  written to {report.destination}", file=out)


def _payload_unchecked(report: Report) -> bool:
    """A run that proved the envelope but could not check what is inside it."""
    layer = report.layer("payload")
    return layer is not None and layer.details.get("checked") is False
