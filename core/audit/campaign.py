"""One audit campaign: list the population, draw the sample, verify each sampled version
(restore-test the chosen ones) on a bounded thread pool, record every result and the
campaign itself in the chained history.

* Resumable. A campaign stopped by its time limit (or cancelled) is recorded as
  incomplete with a resume key (where, which versions, the sample and its seed, the
  restore tests). The next run with the same choice continues it: same campaign id and
  seed, and every version that already reached a verdict in it is skipped, its
  outcome carried into the totals.
* Skipped, never failed: versions in Glacier Flexible Retrieval or Deep Archive need a
  restore before they can be read; they are listed with the reason.
* The outcome per version is the history's verdict (verdict.py): a run that could not
  check a version (no key opens it, storage refused) is NOT CHECKED, not a failure.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import json
import os
import secrets as _secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..decrypt.secrets import Secrets
from ..errors import ExitCode, UsageError
from ..plumbing.progress import CancelToken
from ..records.history import Entry, History, Kind, Trigger
from ..records.targets import SourceTargets, Targets, targets_for
from ..records.verdict import Verdict
from ..restoretest.runner import RestoreTestOptions
from ..storage.listing import list_backup_sets
from ..storage.locate import ListedVersion
from ..storage.naming import Rule
from ..storage.s3.client import S3Settings, make_client, parse_uri
from . import targets
from .cluster import ClusterSpec
from .item import ItemContext, Result, run_item
from .plan import Operation, WorkItem
from .sample import SampleSpec, draw, identity

# Storage classes whose objects cannot be read without a restore request first.
NEEDS_RESTORE = {"GLACIER": "Glacier Flexible Retrieval", "DEEP_ARCHIVE": "Glacier Deep Archive"}


@dataclass(frozen=True)
class CampaignOptions:
    location: str  # s3://bucket/prefix
    settings: S3Settings
    rules: tuple[Rule, ...] = ()
    versions: str = "all"  # current | all | since:YYYY-MM-DD
    sample: SampleSpec = field(default_factory=SampleSpec)
    restore: str | None = None  # newest | sample:N
    parallel: int = os.cpu_count() or 1
    max_duration: float | None = None  # seconds
    strict: bool = True  # a payload nobody could check fails an audit
    trigger: Trigger = Trigger.AUDIT  # SCHEDULE when a timer or cron started it
    target_rto_s: float | None = None  # the longest a restore may take
    target_rpo_h: float | None = None  # the oldest the newest backup of a set may be
    cluster: ClusterSpec | None = None  # a Dask cluster for the items (issue 15; cluster.py)
    # Per source, from the sources file (records/targets.py); the two above override.
    source_targets: tuple[SourceTargets, ...] = ()

    def targets_of(self, uri: str) -> Targets:
        return targets_for(uri, self.source_targets, self.target_rto_s, self.target_rpo_h)

    def resume_key(self, seed: int | None) -> dict[str, Any]:
        s = self.sample
        return {
            "where": self.location,
            "versions": self.versions,
            "sample": [s.count, s.percent, seed, list(s.slice) if s.slice else None],
            "restore": self.restore,
        }


@dataclass
class Progress:
    """The campaign's one progress line: versions and bytes done of the sample."""

    total_versions: int
    total_bytes: int
    started: float = field(default_factory=time.monotonic)
    done_versions: int = 0
    done_bytes: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)

    @property
    def eta(self) -> float | None:
        done = self.done_bytes + sum(self.in_flight.values())
        elapsed = time.monotonic() - self.started
        if done <= 0 or elapsed < 0.5:
            return None
        return max(0.0, elapsed / done * (self.total_bytes - done))


@dataclass
class Outcome:
    """What came of a campaign: its record and what the CLI prints and exits with."""

    summary: dict[str, Any]
    entries: list[Entry]  # the results of this campaign, all parts, and its records
    exit_code: int
    population: list[ListedVersion] = field(default_factory=list)


def population(
    loc: CampaignOptions, client: Any
) -> tuple[list[ListedVersion], list[dict[str, Any]]]:
    """Every backup version under the location the ``versions`` choice keeps, and
    what was left out and why."""
    uri = parse_uri(loc.location)
    since = _since(loc.versions)
    out: list[ListedVersion] = []
    skipped: list[dict[str, Any]] = []
    for s in list_backup_sets(client, uri.bucket, uri.key, loc.rules):
        if not s.recognised:
            continue
        for p in s.pairs:
            d = p.data
            if d.delete_marker:
                continue
            if loc.versions == "current" and not d.is_latest:
                continue
            if since is not None and d.last_modified < since:
                continue
            out.append(ListedVersion(uri.bucket, d, p.key, sidecars=s.sidecars))
    keep = []
    for v in out:
        cls = v.data.storage_class or ""
        if cls in NEEDS_RESTORE:
            skipped.append(
                {
                    "version": identity(v),
                    "storage_class": cls,
                    "why": f"in {NEEDS_RESTORE[cls]}: needs a restore request before it can "
                    "be read (not a failure)",
                }
            )
        else:
            keep.append(v)
    return keep, skipped


