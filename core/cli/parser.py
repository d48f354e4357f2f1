"""The ``sealcheck`` command line's declarations: every command, its options and help.

Declaring is cheap: a command's body (``Command``) is imported only when that
command runs, so ``sealcheck --help`` imports none of them and ``sealcheck verify``
of a local file neither the restore test (its SQL scanners build large patterns
at import), the key rotation nor boto3.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ExitCode
from ..records import report_names
from ..version import __version__
from .options import (
    SCOPES,
    add_campaign_options,
    add_campaign_report_options,
    add_cluster_options,
    add_gpg_options,
    add_history_option,
    add_key_options,
    add_outdated_option,
    add_pem_passphrase_option,
    add_s3_options,
    add_shard_options,
    add_source_options,
    add_token_options,
    add_tsa_option,
    seconds_arg,
    size_arg,
)
from .termtext import safe

log = logging.getLogger("sealcheck")


class Command:
    """A command's body, named by its module (under ``sealcheck.core.cli``) and function.

    Imported when that command runs, not when the parser is built: the bodies pull in
    what only they need (the restore test, the rotation engine, the key inventory, the
    pipeline), and every ``sealcheck`` run builds the whole parser. The one deferred
    import of the CLI, as the core front door's names (core/__init__.py) are."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __call__(self, args: argparse.Namespace) -> int:
        body = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.name)
        return int(body(args))

    def __repr__(self) -> str:
        return f"Command({self.module!r}, {self.name!r})"


class _Parser(argparse.ArgumentParser):
    """argparse's own errors quote what was typed (or globbed from a folder of
    backups): they are escaped like every other line. Subcommand parsers are of
    this class too (add_subparsers makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        super().error(safe(message))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return int(ExitCode.USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; plugins' commands (the app's ``gui``, ``demo``) are added unless
    ``command``, the first word on the command line, is a built-in one."""
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
    ls.set_defaults(func=Command("listing", "cmd_list"))

    for name, helptext in (
        ("verify", "stream-verify a backup end to end; writes nothing"),
        ("restore", "decrypt and decompress a backup to a file, atomically"),
    ):
        sp = sub.add_parser(name, help=helptext)
        add_source_options(sp)
        if name == "restore":
            sp.add_argument("-o", "--output", required=True, type=Path, metavar="PATH")
            sp.add_argument("--force", action="store_true", help="replace an existing file")
            sp.add_argument(
                "--extract",
                action="store_true",
                help="physical backups: write the backup's files into the new folder PATH "
                "(decrypted, decompressed; renamed into place only once every layer verified)",
            )
        sp.add_argument(
            "--max-disk",
            type=int,
            metavar="BYTES",
            help="physical backups: the most disk the system tablespace's page check may "
            "use, and with --extract the extracted files",
        )
        sp.add_argument("--json", action="store_true", help="print the report as JSON")
        sp.add_argument(
            "--max-output",
            type=int,
            metavar="BYTES",
            help="stop when the plaintext exceeds this size (bomb guard; physical backups: "
            "also when their decoded files do)",
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
        sp.set_defaults(func=Command("verify", f"cmd_{name}"))

    _keys(sub)
    _restore_test(sub)
    _history(sub)
    _rotate(sub)
    _audit(sub)

    if command in sub.choices:
        # A built-in command: no need to scan every installed distribution's entry
        # points for plugins (~40 ms of a 0.3 s small verify, issue 17).
        return p
    from importlib.metadata import entry_points  # ~20 ms to import: only when needed

    for ep in entry_points(group="sealcheck.commands"):
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            log.debug("command plugin %s unavailable: %s", ep.name, exc)
    return p


def _keys(sub: Any) -> None:
    k = sub.add_parser("key", help="keys Sealcheck can use: import, list, export, rename, remove")
    ks = k.add_subparsers(dest="key_command", metavar="ACTION")

    imp = ks.add_parser("import", help="put a PEM private key into custody (OS keyring)")
    imp.add_argument("pem", type=Path, metavar="PEM_FILE")
    imp.add_argument("--name", required=True)
    add_pem_passphrase_option(imp, help="passphrase of an encrypted PEM")
    imp.set_defaults(func=Command("keys", "cmd_import"))

    ls = ks.add_parser("list", help="every key Sealcheck can use, with fingerprints")
    add_token_options(
        ls,
        module_help="also list this token module's keys",
        pin_help="PIN of ONE token, to also see its keys hidden before login: tried once, only "
        "on the --token one or, without --token, only if exactly one token is present (never "
        "on another token: wrong PINs count toward a token's lockout)",
    )
    ls.add_argument(
        "--token",
        metavar="LABEL|URI",
        help="the token the --pin-file PIN is for: its label, or a pkcs11: URI naming it "
        "(e.g. 'pkcs11:token=backup;serial=0123'); other tokens are listed without login",
    )
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=Command("keys", "cmd_list"))

    exp = ks.add_parser(
        "export-public",
        help="print a held key's public key (PEM); --signing: the evidence signing key's",
    )
    exp.add_argument("name", nargs="?")
    exp.add_argument(
        "--signing",
        action="store_true",
        help="the Ed25519 key that signs evidence reports (made now if there is none yet)",
    )
    exp.set_defaults(func=Command("keys", "cmd_export_public"))

    ren = ks.add_parser("rename", help="hold a key under another name")
    ren.add_argument("name")
    ren.add_argument("new_name", metavar="NEW_NAME")
    ren.set_defaults(func=Command("keys", "cmd_rename"))

    rm = ks.add_parser("remove", help="remove a key from custody")
    rm.add_argument("name")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(func=Command("keys", "cmd_remove"))
    k.set_defaults(func=lambda _a: (k.print_help(), 2)[1])


