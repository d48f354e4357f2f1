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


# A parser or one of its argument groups: a helper adds its options to either.
Options = argparse._ActionsContainer


def add_source_options(p: Options) -> None:
    """The backup to read: a path or s3:// URI, and which version of it."""
    p.add_argument("source", metavar="SOURCE", help="local path or s3://bucket/key")
    p.add_argument("--version-id", metavar="V")


def add_token_options(
    p: Options,
    *,
    module_help: str = "PKCS#11 module for pkcs11: keys",
    pin_help: str = "token PIN (otherwise asked at the terminal)",
) -> None:
    """A PKCS#11 token's module and the file holding its PIN (a PIN never in argv)."""
    p.add_argument("--pkcs11-module", metavar="SO", help=module_help)
    p.add_argument("--pin-file", type=Path, help=pin_help)


def add_pem_passphrase_option(
    p: Options, *, help: str = "passphrase of an encrypted PEM key"
) -> None:
    p.add_argument("--key-passphrase-file", type=Path, help=help)


def add_gpg_options(
    p: Options,
    *,
    key_help: str = "OpenPGP secret key file",
    homedir_help: str = "use this GNUPGHOME (and its agent)",
) -> None:
    """OpenPGP keys: a secret key file (and its passphrase file) or a GNUPGHOME."""
    p.add_argument("--gpg-key", type=Path, metavar="ASC_FILE", help=key_help)
    p.add_argument("--gpg-homedir", type=Path, metavar="DIR", help=homedir_help)
    p.add_argument("--gpg-passphrase-file", type=Path, help="passphrase of the --gpg-key")


def add_key_options(p: argparse.ArgumentParser) -> None:
    """Every way to give the key that opens a backup, XtraBackup's included."""
    g = p.add_argument_group("keys")
    g.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY",
        help="RSA private key that unwraps the data key: a PEM file, keyring:NAME or a "
        "pkcs11: URI (repeatable)",
    )
    add_token_options(g)
    add_pem_passphrase_option(g)
    g.add_argument(
        "--wrapped-key", metavar="SOURCE", help="the wrapped-key object, when not beside the data"
    )
    g.add_argument("--wrapped-key-version-id", metavar="V")
    g.add_argument("--passphrase-file", type=Path, help="symmetric backups: the -pass file: secret")
    add_gpg_options(g)
    g.add_argument("--pbkdf2-iter", type=int, metavar="N", help="PBKDF2 iteration count hint")
    g.add_argument("--cipher", help="force the openssl cipher (aes-256-cbc, aes-128-ctr, ...)")
    g.add_argument(
        "--raw-key-file",
        type=Path,
        metavar="FILE",
        help="file holding the openssl enc -K value in hex (no KDF); with --iv",
    )
    g.add_argument("--iv", metavar="HEX", help="openssl enc -iv value (with --raw-key-file)")
    add_physical_options(p)
    # Added last, after the physical group, only to keep its place at the end of usage.
    g.add_argument(
        "--raw-key",
        metavar="HEX",
        action=_RefuseRawKey,
        help="refused: a key on the command line is readable by every user of the machine "
        "(ps, /proc/PID/cmdline) for the whole run; use --raw-key-file",
    )


def add_physical_options(p: argparse.ArgumentParser) -> None:
    """The keys of physical backups encrypted by XtraBackup (xbcrypt)."""
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


def add_tsa_option(p: Options) -> None:
    p.add_argument(
        "--tsa",
        metavar="URL",
        help="timestamp the report's chain head with this RFC 3161 time stamping authority",
    )


# An audit check older than this many days is "outdated" (audit/coverage.py has the same).
OUTDATED_DAYS = 30.0


def add_outdated_option(p: Options, *, help: str | None = None) -> None:
    p.add_argument("--outdated-after", type=float, default=OUTDATED_DAYS, metavar="DAYS", help=help)


def add_shard_options(p: argparse.ArgumentParser) -> None:
    """An audit campaign past one machine: its plan, one shard of it, the shard's results."""
    s = p.add_argument_group("shards (issue 15)")
    s.add_argument(
        "--plan-out",
        type=Path,
        metavar="PLAN.jsonl",
        help="write the sampled work items as a sealed shard plan; verify nothing",
    )
    s.add_argument(
        "--plan", metavar="PLAN.jsonl", help="run one shard of this plan (a file or s3://B/KEY)"
    )
    s.add_argument(
        "--shard",
        metavar="i/N|auto/N",
        help="which shard, counting from 0; auto: from JOB_COMPLETION_INDEX or "
        "AWS_BATCH_JOB_ARRAY_INDEX",
    )
    s.add_argument(
        "--split",
        choices=("strided", "contiguous"),
        default="strided",
        help="how items are dealt to shards (default strided: items i, i+N, ...)",
    )
    s.add_argument(
        "--results",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="where the shard writes its results (create-only; a rerun skips what is proved)",
    )


def add_campaign_options(p: Options) -> None:
    """An audit campaign's population and sample, and what else it restore-tests."""
    p.add_argument(
        "--versions",
        default="all",
        metavar="current|all|since:DATE",
        help="which versions make the population (default: all)",
    )
    p.add_argument("--sample", metavar="N|P%", help="a random sample of N versions or P percent")
    p.add_argument("--seed", type=int, metavar="S", help="the sample's seed (recorded either way)")
    p.add_argument(
        "--slice",
        metavar="i/k",
        help="slice i of k: k runs (say one a night) cover every version exactly once",
    )
    p.add_argument(
        "--restore-test",
        metavar="newest|sample:N",
        help="also restore-test the newest version of each backup, or N sampled versions",
    )


def add_cluster_options(p: Options) -> None:
    """Where an audit campaign's versions run, and for how long."""
    p.add_argument(
        "--parallel",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="versions checked at once on this machine (default: the core count)",
    )
    p.add_argument(
        "--cluster",
        metavar="local:N|tls://HOST:PORT|tcp://HOST:PORT",
        help="run the versions on a Dask cluster (the dask extra): N local worker processes, "
        "or a running scheduler; keys stay here, each worker gets only its backup's data key",
    )
    for what, help_ in (
        ("ca", "the CA that signed the scheduler's and workers' certificates"),
        ("cert", "this client's certificate"),
        ("key", "this client's certificate key"),
    ):
        p.add_argument(f"--cluster-tls-{what}", type=Path, metavar="PEM", help=f"tls://: {help_}")
    p.add_argument(
        "--max-duration",
        metavar="T",
        help="stop cleanly after T (90m, 2h, 3600); the next identical run continues",
    )


def add_campaign_report_options(p: Options) -> None:
    """What an audit campaign records and reports: its report file, trigger and targets."""
    add_outdated_option(p, help="coverage: a check older than this is outdated (default 30)")
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write the signed evidence report: .html, .pdf, .json or .csv (replaced if present)",
    )
    p.add_argument(
        "--trigger",
        choices=("audit", "schedule"),
        default="audit",
        help="recorded with every result: schedule when a timer or cron runs it",
    )
    p.add_argument(
        "--target-rto",
        type=float,
        metavar="SECONDS",
        help="recovery time objective: each restore test's measured time is reported against "
        "it (overrides the sources' own target_rto_s in the app's sources file)",
    )
    p.add_argument(
        "--target-rpo",
        type=float,
        metavar="HOURS",
        help="recovery point objective: each backup's newest version's age is reported against "
        "it (overrides the sources' own target_rpo_h in the app's sources file)",
    )
    add_tsa_option(p)


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
