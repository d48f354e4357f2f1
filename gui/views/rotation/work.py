"""What the wizard's long steps run on the worker, and the choices they run with.

Qt-free: plain functions of core's rotation API, the same calls ``sealcheck rotate
plan|run`` makes (core/cli/rotate.py), so the app and the CLI share one journal per
prefix and new key and resume each other's runs. No secret is kept here: keys are
core KeySources, opened on the GUI thread (where a passphrase or PIN is asked).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sealcheck.core.keys.base import KeySource
from sealcheck.core.keys.discovery import held_keys
from sealcheck.core.keys.prompt import SecretProvider
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.plumbing.atomic import AtomicWriter
from sealcheck.core.records.history import History, HistoryError
from sealcheck.core.rotation.engine import Outcome, Rotation, Settings
from sealcheck.core.rotation.gpgresume import gpg_start, resumed_options
from sealcheck.core.rotation.journal import Item, Journal, Start, begin, journal_for, now_iso
from sealcheck.core.rotation.newkey import NewKey, prove_possession
from sealcheck.core.rotation.report import build
from sealcheck.core.rotation.report_html import to_html
from sealcheck.core.rotation.scope import Scope
from sealcheck.core.rotation.wire import PKCS1V15
from sealcheck.core.storage.naming import Rule
from sealcheck.core.storage.s3.client import S3Settings, make_client

from ...jobs.worker import WorkerContext


@dataclass(frozen=True)
class Where:
    """The scope page's answer: which versions of which prefix."""

    bucket: str
    prefix: str
    s3: S3Settings = field(default_factory=S3Settings)
    rules: tuple[Rule, ...] = ()
    scope: Scope = Scope.CURRENT

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class HeldKey:
    """One old key the wizard found, and where it is held (in words)."""

    key: KeySource
    where: str  # "PEM file (this source)", "keyring", "token"

    @property
    def bits(self) -> int:
        return int(self.key.modulus_bytes) * 8


def where_of(key: KeySource) -> str:
    if getattr(key, "hardware", False) or key.label.startswith("pkcs11:"):
        return "token"
    if key.label.startswith("keyring:"):
        return "in custody (OS keyring + encrypted file)"
    return "PEM file"


def find_held(
    _ctx: WorkerContext | None, module: str | None, pin: SecretProvider | None = None
) -> list[KeySource]:
    """Keys in custody and, with a PKCS#11 module, the token's keys (their public objects:
    no PIN asked here; ``pin`` logs in when a key is used)."""
    return list(held_keys(KeyContext(pin=pin, pkcs11_module=module)))


def prove(_ctx: WorkerContext | None, new: NewKey) -> str:
    """The proof of possession, with the padding the originals use (PKCS#1 v1.5)."""
    if prove_possession(new, PKCS1V15):
        return f"✔ The new private key decrypted a random challenge ({PKCS1V15})."
    return "Public key only: nobody proved holding the new private key."


def settings_for(where: Where, new: NewKey, old: Sequence[KeySource]) -> Settings:
    return Settings(
        bucket=where.bucket,
        prefix=where.prefix,
        new=new,
        old_keys=list(old),
        rules=where.rules,
        scope=where.scope,
    )


def plan_job(ctx: WorkerContext, settings: Settings, s3: S3Settings) -> Outcome:
    """The dry run: every version in scope and what will happen to it (writes nothing)."""
    rot = Rotation(
        make_client(s3),
        settings,
        cancel=ctx.cancel,
        progress=lambda n, total, _i: ctx.progress(("plan", n, total)),
    )
    return rot.plan()


@dataclass
class RunStats:
    """What the run page shows: versions finished of all, and the ETA from the rate."""

    done: int
    total: int
    started: float
    first_done: int  # already final when this run started (a resume)

    @property
    def eta(self) -> float | None:
        made = self.done - self.first_done
        if made <= 0:
            return None
        rate = made / max(time.monotonic() - self.started, 1e-6)
        return (self.total - self.done) / rate


@dataclass
class RunResult:
    outcome: Outcome
    report: dict[str, Any]
    journal: Path
    recorded: str = ""  # where the history keeps the report, or why it does not


def record(history: History | None, report: dict[str, Any], complete: bool) -> str:
    """The run's report in the history (as ``sealcheck rotate run`` records it); what
    became of it, in words. A history that cannot be written never fails the run."""
    if history is None:
        return "Not recorded: there is no verification history in this session."
    try:
        e = history.record_rotation(report, exit_code=0 if complete else 1)
    except HistoryError as exc:
        return f"Not recorded in the history: {exc.message()}"
    return f"Recorded in the history as entry #{e.id}."


def run_job(
    ctx: WorkerContext,
    settings: Settings,
    s3: S3Settings,
    start: Start,
    journal_dir: Path | None,
    history: History | None = None,
) -> RunResult:
    """The journaled run (or its resume: the journal says what is done). Cancel stops
    starting versions; those in flight finish their step, so nothing is half-written."""
    started = now_iso()
    path = journal_for(settings.bucket, settings.prefix, settings.new.fingerprint, journal_dir)
    journal = Journal(path)
    try:
        # An interrupted run resumes with its own OpenPGP key (the CLI's --resume alike):
        # the journal's where none is given, another one refused.
        gpg = resumed_options(journal.meta(), settings.gpg, path)
        if gpg is not settings.gpg:
            settings = replace(settings, gpg=gpg)
            start = replace(start, **gpg_start(gpg))
        # What the app (or the CLI) needs to offer and resume it later: names and paths only.
        owner = begin(journal, start, started)
        t0 = time.monotonic()
        first = sum(1 for i in journal.items() if i.step.final)

        def progress(n: int, total: int, _item: Item) -> None:
            ctx.progress(RunStats(n, total, t0, first), force=n == total)

        rot = Rotation(make_client(s3), settings, cancel=ctx.cancel, progress=progress)
        outcome = rot.run(journal, owner)
        journal.set_meta(status="finished" if outcome.complete else "finished, some not rotated")
        report = build(
            "run", settings, outcome, settings.old_keys, started=started, journal=str(path)
        )
    finally:
        journal.close()
    return RunResult(outcome, report, path, record(history, report, outcome.complete))


def export(report: dict[str, Any], path: Path, fmt: str) -> None:
    """Write the report whole or not at all (JSON as ``--report`` writes it, or HTML)."""
    body = to_html(report) if fmt == "html" else json.dumps(report, indent=2).encode() + b"\n"
    with AtomicWriter(path, overwrite=True) as f:
        f.write(body)
