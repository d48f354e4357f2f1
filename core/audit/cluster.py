"""A campaign's items on a Dask cluster (issue 15, ``audit --cluster``).

The coordinator (this process) lists, samples, unwraps each item's data key
(unwrap.py: keys never leave it), submits the items, and records every result in
the history as it streams back: workers never write the history and never see a
private key, a passphrase or a PIN. Only the one backup's unwrapped data key travels
with its item, and only over TLS: on a ``tcp://`` scheduler those items run on the
coordinator instead.

* ``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes on this
  machine, TLS on with a throwaway CA (``Security.temporary()``).
* ``tls://HOST:PORT`` (certificates from ``--cluster-tls-ca/-cert/-key``, else from
  Dask's own configuration, ``distributed.comm.tls``) or
  ``tcp://HOST:PORT`` uses a running scheduler (dask-kubernetes, dask-jobqueue and
  dask-cloudprovider start those; docs/scale.md).

Each item is one task, submitted ``pure=False`` with retries under a key that names
the campaign and a hash of the version, never a secret. A worker that dies mid-task
has its tasks run again elsewhere by the scheduler; a task whose result still could
not be had (it killed workers too often) runs on the coordinator, so nothing is lost,
and each item's one future is recorded once, so nothing is duplicated. Restore tests
and items no per-backup secret opens run on the coordinator (unwrap.py says which).

Dask is imported here only, and only when a cluster is used (the ``dask`` extra).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..decrypt.secrets import Secrets
from ..errors import SealcheckError, UsageError
from ..storage.s3.client import S3Settings, make_client
from .item import ItemContext, Result, run_item
from .plan import Operation, WorkItem
from .unwrap import Pipeline, wipe

_lost = object()
RETRIES = 2  # a task that raised (it never should: see work()) is tried again this often


class ClusterUnavailable(SealcheckError):
    """Cannot use the Dask cluster."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where a campaign's items run: a LocalCluster of ``workers`` processes (no
    address), or the scheduler at ``address``."""

    address: str | None = None
    workers: int = 0
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def encrypted(self) -> bool:
        return self.address is None or self.address.startswith("tls://")

    def describe(self) -> str:
        return f"local:{self.workers}" if self.address is None else self.address


def parse_cluster(
    text: str,
    *,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ClusterSpec:
    t = text.strip()
    tls = (tls_ca, tls_cert, tls_key)
    if t.startswith("local:"):
        n = t[6:]
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--cluster {text}: give local:N with N workers, N at least 1")
        if any(tls):
            raise UsageError("--cluster-tls-*: a local cluster makes its own certificates")
        return ClusterSpec(workers=int(n))
    if t.startswith(("tcp://", "tls://")) and len(t) > 6:
        if any(tls) and not all(tls):
            raise UsageError(
                f"--cluster {text}: give all of --cluster-tls-ca, --cluster-tls-cert and "
                "--cluster-tls-key (the scheduler's CA, this client's certificate and key), "
                "or none to use Dask's own configuration (distributed.comm.tls)"
            )
        if t.startswith("tcp://") and any(tls):
            raise UsageError(f"--cluster {text}: TLS certificates need a tls:// address")
        return ClusterSpec(t, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    raise UsageError(f"--cluster {text}: give local:N, tcp://HOST:PORT or tls://HOST:PORT")


def require_dask() -> None:
    """Refuse --cluster at once, before any listing, when the dask extra is missing."""
    _dask()


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--cluster needs Dask: install the dask extra (pip install 'sealcheck[dask]')"
        ) from None
    return distributed


@contextmanager
def _quiet(level: int) -> Iterator[None]:
    """Dask's own loggers at ``level`` while inside: its INFO lines, and the tracebacks
    it logs for connections that close as a cluster shuts down, are not the campaign's
    output (a task that failed comes back as its item's result, or runs here)."""
    log = logging.getLogger("distributed")
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


@contextmanager
def connect(spec: ClusterSpec) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster; a local one is shut down on leaving."""
    distributed = _dask()
    Security = distributed.security.Security
    with _quiet(logging.ERROR):
        try:
            if spec.address is None:
                sec = Security.temporary()
                cluster = distributed.LocalCluster(
                    n_workers=spec.workers,
                    threads_per_worker=1,
                    processes=True,
                    protocol="tls://",
                    host="127.0.0.1",
                    security=sec,
                    dashboard_address=None,
                    # Its health/metrics HTTP server on this host only, any free port
                    # (the default takes 8787 on every interface).
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                )
                client = distributed.Client(cluster, security=sec)
            else:
                sec = None
                if spec.tls_ca is not None:
                    sec = Security(
                        tls_ca_file=str(spec.tls_ca),
                        tls_client_cert=str(spec.tls_cert),
                        tls_client_key=str(spec.tls_key),
                        require_encryption=True,
                    )
                client = distributed.Client(spec.address, security=sec, timeout="30s")
                cluster = None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterUnavailable(f"{spec.describe()}: {exc}") from None
        try:
            yield client
        finally:
            with _quiet(logging.CRITICAL):
                client.close()
                if cluster is not None:
                    cluster.close()


# --- on the worker -------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """What one task carries: the work item, what opens it, how to reach storage."""

    item: WorkItem
    secrets: Secrets  # only this backup's unwrapped data key (keys/held.py)
    settings: S3Settings

    def __repr__(self) -> str:  # Dask logs a failed task's arguments: never the secret
        return f"Task({self.item.id})"


_clients: dict[S3Settings, Any] = {}
_clients_lock = threading.Lock()


def _s3(settings: S3Settings) -> Any:
    """One S3 client per worker process and settings (credentials from the worker's own
    environment, as the AWS SDKs find them)."""
    with _clients_lock:
        if settings not in _clients:
            _clients[settings] = make_client(settings)
        return _clients[settings]


def work(task: Task) -> Result | None:
    """Run one item on a worker, on the one road (item.run_item). It raises nothing but
    what run_item lets through; the secret is wiped when it ends."""
    try:
        return run_item(task.item, task.secrets, ItemContext(task.settings, _s3(task.settings)))
    finally:
        wipe(task.secrets)


# --- on the coordinator --------------------------------------------------------------


def task_key(campaign_id: str, item: WorkItem, n: int) -> str:
    """A task's name on the scheduler and dashboard: the campaign, the item's place and
    a hash of which version it is (no object name, no secret)."""
    h = hashlib.sha256(item.id.encode()).hexdigest()[:16]
    return f"sealcheck-{campaign_id}-{n:06d}-{h}"  # campaign ids start "audit-"


def run_on_cluster(
    spec: ClusterSpec,
    todo: Sequence[WorkItem],
    secrets: Secrets,
    ctx: ItemContext,
    campaign_id: str,
    *,
    deadline: float | None,
    on_done: Callable[[WorkItem, Result | None], None],
    on_tick: Callable[[], None],
) -> tuple[str | None, list[WorkItem]]:
    """Run ``todo`` on the cluster, handing each result to ``on_done`` on this thread as
    it streams back; return why it stopped early (or None) and the items left for the
    coordinator (restore tests, items no shipped secret opens, tasks the cluster could
    not finish), in order."""
    cancel = ctx.cancel
    local: list[WorkItem] = []
    with connect(spec) as dc:
        as_completed = _dask().as_completed
        threads = sum(w.get("nthreads", 1) for w in dc.scheduler_info()["workers"].values())
        cap = max(2, 2 * threads)  # tasks out at once: enough to keep every thread busy

        def ship(item: WorkItem) -> bool:
            return spec.encrypted and item.operation is Operation.VERIFY

        pipe = Pipeline(todo, secrets, ctx.settings, ctx.client, cancel, ahead=cap, ship=ship)
        done = as_completed(with_results=False)
        # Each task's payload, kept until it ends: the client serialises it in the
        # background, so its secret is wiped only then.
        running: dict[Any, Task] = {}
        stopped: str | None = None
        gone: str | None = None  # why no more can be submitted (the scheduler was lost)
        n = 0
        ticked = 0.0
        try:
            while True:
                if stopped is None and deadline is not None and time.monotonic() >= deadline:
                    stopped = "max-duration"
                    cancel.cancel()
                if stopped is None and cancel.cancelled:
                    stopped = "cancelled"
                if stopped is not None:
                    break
                while len(running) < cap and not pipe.done:
                    p = pipe.get(timeout=0.05 if running else 0.25)
                    if p is None:
                        break
                    if p.secrets is None or gone is not None:
                        wipe(p.secrets)
                        local.append(p.item)
                        continue
                    task = Task(p.item, p.secrets, ctx.settings)
                    key = task_key(campaign_id, p.item, n)
                    try:
                        f = dc.submit(work, task, key=key, pure=False, retries=RETRIES)
                    except (OSError, TimeoutError) as exc:  # the scheduler went away
                        gone = str(exc)
                        wipe(task.secrets)
                        local.append(p.item)
                        continue
                    n += 1
                    running[f] = task
                    done.add(f)
                if not running and pipe.done:
                    break
                batch = done.next_batch(block=False)
                if not batch:
                    time.sleep(0.05)
                for f in batch:
                    task = running.pop(f)
                    wipe(task.secrets)
                    result: Any = _lost
                    if f.status == "finished":
                        try:
                            result = f.result()
                        except (OSError, TimeoutError, CancelledError, asyncio.CancelledError):
                            pass  # finished, but its result could not be fetched
                    # A hinted PKCS#1 v1.5 candidate the data did not confirm: run here,
                    # trying every padding (unwrap.Hints).
                    if pipe.hints.settle(task.item, result, task.secrets):
                        local.append(task.item)
                    elif result is not _lost:
                        on_done(task.item, result)
                    else:
                        # Erred (it killed workers too often) or cancelled by the
                        # cluster (this loop cancels nothing: it stops first), e.g.
                        # when the scheduler was lost: run it here.
                        local.append(task.item)
                    f.release()
                if batch or time.monotonic() - ticked >= 0.25:  # as a local campaign's
                    on_tick()
                    ticked = time.monotonic()
        finally:
            pipe.close()
            if running:
                dc.cancel(list(running))
            for task in running.values():
                wipe(task.secrets)
    return stopped, local