def _restore_test(sub: Any) -> None:
    p = sub.add_parser(
        "restore-test",
        help="load a backup into a throwaway MariaDB/PostgreSQL server and check what came back",
    )
    add_source_options(p)
    p.add_argument(
        "--engine",
        choices=("auto", "mariadb", "mysql", "postgres"),
        default="auto",
        help="the server to load into (auto: from the dump's header)",
    )
    p.add_argument(
        "--server",
        metavar="DSN",
        help="an existing local server instead of a throwaway one: mysql://USER@localhost/"
        "?socket=PATH or postgresql://USER@/?host=SOCKET_DIR (a scratch database is used)",
    )
    p.add_argument("--server-password-file", type=Path, metavar="F")
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="JSON",
        help="an earlier restore-test result of the same backup (--json output): show drift",
    )
    p.add_argument(
        "--max-time",
        "--max-seconds",
        dest="max_seconds",
        type=seconds_arg,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="wall-clock limit from the start of the load to the end of the checks "
        "(default 21600: 6 hours); over it the load is stopped and the test fails",
    )
    p.add_argument(
        "--max-disk",
        type=size_arg,
        metavar="SIZE",
        help="how much the server's disk use may grow during the load, e.g. 500M or 2G "
        "(default: 90%% of the free space where the throwaway server keeps its data; "
        "with --server: the scratch database's size, PostgreSQL only)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_history_option(p)
    add_key_options(p)
    add_s3_options(p)
    p.set_defaults(func=Command("restoretest", "cmd_restore_test"))


def _history(sub: Any) -> None:
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
    h.set_defaults(func=Command("history", "cmd_history"))

    r = sub.add_parser("report", help="evidence reports from the history")
    r.set_defaults(func=lambda _a: _usage(r))
    rsub = r.add_subparsers(dest="report_command", metavar="COMMAND")
    e = rsub.add_parser(
        "export",
        help="write the signed evidence report an auditor files (HTML, JSON, CSV or PDF)",
    )
    e.add_argument("ids", nargs="*", type=int, metavar="ID", help="history entry ids")
    e.add_argument(
        "--latest",
        action="store_true",
        help="the newest verdict (OK or FAILED) of every object version; runs that could "
        "not check the backup are left out (narrow it with --source)",
    )
    e.add_argument("--source", metavar="PATTERN", help="with --latest: only these objects")
    e.add_argument("--format", choices=report_names.NAMES, required=True)
    e.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    e.add_argument("--force", action="store_true", help="replace an existing file")
    add_tsa_option(e)
    e.set_defaults(func=Command("history", "cmd_report_export"))
    c = rsub.add_parser(
        "check",
        help="check the seal of an exported evidence report (HTML or JSON), offline",
    )
    c.add_argument(
        "file", type=Path, metavar="FILE", help="an HTML or JSON report from report export"
    )
    c.set_defaults(func=Command("history", "cmd_report_check"))
    v = rsub.add_parser(
        "verify",
        help="check a report's signature and the hash chain of every record in it, offline",
    )
    v.add_argument("file", type=Path, metavar="FILE", help="an HTML, JSON or PDF evidence report")
    v.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="the evidence signing key's public key (sealcheck key export-public --signing)",
    )
    v.add_argument(
        "--tsa-cert",
        type=Path,
        metavar="PEM",
        help="the time stamping authority's certificate the report's RFC 3161 token must "
        "verify against",
    )
    v.set_defaults(func=Command("history", "cmd_report_verify"))