def _since(versions: str) -> _dt.datetime | None:
    if versions in ("all", "current"):
        return None
    if versions.startswith("since:"):
        try:
            day = _dt.datetime.fromisoformat(versions[6:])
        except ValueError:
            raise UsageError(f"--versions {versions}: give since:YYYY-MM-DD") from None
        return day if day.tzinfo else day.replace(tzinfo=_dt.UTC)
    raise UsageError(f"--versions {versions}: give current, all or since:YYYY-MM-DD")


def restore_picks(sample: Sequence[ListedVersion], how: str | None, seed: int) -> set[str]:
    """Which sampled versions are restore-tested: the newest of each backup, or N of the
    sample drawn with the campaign's seed."""
    if not how:
        return set()
    if how == "newest":
        newest: dict[str, ListedVersion] = {}
        for v in sample:
            cur = newest.get(v.where)
            if cur is None or v.data.last_modified > cur.data.last_modified:
                newest[v.where] = v
        return {identity(v) for v in newest.values()}
    if how.startswith("sample:") and how[7:].isdigit() and int(how[7:]) > 0:
        picked = draw(sample, SampleSpec(count=int(how[7:]), seed=seed))
        return {identity(v) for v in picked}
    raise UsageError(f"--restore-test {how}: give newest or sample:N")


def work_items(
    sample: Sequence[ListedVersion], to_restore: set[str], opts: CampaignOptions
) -> list[WorkItem]:
    """The sample as work items: what a local campaign runs and a shard plan holds."""
    return [
        WorkItem.of(
            v,
            endpoint=opts.settings.endpoint_url,
            operation=Operation.RESTORE_TEST if identity(v) in to_restore else Operation.VERIFY,
            strict=opts.strict,
        )
        for v in sample
    ]


