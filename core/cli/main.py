"""The ``sealcheck`` command line. Other tools script against it: keep it stable.

Exit codes: 0 verified/restored; 1 the backup failed verification; 2 usage,
environment, storage or missing-key errors; 130 cancelled; 70 internal error
(a bug: the message asks for a report, no traceback is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..errors import ExitCode, SealcheckError
from ..pipeline.job import Job
from ..pipeline.run import run
from ..records.report import ErrorInfo, Report, Status
from ..records.verdict import Verdict
from . import history as cli_history
from . import keys as cli_keys
from . import listing as cli_list
from . import restoretest as cli_restoretest
from . import rotate as cli_rotate
from .common import (
    add_key_options,
    add_s3_options,
    naming_rules,
    run_backup_command,
    s3_settings,
)
from .history import add_history_option
from .termtext import echo, safe, safe_lines

INTERNAL_ERROR = 70
log = logging.getLogger("sealcheck")


class _Parser(argparse.ArgumentParser):
    """argparse's own errors quote what was typed (or globbed from a folder of
    backups): they are escaped like every other line. Subcommand parsers are of
    this class too (add_subparsers makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        super().error(safe(message))


class _TerminalLog(logging.Formatter):
    """Log lines reach the terminal too, quoting object names: escaped likewise,
    a traceback keeping its own line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return safe_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return safe_lines(super().formatStack(stack_info))


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalLog("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sealcheck",
        description="Verify, restore and restore-test envelope-encrypted database backups.",
    )
    p.add_argument("--version", action="version", version=f"sealcheck {__version__}")
    p.add_argument(
        "--debug", action="store_true", help="debug logging on stderr (never shows secrets)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ls = sub.add_parser(
        "list",
        help="list backup sets and every object version under an S3 prefix or in a folder",
    )
    ls.add_argument("location", metavar="s3://BUCKET/PREFIX|FOLDER")
    ls.add_argument("--json", action="store_true")
    add_s3_options(ls)
    ls.set_defaults(func=cmd_list)

    for name, helptext in (
        ("verify", "stream-verify a backup end to end; writes nothing"),
        ("restore", "decrypt and decompress a backup to a file, atomically"),
    ):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("source", metavar="SOURCE", help="local path or s3://bucket/key")
        sp.add_argument("--version-id", metavar="V")
        if name == "restore":
            sp.add_argument("-o", "--output", required=True, type=Path, metavar="PATH")
            sp.add_argument("--force", action="store_true", help="replace an existing file")
        sp.add_argument("--json", action="store_true", help="print the report as JSON")
        sp.add_argument(
            "--max-output",
            type=int,
            metavar="BYTES",
            help="stop when the plaintext exceeds this size (bomb guard)",
        )
        sp.add_argument("--no-progress", action="store_true")
        sp.add_argument(
            "--strict",
            action="store_true",
            help="for audits: fail (exit 1) when the payload cannot be checked, instead of "
            "verifying the envelope with a warning",
        )
        add_history_option(sp)
        add_key_options(sp)
        add_s3_options(sp)
        sp.set_defaults(func=cmd_verify if name == "verify" else cmd_restore)

    cli_keys.register(sub)
    cli_restoretest.register(sub)
    cli_history.register(sub)
    cli_rotate.register(sub)

    for ep in entry_points(group="sealcheck.commands"):
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            log.debug("command plugin %s unavailable: %s", ep.name, exc)
    return p


# --- commands -------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    return cli_list.cmd_list(args, s3_settings(args), naming_rules(args))


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
    for layer in report.layers:
        echo(f"  {layer.layer:<11} {_MARK[layer.status]:<8} {layer.proved}", file=out)
        if layer.layer == "hashes" and layer.status is Status.OK:
            d = layer.details
            echo(f"  {'':<11} {'':<8} object    sha256 {d.get('ciphertext_sha256')}", file=out)
            echo(
                f"  {'':<11} {'':<8} plaintext sha256 {d.get('plaintext_sha256')} "
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    if not getattr(args, "func", None):
        parser.print_help()
        return int(ExitCode.USAGE)
    try:
        return int(args.func(args))
    except SealcheckError as exc:
        echo(f"sealcheck: {exc.message()}", file=sys.stderr)
        if getattr(args, "json", False):
            # Scripts reading --json get an object on every path, not an empty stdout.
            info = ErrorInfo.from_exc(exc)
            print(json.dumps({"ok": False, "error": asdict(info)}, indent=2))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("sealcheck: cancelled", file=sys.stderr)
        return int(ExitCode.CANCELLED)
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return int(ExitCode.OK)
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(
            f"sealcheck: internal error ({type(exc).__name__}). This is a bug; rerun with --debug "
            "and report it.",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
