"""Running one work item: the one road a local campaign, a shard and a Dask worker all
take to verify (or restore-test) one listed version, and what comes back from it.

``run_item`` opens exactly the version the item names (``Locator.open_listed``: no
listing, no re-pairing), prefers a key re-wrapped by a rotation for a key held here,
compares the sidecars the listing found, and runs the pipeline. Opening that fails
before a run (storage, a missing key version) is a result all the same, so every
engine records and counts it; a cancelled run is no result (None).

``ItemResult`` is a result off the machine that made it: the item's identity and the
record's JSON, one JSON Lines row, read back into its dataclasses by the coordinator.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..decrypt.held import held_fingerprints
from ..decrypt.secrets import Secrets
from ..errors import Cancelled, SealcheckError
from ..pipeline.job import Job
from ..pipeline.run import run
from ..plumbing.progress import CancelToken, ProgressEvent
from ..records.identity import SourceIdentity
from ..records.report import ErrorInfo, Report
from ..records.restore_result import RestoreTestResult
from ..records.verdict import Verdict
from ..restoretest.runner import RestoreTestOptions, restore_test
from ..storage.locate import ListedVersion, Locator, sidecars_beside
from ..storage.rewrap import prefer_rotated
from ..storage.s3.client import S3Settings
from ..version import __version__
from .plan import Operation, PlanError, WorkItem, canonical

Result = Report | RestoreTestResult


@dataclass
class ItemContext:
    """What running items shares: the S3 settings and client (boto3 clients are
    thread-safe), the cancel token, the restore-test options."""

    settings: S3Settings
    client: Any = None
    cancel: CancelToken = field(default_factory=CancelToken)
    restore_options: RestoreTestOptions = field(default_factory=RestoreTestOptions)


def run_item(
    item: WorkItem,
    secrets: Secrets,
    ctx: ItemContext,
    progress: Callable[[float], None] | None = None,
) -> Result | None:
    """Verify (or restore-test) one item; None when it was cancelled before it reached
    a result (nothing is recorded for it). ``progress``: the fraction done."""
    if ctx.cancel.cancelled:
        return None
    v = item.listed()

    def on_event(ev: ProgressEvent) -> None:
        if progress is not None:
            progress(ev.fraction or 0.0)

    try:
        locator = Locator(ctx.settings, ctx.cancel, client=ctx.client)
        data, wrapped = locator.open_listed(v)
        # As the CLI and the app open a version: a key re-wrapped by a rotation for
        # a key held here wins over the producer's, and X.sha256, X.info… beside
        # the data are compared too.
        data, wrapped = prefer_rotated(data, wrapped, lambda: held_fingerprints(secrets), v.links)
        sidecars = sidecars_beside(locator.client, data, ctx.cancel) if v.sidecars != () else ()
        job = Job(
            data=data,
            secrets=_copy(secrets),
            wrapped_key=wrapped,
            sidecars=sidecars,
            progress=on_event,
            cancel=ctx.cancel,
            strict=item.strict,
        )
        restore = item.operation is Operation.RESTORE_TEST
        result: Result = restore_test(job, ctx.restore_options) if restore else run(job)
    except Cancelled:
        return None
    except SealcheckError as exc:
        result = _failed_open(v, exc)
    if result.error is not None and result.error.kind == "Cancelled":
        return None
    return result


def _copy(s: Secrets) -> Secrets:
    """Each job its own copy: a run wipes its secrets when it ends."""
    return replace(s, passphrase=bytearray(s.passphrase) if s.passphrase is not None else None)


def _failed_open(v: ListedVersion, exc: SealcheckError) -> Report:
    info = ErrorInfo.from_exc(exc)
    return Report(
        source=SourceIdentity(
            uri=v.where,
            size=v.data.size,
            version_id=v.data.version_id,
            etag=v.data.etag,
            last_modified=v.data.last_modified.isoformat(),
        ),
        wrapped_key=None,
        operation="verify",
        ok=False,
        layers=(),
        formats=(),
        error=info,
        started_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        duration_s=0.0,
        sealcheck_version=__version__,
    )


@dataclass(frozen=True, eq=False)
class ItemResult:
    """One item's result as a shard writes it: the item's identity and operation, the
    exit code (for the verdict, without reading the record), the record as JSON data
    (``to_dict()`` of the result, as the machine that ran it made it), and the SHA-256
    of the plan it belongs to."""

    item: str  # WorkItem.id
    operation: Operation
    exit_code: int
    record: dict[str, Any]
    plan: str = ""

    @classmethod
    def of(cls, item: WorkItem, result: Result, plan: str = "") -> ItemResult:
        return cls(item.id, item.operation, result.exit_code, result.to_dict(), plan)

    @property
    def verdict(self) -> Verdict:
        return Verdict.of(self.exit_code)

    def same(self, other: ItemResult) -> bool:
        """The same proof: one item, one operation, an identical record."""
        return (self.item, self.operation, self.exit_code, self.record) == (
            other.item,
            other.operation,
            other.exit_code,
            other.record,
        )

    def result(self) -> Result:
        """The record back in its dataclasses (PlanError when it is damaged)."""
        where = f"result of {self.item}"
        try:
            if self.operation is Operation.RESTORE_TEST:
                return RestoreTestResult.from_dict(self.record, where)
            return Report.from_dict(self.record, where)
        except ValueError as exc:
            raise PlanError(f"its record cannot be read ({exc})", obj=where) from None

    def to_json(self) -> str:
        return canonical(
            {
                "item": self.item,
                "operation": self.operation.value,
                "exit_code": self.exit_code,
                "record": self.record,
                "plan": self.plan,
            }
        )

    @classmethod
    def from_json(cls, line: str, where: str = "result") -> ItemResult:
        try:
            d = json.loads(line)
            item, code, plan, record = d["item"], d["exit_code"], d["plan"], d["record"]
            if not isinstance(item, str) or not isinstance(plan, str):
                raise TypeError("item or plan is not text")
            if not isinstance(code, int) or isinstance(code, bool):
                raise TypeError("exit_code is not a number")
            if not isinstance(record, dict):
                raise TypeError("record is not a JSON object")
            return cls(item, Operation(d["operation"]), code, record, plan)
        except (ValueError, KeyError, TypeError) as exc:
            raise PlanError(f"not a result row ({exc})", obj=where) from None