class Campaign:
    def __init__(
        self,
        opts: CampaignOptions,
        secrets: Secrets,
        history: History,
        *,
        cancel: CancelToken | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        restore_options: RestoreTestOptions | None = None,
    ) -> None:
        if opts.parallel < 1:
            raise UsageError("--parallel must be at least 1")
        self.opts = opts
        self.secrets = secrets
        self.history = history
        self.cancel = cancel or CancelToken()
        self.on_progress = on_progress or (lambda _p: None)
        self.restore_options = restore_options or RestoreTestOptions()
        self._lock = threading.Lock()

    def run(self) -> Outcome:
        started = _dt.datetime.now(_dt.UTC)
        client = make_client(self.opts.settings)
        pop, skipped = population(self.opts, client)
        spec, campaign_id, earlier = self._resume_or_new()
        sample = draw(pop, spec)
        seed = spec.seed if spec.seed is not None else 0
        to_restore = restore_picks(sample, self.opts.restore, seed)
        done_before = self._proved(earlier)
        todo = [
            item
            for item in work_items(sample, to_restore, self.opts)
            if (item.key, item.version_id) not in done_before
        ]
        prog = Progress(len(todo), sum(item.size for item in todo))
        stopped = self._run_all(todo, campaign_id, client, prog)
        results = self.history.entries(campaign=campaign_id)
        summary = self._summary(
            campaign_id,
            started,
            pop,
            sample,
            skipped,
            spec,
            to_restore,
            results,
            stopped,
            resumed=bool(earlier),
        )
        code = summary["exit_code"]
        rec = self.history.record_campaign(
            summary,
            where=self.opts.location,
            ok=code == ExitCode.OK,
            exit_code=code,
            campaign=campaign_id,
            trigger=self.opts.trigger,
        )
        mine = self.history.entries(campaign=campaign_id, campaigns=True)
        entries = sorted(mine, key=lambda e: e.id)
        assert rec.id in {e.id for e in entries}
        return Outcome(summary, entries, code, pop)

    # --- resume ----------------------------------------------------------------------

    def _resume_or_new(self) -> tuple[SampleSpec, str, list[Entry]]:
        spec = self.opts.sample
        # The seed the user gave (None: drawn by the first run, then kept by the resume).
        wanted = self.opts.resume_key(spec.seed)
        for e in self.history.entries(kind=Kind.AUDIT, source=self.opts.location, limit=50):
            try:
                s = json.loads(e.result_json)
            except ValueError:
                continue
            if s.get("where") != self.opts.location or s.get("resume_key") != wanted:
                continue
            if s.get("complete"):
                break  # the last such campaign finished: start a new one
            seed = s.get("seed")
            resumed = replace(spec, seed=seed if isinstance(seed, int) else spec.seed)
            return resumed, str(s["id"]), self.history.entries(campaign=str(s["id"]))
        new = spec.with_seed()
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return new, f"audit-{stamp}-{_secrets.token_hex(3)}", []

    @staticmethod
    def _proved(earlier: list[Entry]) -> set[tuple[str, str | None]]:
        return {(e.subject.key, e.subject.version_id) for e in earlier if e.verdict.is_verdict}

    # --- the work --------------------------------------------------------------------

    def _run_all(
        self, todo: list[WorkItem], campaign_id: str, client: Any, prog: Progress
    ) -> str | None:
        deadline = time.monotonic() + self.opts.max_duration if self.opts.max_duration else None
        ctx = ItemContext(self.opts.settings, client, self.cancel, self.restore_options)
        if self.opts.cluster is not None:
            from .cluster import run_on_cluster

            def on_done(item: WorkItem, result: Result | None) -> None:
                self._done(item, result, campaign_id, prog)

            early, todo = run_on_cluster(
                self.opts.cluster,
                todo,
                self.secrets,
                ctx,
                campaign_id,
                deadline=deadline,
                on_done=on_done,
                on_tick=lambda: self.on_progress(prog),
            )
            if early is not None:
                return early
        pending = list(reversed(todo))
        running: dict[cf.Future[Result | None], WorkItem] = {}
        stopped: str | None = None
        with cf.ThreadPoolExecutor(self.opts.parallel, thread_name_prefix="audit") as pool:
            while pending or running:
                if stopped is None and deadline is not None and time.monotonic() >= deadline:
                    stopped = "max-duration"
                    self.cancel.cancel()  # the running ones stop; the next run redoes them
                if stopped is None and self.cancel.cancelled:
                    stopped = "cancelled"
                while pending and stopped is None and len(running) < self.opts.parallel:
                    item = pending.pop()
                    running[pool.submit(self._one, item, ctx, prog)] = item
                if not running:
                    break
                done, _ = cf.wait(running, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    self._done(running.pop(f), f.result(), campaign_id, prog)
                self.on_progress(prog)
        return stopped

    def _done(
        self, item: WorkItem, result: Result | None, campaign_id: str, prog: Progress
    ) -> None:
        """One item ended (here or on a cluster's worker): count it, record its result."""
        with self._lock:
            prog.in_flight.pop(item.id, None)
            prog.done_versions += 1
            prog.done_bytes += item.size
        if result is not None:
            self.history.record(
                result,
                trigger=self.opts.trigger,
                campaign=campaign_id,
                targets=self.opts.targets_of(f"s3://{item.bucket}/{item.key}"),
            )

    def _one(self, item: WorkItem, ctx: ItemContext, prog: Progress) -> Result | None:
        size = max(item.size, 1)

        def progress(frac: float) -> None:
            with self._lock:
                prog.in_flight[item.id] = int(frac * size)

        return run_item(item, self.secrets, ctx, progress)

    # --- the record ------------------------------------------------------------------

    def _summary(
        self,
        campaign_id: str,
        started: _dt.datetime,
        pop: list[ListedVersion],
        sample: list[ListedVersion],
        skipped: list[dict[str, Any]],
        spec: SampleSpec,
        to_restore: set[str],
        results: list[Entry],
        stopped: str | None,
        *,
        resumed: bool,
    ) -> dict[str, Any]:
        latest: dict[tuple[str, str | None], Entry] = {}
        for e in sorted(results, key=lambda e: e.id):
            if e.kind is not Kind.AUDIT:
                latest[(e.subject.key, e.subject.version_id)] = e
        totals: dict[str, int] = {}
        for e in latest.values():
            totals[e.verdict.value] = totals.get(e.verdict.value, 0) + 1
        sampled = {_key(v) for v in sample}
        checked = {k for k, e in latest.items() if k in sampled and e.verdict.is_verdict}
        complete = stopped is None and checked == sampled
        verdicts = {e.verdict for e in latest.values()}
        if stopped == "cancelled":
            code = int(ExitCode.CANCELLED)
        elif Verdict.FAILED in verdicts:
            code = int(ExitCode.BACKUP_FAILED)
        elif Verdict.NOT_CHECKED in verdicts:
            code = int(ExitCode.USAGE)
        else:
            code = int(ExitCode.OK)
        return {
            "id": campaign_id,
            "where": self.opts.location,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": self.opts.versions,
            "population": len(pop) + len(skipped),
            "sample_size": len(sample),
            "method": spec.method,
            "seed": spec.seed,
            "slice": list(spec.slice) if spec.slice else None,
            "restore_test": self.opts.restore,
            "restore_tested": sorted(to_restore),
            "parallel": self.opts.parallel,
            "cluster": self.opts.cluster.describe() if self.opts.cluster else None,
            "skipped": skipped,
            "totals": totals,
            "not_yet_checked": len(sampled - checked),
            "stopped": stopped,
            "resumed": resumed,
            "complete": complete,
            "exit_code": code,
            "resume_key": self.opts.resume_key(self.opts.sample.seed),
            "targets": targets.measure(
                pop,
                latest.values(),
                self.opts.source_targets,
                self.opts.target_rto_s,
                self.opts.target_rpo_h,
            ),
        }


def _key(v: ListedVersion) -> tuple[str, str | None]:
    return (v.data.key, v.data.version_id)
