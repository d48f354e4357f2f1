"""What the commands share: S3 and key options, secrets read from the arguments (a
PIN asked once, never retried), terminal progress, Ctrl-C as a cancel, and the one way
a command runs a backup through to its exit code."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..decrypt.secrets import GpgOptions, Secrets
from ..errors import KeyUnavailable, UsageError
from ..keys.base import KeySource
from ..keys.prompt import SecretProvider, secret_once
from ..keys.spec import KeyContext, open_key
from ..pipeline.job import Job
from ..plumbing.progress import CancelToken, ProgressEvent
from ..records.report import Report
from ..storage.locate import Locator
from ..storage.naming import Rule
from ..storage.s3.client import S3Settings
from ..storage.source import Source
from .record import record_history
from .termtext import safe

# What only some backups or commands need loads where it is used: a verify of a local
# logical dump imports none of it (issue 17, start-up is part of the job).
if TYPE_CHECKING:
    from ..decrypt.xbkey import XbcryptKey
    from ..records.restore_result import RestoreTestResult


def _read_secret_file(path: Path, what: str) -> bytearray:
    try:
        return bytearray(path.read_bytes())
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the {what} {path}: {exc.strerror}") from None


def terminal_prompt(text: str) -> bytes | None:
    """The CLI's SecretPrompt: getpass on a terminal. Without one there is no one to
    ask: None, and the key that needed the secret says which option gives it."""
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(text).encode()


def pem_passphrase(args: argparse.Namespace, label: str, what: str) -> SecretProvider:
    """The passphrase of an encrypted PEM: --key-passphrase-file, else asked once."""
    return secret_once(
        f"Passphrase for {safe(label)}: ",
        terminal_prompt,
        file=args.key_passphrase_file,
        what=what,
    )


def load_keys(args: argparse.Namespace) -> list[KeySource]:
    # One PIN per command, shared by every token key: asked once, never retried.
    pin = secret_once("Token PIN: ", terminal_prompt, file=args.pin_file, what="PIN file")
    if not args.key and not (
        args.passphrase_file or args.gpg_key or args.gpg_homedir or args.raw_key_file
    ):
        # No key named: every held key (keyring, and token keys when a module is
        # given) is a candidate; the wrapped key's size picks which are tried. Their
        # modules (keyring, PKCS#11) load only here.
        from ..keys.discovery import held_keys

        return held_keys(KeyContext(pin=pin, pkcs11_module=args.pkcs11_module))
    return [
        open_key(
            spec,
            KeyContext(
                pem_passphrase=pem_passphrase(args, spec, "key passphrase file"),
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


def gpg_options(args: argparse.Namespace) -> GpgOptions | None:
    """--gpg-key / --gpg-homedir (and the key's --gpg-passphrase-file), or None."""
    if not (args.gpg_key or args.gpg_homedir):
        return None
    gpf = args.gpg_passphrase_file

    def gpg_pw() -> bytes | None:
        if gpf:
            return bytes(_read_secret_file(gpf, "gpg passphrase file")).rstrip(b"\r\n")
        return None

    # --gpg-passphrase-file is the --gpg-key's: with --gpg-homedir alone gpg's agent asks.
    return GpgOptions(
        key_file=args.gpg_key, homedir=args.gpg_homedir, passphrase=gpg_pw if args.gpg_key else None
    )


def secrets_from_args(args: argparse.Namespace) -> Secrets:
    if bool(args.raw_key_file) != bool(args.iv):
        raise UsageError("--raw-key-file and --iv go together")
    return Secrets(
        keys=load_keys(args),
        passphrase=_read_secret_file(args.passphrase_file, "passphrase file")
        if args.passphrase_file
        else None,
        gpg=gpg_options(args),
        raw_key=_raw_key(args.raw_key_file, args.iv) if args.raw_key_file else None,
        pbkdf2_iter=args.pbkdf2_iter,
        cipher=args.cipher,
        xbcrypt=xbcrypt_key(args),
    )


def xbcrypt_key(args: argparse.Namespace) -> XbcryptKey | None:
    """The XtraBackup --encrypt key from whichever option gave it (at most one)."""
    given = {
        "--xbcrypt-key-file": getattr(args, "xbcrypt_key_file", None),
        "--kms-plaintext-file": getattr(args, "kms_plaintext_file", None),
        "--kms-plaintext": getattr(args, "kms_plaintext", None),
        "--kms-ciphertext-file": getattr(args, "kms_ciphertext_file", None),
    }
    named = [k for k, v in given.items() if v is not None]
    if len(named) > 1:
        raise UsageError(f"give one xbcrypt key, not {' and '.join(named)}")
    if not named:
        return None
    # XtraBackup's key forms: only when one is given (see the imports above).
    from ..decrypt.xbkey import (
        key_from_aws_kms,
        key_from_file,
        key_from_kms_plaintext,
        key_from_kms_plaintext_file,
    )

    if args.xbcrypt_key_file:
        return key_from_file(args.xbcrypt_key_file)
    if args.kms_plaintext_file:
        return key_from_kms_plaintext_file(args.kms_plaintext_file)
    if args.kms_plaintext:
        return key_from_kms_plaintext(args.kms_plaintext.encode())
    if args.kms_ciphertext_file:
        return key_from_aws_kms(
            args.kms_ciphertext_file,
            region=getattr(args, "region", None),
            profile=getattr(args, "profile", None),
        )
    return None


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


@contextlib.contextmanager
def cancel_on_sigint(cancel: CancelToken) -> Iterator[None]:
    """Ctrl-C cancels the run through its token: every stage stops at its next check and
    leaves nothing half-written, where a KeyboardInterrupt would stop at any line."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda _sig, _frame: cancel.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def s3_settings(args: argparse.Namespace) -> S3Settings:
    return S3Settings(endpoint_url=args.endpoint_url, profile=args.profile, region=args.region)


def naming_rules(args: argparse.Namespace) -> tuple[Rule, ...]:
    return tuple(Rule.parse(r) for r in args.rule)


def open_backup(args: argparse.Namespace, cancel: CancelToken) -> tuple[Source, Source | None]:
    """The backup named on the command line (SOURCE, --version-id), and its wrapped key:
    the one given (by name and version, or by version beside the data) opened exactly as
    given, never re-paired; else the one beside it that the naming rules pair with it
    (in S3 the version written with that data version)."""
    loc = Locator(s3_settings(args), cancel)
    data = loc.open(args.source, args.version_id)
    if args.wrapped_key:
        return data, loc.open(args.wrapped_key, args.wrapped_key_version_id)
    if args.wrapped_key_version_id:
        return data, loc.wrapped_at(data, args.wrapped_key_version_id, naming_rules(args))
    return data, loc.find_wrapped_key(data, naming_rules(args))


R = TypeVar("R", Report, "RestoreTestResult")


def run_backup_command(
    args: argparse.Namespace, work: Callable[[Job], R], show: Callable[[R], None]
) -> int:
    """Run ``work`` on the job the arguments describe and end as every backup command
    ends: Ctrl-C cancels, the progress bar is cleared, the result printed (``--json`` or
    ``show``'s words) and recorded in the history; its exit code is the command's."""
    cancel = CancelToken()
    data, wrapped = open_backup(args, cancel)
    secrets = secrets_from_args(args)
    if not (args.wrapped_key or args.wrapped_key_version_id):
        # A key re-wrapped by `sealcheck rotate` for a key given wins over the producer's,
        # and a rotated gpg envelope made for it over the original. (Imported here: only
        # a key found beside the data is looked for as re-wrapped; see the imports above.)
        from ..decrypt.held import held_fingerprints
        from ..storage.rewrap import prefer_rotated

        data, wrapped = prefer_rotated(data, wrapped, lambda: held_fingerprints(secrets))
    bar = None
    if not args.no_progress and sys.stderr.isatty() and not args.json:
        bar = TerminalProgress(sys.stderr)
    job = Job(
        data=data,
        secrets=secrets,
        wrapped_key=wrapped,
        # X.sha256, X.info… beside it: their checksums and sizes are compared too.
        sidecars=Locator(s3_settings(args), cancel).find_sidecars(data),
        progress=bar if bar else (lambda _e: None),
        cancel=cancel,
    )
    try:
        with cancel_on_sigint(cancel):
            result = work(job)
    finally:
        if bar:
            bar.clear()
    if args.json:
        print(result.to_json())
    else:
        show(result)
    record_history(args, result)
    return result.exit_code
