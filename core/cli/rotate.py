"""``sealcheck rotate plan|run|status``: re-wrap backups' data keys for a new key pair.

Exit codes: 0 every version in scope is rotated (or already was); 1 some versions
could not be rotated (the report says which and why); 2 usage or environment (no
proof of possession, versioning off, a store ignoring create-only writes, the lock
held); 130 cancelled, resumable with ``--resume``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ExitCode, UsageError
from ..keys.base import KeySource
from ..keys.discovery import held_keys
from ..keys.prompt import secret_once
from ..keys.spec import KeyContext, open_key
from ..plumbing.atomic import AtomicWriter
from ..plumbing.progress import CancelToken
from ..rotation.engine import NOT_REVOCATION, Outcome, Rotation, Settings
from ..rotation.gpgresume import resumed_gpg
from ..rotation.journal import (
    Item,
    Journal,
    Start,
    Step,
    begin,
    journal_for,
    journals,
    now_iso,
)
from ..rotation.newkey import open_new_key
from ..rotation.report import build
from ..rotation.scope import Scope
from ..rotation.wire import OAEP_SHA256
from ..storage.s3.client import make_client, parse_uri
from .common import (
    cancel_on_sigint,
    gpg_options,
    naming_rules,
    pem_passphrase,
    s3_settings,
    terminal_prompt,
)
from .record import record_rotation
from .termtext import echo

_MARK = {
    Step.PLANNED: "ROTATE",
    Step.DONE: "ROTATED",
    Step.ALREADY: "ALREADY",
    Step.CANNOT: "CANNOT",
}


def _from_plan(args: argparse.Namespace) -> None:
    """A saved plan as the location: its source and scope (the run re-lists and
    re-checks every version; the plan says where and how much, not what is true now)."""
    path = Path(args.location)
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{args.location} is neither s3://BUCKET/PREFIX nor a readable plan ({exc})"
        ) from None
    if not isinstance(plan, dict) or plan.get("report") != "sealcheck key rotation":
        raise UsageError(f"{args.location} is not a plan saved by 'sealcheck rotate plan --json'")
    args.location = str(plan["source"])
    args.versions = args.versions or str(plan["scope"])
    args.plan_new_key = plan.get("new_key", {}).get("spki_sha256")


def _keys(args: argparse.Namespace, *, resuming: bool = False) -> tuple[Settings, list[KeySource]]:
    if not args.location.startswith("s3://"):
        _from_plan(args)
    uri = parse_uri(args.location)
    # One PIN per run, shared by the old and the new key on a token: never retried.
    pin = secret_once("Token PIN: ", terminal_prompt, file=args.pin_file, what="PIN file")
    ctx = KeyContext(
        pem_passphrase=pem_passphrase(args, "the key", "key passphrase file"),
        pin=pin,
        pkcs11_module=args.pkcs11_module,
    )
    new = open_new_key(args.to, ctx, public_only=args.public_only)
    if resuming:
        _gpg_from_journal(args, _journal_path(args, uri.bucket, uri.key, new.fingerprint))
    if args.old:
        old = [open_key(spec, ctx) for spec in args.old]
    else:
        old = held_keys(KeyContext(pin=pin, pkcs11_module=args.pkcs11_module))
    gpg = gpg_options(args)
    if not old and gpg is None:
        raise UsageError(
            "no old key: give --from KEY (or import it with 'sealcheck key import'), or "
            "--gpg-key/--gpg-homedir for gpg backups"
        )
    planned_for = getattr(args, "plan_new_key", None)
    if planned_for and planned_for != new.fingerprint:
        raise UsageError(f"the plan was made for the new key {planned_for}, not {new.fingerprint}")
    settings = Settings(
        bucket=uri.bucket,
        prefix=uri.key,
        new=new,
        old_keys=old,
        rules=naming_rules(args),
        scope=Scope(args.versions or Scope.CURRENT.value),
        padding=OAEP_SHA256 if args.oaep else None,
        allow_unversioned=getattr(args, "allow_unversioned", False),
        lock_ttl=_dt.timedelta(minutes=getattr(args, "lock_minutes", 60)),
        take_over_lock=getattr(args, "take_over_lock", False),
        workers=max(1, getattr(args, "workers", 8)),
        gpg=gpg,
    )
    return settings, old


def _warnings(args: argparse.Namespace) -> list[str]:
    out = []
    if args.oaep:
        out.append(
            "--oaep: the re-wrapped keys use OAEP-SHA256, not the originals' padding; "
            "'openssl rsautl -decrypt' no longer opens them (use pkeyutl -pkeyopt "
            "rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256)"
        )
    if args.public_only:
        out.append("--public-only: nobody proved holding the new private key; keep it safe")
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    started = now_iso()
    settings, old = _keys(args)
    cancel = CancelToken()
    rot = Rotation(make_client(s3_settings(args)), settings, cancel=cancel)
    with cancel_on_sigint(cancel):
        outcome = rot.plan()
    outcome.warnings += _warnings(args)
    report = build("plan", settings, outcome, old, started=started)
    _print(args, report, outcome)
    return 0 if all(i.step is not Step.CANNOT for i in outcome.items) else 1


def _journal_path(args: argparse.Namespace, bucket: str, prefix: str, new_key: str) -> Path:
    if args.journal:
        return Path(args.journal)
    return journal_for(bucket, prefix, new_key)


def _gpg_from_journal(args: argparse.Namespace, path: Path) -> None:
    """--resume: the old OpenPGP key the journal's start recorded, where none is given
    (refused when what is given is another one)."""
    if not path.exists():
        return  # cmd_run says there is nothing to resume
    journal = Journal(path)
    try:
        start = Start.read(journal.meta())
    finally:
        journal.close()
    if start is not None:
        args.gpg_key, args.gpg_homedir = resumed_gpg(start, args.gpg_key, args.gpg_homedir, path)


def cmd_run(args: argparse.Namespace) -> int:
    started = now_iso()
    settings, old = _keys(args, resuming=args.resume)
    path = _journal_path(args, settings.bucket, settings.prefix, settings.new.fingerprint)
    existed = path.exists()
    journal = Journal(path)
    try:
        meta = journal.meta()
        if existed and meta.get("status") == "running" and not args.resume:
            raise UsageError(
                f"an interrupted rotation of this prefix to this key exists (journal {path}): "
                "pass --resume to continue it"
            )
        if args.resume and not meta:
            raise UsageError(f"nothing to resume: no journal at {path}")
        start = settings.start(
            s3_settings(args), to=args.to, old=args.old or (), pkcs11_module=args.pkcs11_module
        )
        owner = begin(journal, start, started)
        cancel = CancelToken()
        rot = Rotation(make_client(s3_settings(args)), settings, cancel=cancel)
        try:
            with cancel_on_sigint(cancel):
                outcome = rot.run(journal, owner)
        except Cancelled:
            echo(
                f"sealcheck: cancelled; nothing is half-written. Resume with: sealcheck rotate "
                f"run {args.location} --to {args.to} --resume",
                file=sys.stderr,
            )
            return int(ExitCode.CANCELLED)
        journal.set_meta(status="finished" if outcome.complete else "finished, some not rotated")
        outcome.warnings += _warnings(args)
        report = build("run", settings, outcome, old, started=started, journal=str(path))
    finally:
        journal.close()
    if args.report:
        with AtomicWriter(args.report, overwrite=True) as f:
            f.write(json.dumps(report, indent=2).encode() + b"\n")
    code = 0 if outcome.complete else 1
    record_rotation(args, report, code)
    _print(args, report, outcome)
    return code


def _print(args: argparse.Namespace, report: dict[str, Any], outcome: Outcome) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
        return
    new = report["new_key"]
    echo(f"{report['operation'].upper()}  {report['source']}  ({report['scope']} versions)")
    echo(f"  new key: {new['label']} {new['spki_sha256']} RSA-{new['bits']}")
    echo(f"  proof of possession: {new['proof_of_possession']}")
    for item in outcome.items:
        echo(_line(item))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(outcome.counts().items()))
    echo(f"  {len(outcome.items)} version(s): {counts or 'none'}")
    for w in outcome.warnings:
        echo(f"  warning: {w}")
    echo(f"  {NOT_REVOCATION}")


def _line(item: Item) -> str:
    mark = _MARK.get(item.step, item.step.value.upper())
    head = f"  {mark:<8} {item.data_key} @ {item.data_version}"
    if item.step is Step.CANNOT:
        return f"{head}: {item.reason}"
    if item.step is Step.ALREADY:
        return f"{head}: {item.reason} ({item.link_name})"
    via = f" opened with {item.old_key} ({item.padding}, {item.wire})" if item.old_key else ""
    return f"{head}{via} -> {item.link_name}"


def cmd_status(args: argparse.Namespace) -> int:
    paths = [args.journal] if args.journal else list(journals())
    rows: list[dict[str, Any]] = []
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"no journal at {path}")
        j = Journal(Path(path))
        try:
            rows.append({"journal": str(path), **j.meta(), "counts": j.counts()})
        finally:
            j.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        echo("no rotations recorded")
    for r in rows:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(r["counts"].items()))
        echo(f"{r.get('status', '?'):<10} {r.get('source', '?')} -> {r.get('new_key', '?')}")
        echo(f"           {counts or 'no versions'}  ({r['journal']})")
    return 0
