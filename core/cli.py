"""The ``sealcheck`` command line. Other tools script against it: keep it stable.

Exit codes: 0 verified/restored; 1 the backup failed verification; 2 usage,
environment, storage or missing-key errors; 130 cancelled; 70 internal error
(a bug: the message asks for a report, no traceback is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, cli_history, cli_keys, cli_list, cli_restoretest

# Re-exported: cli_restoretest reaches its helpers through this module.
from .cli_history import add_history_option as add_history_option
from .cli_history import record_history as record_history
from .errors import ExitCode, KeyUnavailable, SealcheckError, UsageError
from .gpg import GpgOptions
from .keydiscovery import held_keys
from .keys import KeySource
from .keyspec import KeyContext, open_key
from .locate import Locator
from .naming import Rule
from .pipeline import Job, run
from .progress import CancelToken, ProgressEvent
from .report import ErrorInfo, Report, Status
from .s3 import S3Settings
from .sources import Source
from .termtext import echo, safe, safe_lines
from .unlock import Secrets
from .verdict import Verdict

INTERNAL_ERROR = 70
log = logging.getLogger("sealcheck")


def _add_s3_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("S3")
    g.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL or AWS)",
    )
    g.add_argument("--profile", default=os.environ.get("AWS_PROFILE"), help="AWS profile")
    g.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    g.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="DATA_SUFFIX:KEY_SUFFIX",
        help="extra naming rule pairing a data object with its wrapped key",
    )


class _RefuseRawKey(argparse.Action):
    """``--raw-key HEX`` stays defined only to be refused: dropped, argparse would
    take it as an abbreviation of ``--raw-key-file`` and read a file named HEX."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        # The value is a secret: it must not be echoed back in the message.
        parser.error(
            "--raw-key is refused: a key on the command line is readable by every user "
            "(ps, /proc/PID/cmdline) for the whole run. Put the hex key in a file readable "
            "only by you and give --raw-key-file FILE"
        )


def _add_key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("keys")
    g.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY",
        help="RSA private key that unwraps the data key: a PEM file, keyring:NAME or a "
        "pkcs11: URI (repeatable)",
    )
    g.add_argument("--pkcs11-module", metavar="SO", help="PKCS#11 module for pkcs11: keys")
    g.add_argument("--pin-file", type=Path, help="token PIN (otherwise asked at the terminal)")
    g.add_argument("--key-passphrase-file", type=Path, help="passphrase of an encrypted PEM key")
    g.add_argument(
        "--wrapped-key", metavar="SOURCE", help="the wrapped-key object, when not beside the data"
    )
    g.add_argument("--wrapped-key-version-id", metavar="V")
    g.add_argument("--passphrase-file", type=Path, help="symmetric backups: the -pass file: secret")
    g.add_argument("--gpg-key", type=Path, metavar="ASC_FILE", help="OpenPGP secret key file")
    g.add_argument(
        "--gpg-homedir", type=Path, metavar="DIR", help="use this GNUPGHOME (and its agent)"
    )
    g.add_argument("--gpg-passphrase-file", type=Path, help="passphrase of the --gpg-key")
    g.add_argument("--pbkdf2-iter", type=int, metavar="N", help="PBKDF2 iteration count hint")
    g.add_argument("--cipher", help="force the openssl cipher (aes-256-cbc, aes-128-ctr, ...)")
    g.add_argument(
        "--raw-key-file",
        type=Path,
        metavar="FILE",
        help="file holding the openssl enc -K value in hex (no KDF); with --iv",
    )
    g.add_argument("--iv", metavar="HEX", help="openssl enc -iv value (with --raw-key-file)")
    g.add_argument(
        "--raw-key",
        metavar="HEX",
        action=_RefuseRawKey,
        help="refused: a key on the command line is readable by every user of the machine "
        "(ps, /proc/PID/cmdline) for the whole run; use --raw-key-file",
    )


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
    _add_s3_options(ls)
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
        _add_key_options(sp)
        _add_s3_options(sp)
        sp.set_defaults(func=cmd_verify if name == "verify" else cmd_restore)

    cli_keys.register(sub)
    cli_restoretest.register(sub)
    cli_history.register(sub)

    for ep in entry_points(group="sealcheck.commands"):
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            log.debug("command plugin %s unavailable: %s", ep.name, exc)
    return p


# --- keys -----------------------------------------------------------------------


def _read_secret_file(path: Path, what: str) -> bytearray:
    try:
        return bytearray(path.read_bytes())
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} {path}: {exc.strerror}") from None


def _passphrase_getter(args: argparse.Namespace, label: str) -> Callable[[], bytes | None]:
    def get() -> bytes | None:
        if args.key_passphrase_file:
            return bytes(_read_secret_file(args.key_passphrase_file, "key passphrase file")).rstrip(
                b"\r\n"
            )
        if sys.stdin.isatty():
            return getpass.getpass(f"Passphrase for {safe(label)}: ").encode()
        return None

    return get


def _once(get: Callable[[], bytes | None]) -> Callable[[], bytes | None]:
    """Ask for a secret at most once per command (a token PIN is never re-asked:
    a retry loop would lock the token)."""
    asked: list[bytes | None] = []

    def wrapper() -> bytes | None:
        if not asked:
            asked.append(get())
        return asked[0]

    return wrapper


