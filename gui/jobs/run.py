"""The job body, on a pool thread: open the listed version through core's one road
(storage.locate), then core's one pipeline (inside core's restore test for a
restore-test job). Secrets are wiped however the job ends."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from sealcheck.core.decrypt.held import held_fingerprints
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records.report import Report
from sealcheck.core.restoretest import RestoreTestResult, restore_test
from sealcheck.core.storage.locate import Locator, sidecars_beside
from sealcheck.core.storage.rewrap import prefer_rotated
from sealcheck.core.storage.s3.client import S3Settings, make_client

from .spec import JobSpec, RestoreTestSpec
from .worker import WorkerContext


class Clients:
    """One boto3 client per S3 settings (boto3 clients are thread-safe; sessions are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[S3Settings, Any] = {}

    def client(self, settings: S3Settings) -> Any:
        with self._lock:
            if settings not in self._by:
                self._by[settings] = make_client(settings)
            return self._by[settings]


def run_job(
    ctx: WorkerContext, spec: JobSpec, secrets: Secrets, clients: Clients
) -> Report | RestoreTestResult:
    """The job body, on a pool thread: open the sources, then core's one pipeline
    (inside core's restore test for a restore-test job)."""
    # A local file needs no client; an S3 version shares this settings' client. The
    # job's token goes with it, so Cancel reaches S3 retries.
    client = clients.client(spec.s3) if spec.version.bucket is not None else None
    try:
        data, wrapped = Locator(spec.s3, ctx.cancel, client=client).open_listed(spec.version)
        # A key re-wrapped by a rotation for a key held here wins over the producer's, and
        # a rotated gpg envelope made for it over the original.
        known = spec.version.links  # the links its listing found (None: listed here)
        data, wrapped = prefer_rotated(data, wrapped, lambda: held_fingerprints(secrets), known)
        # The listing already said whether sidecars lie beside it: none, no lookup.
        none = spec.version.sidecars == ()
        sidecars = () if none else sidecars_beside(client, data, ctx.cancel)
    except BaseException:
        secrets.wipe()
        raise
    job = Job(
        data=data,
        secrets=secrets,
        wrapped_key=wrapped,
        sidecars=sidecars,
        operation="restore" if spec.operation == "restore" else "verify",
        destination=spec.destination,
        overwrite=spec.overwrite,
        progress=ctx.forward,  # core's Meter throttles, stage changes included
        cancel=ctx.cancel,
    )
    if spec.operation == "restore-test":
        try:
            return _restore_test(job, spec.restore_test or RestoreTestSpec())
        finally:
            secrets.wipe()  # core's run wipes them too, but the test may stop before it runs
    return run(job)


def _restore_test(job: Job, rt: RestoreTestSpec) -> RestoreTestResult:
    if rt.baseline is None:
        return restore_test(job, rt.options(None))
    # Core reads the baseline as a saved result (the CLI's --baseline): hand it a private
    # copy that lives only as long as the test.
    with tempfile.TemporaryDirectory(prefix="sealcheck-baseline-") as tmp:
        path = Path(tmp) / "baseline.json"
        path.write_text(rt.baseline.result.to_json())
        result = restore_test(job, rt.options(path))
    if result.drift is not None:
        result = replace(result, drift=replace(result.drift, baseline=rt.baseline.label))
    return result
