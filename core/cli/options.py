"""Options several commands share, and argument types: argparse only.

Declaring a command must cost nothing (``sealcheck --help`` imports no command's
body), so this module imports nothing of core beyond the standard library.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# The values of records.history.Trigger and rotation.scope.Scope (tests/core/
# test_cli_startup.py holds them together): importing the enums would import SQLite
# and the S3 listing for every command.
TRIGGERS = ("manual", "audit", "schedule")
SCOPES = ("current", "all")


def add_s3_options(p: argparse.ArgumentParser) -> None:
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


def add_key_options(p: argparse.ArgumentParser) -> None:
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
    x = p.add_argument_group("physical backups (XtraBackup --encrypt)")
    x.add_argument(
        "--xbcrypt-key-file",
        type=Path,
        metavar="FILE",
        help="the --encrypt-key-file: its raw bytes, the whole file (no newline)",
    )
    x.add_argument(
        "--kms-plaintext-file",
        type=Path,
        metavar="FILE",
        help="ApsaraDB: the base64 Plaintext of KMS Decrypt; the key is its lowercase hex",
    )
    x.add_argument(
        "--kms-plaintext",
        metavar="B64",
        help="as --kms-plaintext-file, on the command line (readable by every user through "
        "ps: prefer the file)",
    )
    x.add_argument(
        "--kms-ciphertext-file",
        type=Path,
        metavar="FILE",
        help="an AWS KMS-encrypted data key (binary or base64): decrypted with KMS Decrypt "
        "(--region, --profile; another endpoint through boto3's AWS_ENDPOINT_URL_KMS)",
    )
    g.add_argument(
        "--raw-key",
        metavar="HEX",
        action=_RefuseRawKey,
        help="refused: a key on the command line is readable by every user of the machine "
        "(ps, /proc/PID/cmdline) for the whole run; use --raw-key-file",
    )


def add_history_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-history",
        action="store_true",
        help="do not record the result in the verification history",
    )
    p.add_argument(
        "--trigger",
        choices=TRIGGERS,
        default="manual",
        help="what started this run, as recorded in the history (default: manual)",
    )


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_arg(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``1048576``: binary units (K = 1024 bytes)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = t[: len(t) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (examples: 500M, 2G, 1048576)"
        ) from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the disk limit must be at least 1 byte")
    return int(value)


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the wall-clock limit must be positive")
    return value