def _rotate(sub: Any) -> None:
    r = sub.add_parser(
        "rotate", help="re-wrap every backup's data key for a new RSA key pair (plan, run, status)"
    )
    rs = r.add_subparsers(dest="rotate_command", metavar="ACTION")
    for name, helptext in (
        ("plan", "dry run: every data version in scope and what would happen to it"),
        ("run", "rotate: re-wrap, write create-only beside the original, read back"),
    ):
        p = rs.add_parser(name, help=helptext)
        p.add_argument(
            "location",
            metavar="s3://BUCKET/PREFIX" if name == "plan" else "PLAN_OR_PREFIX",
            help=None
            if name == "plan"
            else "s3://BUCKET/PREFIX, or a plan saved with "
            "'rotate plan --json > plan.json' (its source and scope)",
        )
        p.add_argument(
            "--to",
            required=True,
            metavar="NEW",
            help="the new key: a private PEM, keyring:NAME, a pkcs11: URI or an OpenPGP "
            "secret key (gpg --export-secret-keys; it proves possession); a public PEM or "
            "OpenPGP public key only with --public-only",
        )
        p.add_argument(
            "--from",
            dest="old",
            action="append",
            default=[],
            metavar="KEY",
            help="an old private key (PEM, keyring:NAME, pkcs11: URI; repeatable); default: "
            "every held key",
        )
        p.add_argument("--versions", choices=SCOPES, help="default: current (or the plan's)")
        p.add_argument(
            "--public-only",
            action="store_true",
            help="re-wrap to a public key whose private half is held offline (no proof of "
            "possession; recorded as such)",
        )
        p.add_argument(
            "--oaep",
            action="store_true",
            help="re-wrap with OAEP-SHA256 instead of each original's padding (runbooks that "
            "call 'openssl rsautl -decrypt' then need pkeyutl with OAEP options)",
        )
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        add_token_options(p, pin_help="token PIN (otherwise asked once)")
        add_pem_passphrase_option(p, help="passphrase of encrypted PEMs")
        add_gpg_options(
            p,
            key_help="an old OpenPGP secret key file (gpg backups; with --from keys or alone)",
            homedir_help="old OpenPGP keys: this GNUPGHOME",
        )
        if name == "run":
            p.add_argument("--resume", action="store_true", help="continue an interrupted run")
            p.add_argument(
                "--allow-unversioned",
                action="store_true",
                help="rotate even where versioning is not Enabled (writes stay create-only)",
            )
            p.add_argument("--journal", type=Path, metavar="PATH", help="the journal file")
            p.add_argument("--report", type=Path, metavar="PATH", help="write the JSON report")
            p.add_argument(
                "--lock-minutes", type=int, default=60, help="lock expiry (renewed while running)"
            )
            p.add_argument(
                "--workers",
                type=int,
                default=8,
                metavar="N",
                help="versions rotated at once (default 8; each one's steps stay in order)",
            )
            p.add_argument(
                "--take-over-lock",
                action="store_true",
                help="take the prefix's lock from a rotation known to be dead (killed, its "
                "journal lost) before the lock expires",
            )
            add_history_option(p)
        add_s3_options(p)
        p.set_defaults(func=Command("rotate", f"cmd_{name}"))
    st = rs.add_parser("status", help="rotations in the journal folder and how far each got")
    st.add_argument("--journal", type=Path, metavar="PATH", help="one journal file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=Command("rotate", "cmd_status"))
    r.set_defaults(func=lambda _a: _usage(r))


def _audit(sub: Any) -> None:
    a = sub.add_parser(
        "audit",
        help="verify a sample (or all) of the backup versions under a prefix, as one "
        "recorded, resumable campaign",
        usage="%(prog)s s3://BUCKET/PREFIX [options]\n"
        "       %(prog)s s3://BUCKET/PREFIX [options] --plan-out PLAN.jsonl\n"
        "       %(prog)s --plan PLAN.jsonl --shard i/N|auto/N --results DIR|s3://B/P [options]\n"
        "       %(prog)s merge PLAN.jsonl RESULTS... [--report FILE] [--json]",
        description="Past one machine (docs/scale.md): --plan-out writes the campaign's work "
        "items; each shard (a Kubernetes Indexed Job pod, an AWS Batch array child) runs "
        "--plan ... --shard; the coordinator runs 'audit merge', which alone records the "
        "history and writes the signed report.",
    )
    a.add_argument("location", nargs="?", metavar="s3://BUCKET/PREFIX")
    a.add_argument("operands", nargs="*", help=argparse.SUPPRESS)  # merge: PLAN RESULTS...
    add_shard_options(a)
    add_campaign_options(a)
    add_cluster_options(a)
    add_campaign_report_options(a)
    a.add_argument("--json", action="store_true", help="print the campaign as JSON")
    a.add_argument("--no-progress", action="store_true")
    add_key_options(a)
    add_s3_options(a)
    a.set_defaults(func=Command("audit", "cmd_audit"))

    c = sub.add_parser(
        "coverage",
        help="per backup and version: last verified, last restore-tested, and its state",
    )
    c.add_argument(
        "location",
        nargs="?",
        metavar="s3://BUCKET/PREFIX",
        help="list this population (versions never checked included); else the history's",
    )
    c.add_argument("--source", metavar="PATTERN", help="only these objects (as in history)")
    add_outdated_option(c)
    c.add_argument("--json", action="store_true")
    add_s3_options(c)
    c.set_defaults(func=Command("audit", "cmd_coverage"))