def _pin_getter(args: argparse.Namespace) -> Callable[[], bytes | None]:
    def get() -> bytes | None:
        if args.pin_file:
            return bytes(_read_secret_file(args.pin_file, "PIN file")).rstrip(b"\r\n")
        if sys.stdin.isatty():
            return getpass.getpass("Token PIN: ").encode()
        return None

    return _once(get)


def load_keys(args: argparse.Namespace) -> list[KeySource]:
    pin = _pin_getter(args)
    if not args.key and not (
        args.passphrase_file or args.gpg_key or args.gpg_homedir or args.raw_key_file
    ):
        # No key named: every held key (keyring, and token keys when a module is
        # given) is a candidate; the wrapped key's size picks which are tried.
        return held_keys(KeyContext(pin=pin, pkcs11_module=args.pkcs11_module))
    return [
        open_key(
            spec,
            KeyContext(
                pem_passphrase=_once(_passphrase_getter(args, spec)),
                pin=pin,
                pkcs11_module=args.pkcs11_module,
            ),
        )
        for spec in args.key
    ]


_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def _raw_key(path: Path, iv: str) -> tuple[str, str]:
    """The ``-K`` hex from ``path`` (surrounding blanks and a final newline allowed)."""
    raw = _read_secret_file(path, "raw key file")
    try:
        key = raw.decode("ascii", "replace").strip()
    finally:
        raw[:] = bytes(len(raw))
    # Messages name the file, never quote it: its content is the key.
    if not _HEX.fullmatch(key):
        raise UsageError(f"the raw key file {path} does not hold one hex key (openssl enc -K)")
    if not _HEX.fullmatch(iv):
        raise UsageError("--iv is not hex (openssl enc -iv)")
    return key, iv


def secrets_from_args(args: argparse.Namespace) -> Secrets:
    if bool(args.raw_key_file) != bool(args.iv):
        raise UsageError("--raw-key-file and --iv go together")
    gpg = None
    if args.gpg_key or args.gpg_homedir:
        gpf = args.gpg_passphrase_file

        def gpg_pw() -> bytes | None:
            if gpf:
                return bytes(_read_secret_file(gpf, "gpg passphrase file")).rstrip(b"\r\n")
            return None

        gpg = GpgOptions(key_file=args.gpg_key, homedir=args.gpg_homedir, passphrase=gpg_pw)
    return Secrets(
        keys=load_keys(args),
        passphrase=_read_secret_file(args.passphrase_file, "passphrase file")
        if args.passphrase_file
        else None,
        gpg=gpg,
        raw_key=_raw_key(args.raw_key_file, args.iv) if args.raw_key_file else None,
        pbkdf2_iter=args.pbkdf2_iter,
        cipher=args.cipher,
    )


# --- progress -------------------------------------------------------------------


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class TerminalProgress:
    def __init__(self, stream: Any) -> None:
        self._s = stream
        self._shown = False

    def __call__(self, ev: ProgressEvent) -> None:
        frac = ev.fraction or 0.0
        bar = "#" * int(frac * 30)
        line = (
            f"\r{safe(ev.stage):<10} [{bar:<30}] {frac * 100:5.1f}% "
            f"{_fmt_bytes(ev.done)}/{_fmt_bytes(ev.total or 0)} "
            f"{_fmt_bytes(ev.rate)}/s ETA {_fmt_eta(ev.eta)} "
        )
        self._s.write(line)
        self._s.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._s.write("\r" + " " * 100 + "\r")
            self._s.flush()


# --- commands -------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> S3Settings:
    return S3Settings(endpoint_url=args.endpoint_url, profile=args.profile, region=args.region)


def _rules(args: argparse.Namespace) -> tuple[Rule, ...]:
    return tuple(Rule.parse(r) for r in args.rule)


def cmd_list(args: argparse.Namespace) -> int:
    return cli_list.cmd_list(args, _settings(args), _rules(args))


def _run_job(args: argparse.Namespace, operation: str) -> int:
    cancel = CancelToken()
    loc = Locator(_settings(args), cancel)
    data = loc.open(args.source, args.version_id)
    wrapped: Source | None
    if args.wrapped_key:
        wrapped = loc.open(args.wrapped_key, args.wrapped_key_version_id)
    else:
        wrapped = loc.find_wrapped_key(data, _rules(args))
    secrets = secrets_from_args(args)
    bar = None
    if not args.no_progress and sys.stderr.isatty() and not args.json:
        bar = TerminalProgress(sys.stderr)
    job = Job(
        data=data,
        secrets=secrets,
        wrapped_key=wrapped,
        operation="restore" if operation == "restore" else "verify",
        destination=getattr(args, "output", None),
        overwrite=getattr(args, "force", False),
        max_output_bytes=args.max_output,
        progress=bar if bar else (lambda _e: None),
        cancel=cancel,
        strict=args.strict,
    )
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(_sig: int, _frm: Any) -> None:
        cancel.cancel()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        report = run(job)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar:
            bar.clear()
    if args.json:
        print(report.to_json())
    else:
        print_report(report)
    record_history(args, report)
    return report.exit_code


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
