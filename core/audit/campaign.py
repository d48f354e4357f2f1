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

import datetime as _dt
import json
import os
import secrets as _secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..decrypt.secrets import Secrets
from ..errors import ExitCode, UsageError
from ..plumbing.progress import CancelToken
from ..records.history import Entry, History, Kind, Trigger
from ..records.targets import SourceTargets, Targets, targets_for
from ..restoretest.runner import RestoreTestOptions
from ..storage.listing import Grouper, iter_complete_pages
from ..storage.locate import ListedVersion
from ..storage.naming import Rule
from ..storage.rewrap import UNVERSIONED_ID
from ..storage.s3.client import S3Settings, make_client, parse_uri
from .cluster import ClusterSpec
from .item import ItemContext, Result
from .plan import Operation, WorkItem
from .pool import Progress, run_pool
from .sample import SampleSpec, draw, identity
from .summary import Drawn, newest_of, summarize

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
    grouper = Grouper(loc.rules)
    for whole, page in iter_complete_pages(client, uri.bucket, uri.key):
        if whole:
            grouper.replace(page)
        else:
            grouper.add(page)
    # The whole prefix was listed, rotation's re-wrapped keys (X.key.rewrap/…) and
    # envelopes (X.rewrap/…) too: each version is given the ones named for it, and
    # opening it lists none (issue 14: one LIST per version otherwise).
    links = grouper.links()
    for s in grouper.sets:
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
            vid = d.version_id or UNVERSIONED_ID
            names = [d.key] + ([p.key.key] if p.key is not None else [])
            mine = tuple(x for n in names for x in links.get((n, vid), ()))
            out.append(ListedVersion(uri.bucket, d, p.key, sidecars=s.sidecars, links=mine))
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


def drawn(
    opts: CampaignOptions, client: Any, spec: SampleSpec, campaign_id: str
) -> tuple[Drawn, list[WorkItem], list[ListedVersion]]:
    """List the population and draw the sample: the campaign's record of what it set
    out to check, its work items, and the population (for coverage)."""
    pop, skipped = population(opts, client)
    sample = draw(pop, spec)
    seed = spec.seed if spec.seed is not None else 0
    to_restore = restore_picks(sample, opts.restore, seed)
    d = Drawn(
        id=campaign_id,
        where=opts.location,
        versions=opts.versions,
        population=len(pop) + len(skipped),
        method=spec.method,
        seed=spec.seed,
        slice=spec.slice,
        restore=opts.restore,
        skipped=tuple(skipped),
        newest=newest_of(pop),
        resume_key=opts.resume_key(opts.sample.seed),
        trigger=opts.trigger.value,
        target_rto_s=opts.target_rto_s,
        target_rpo_h=opts.target_rpo_h,
        source_targets=opts.source_targets,
    )
    return d, work_items(sample, to_restore, opts), pop


def new_campaign_id() -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"audit-{stamp}-{_secrets.token_hex(3)}"


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
        self._on_cluster = 0  # this run's results that came back from the cluster
        self.cancel = cancel or CancelToken()
        self.on_progress = on_progress or (lambda _p: None)
        self.restore_options = restore_options or RestoreTestOptions()

    def run(self) -> Outcome:
        started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        client = make_client(self.opts.settings)
        spec, campaign_id, earlier = self._resume_or_new()
        resumed = earlier is not None
        earlier = earlier or []
        d, items, pop = drawn(self.opts, client, spec, campaign_id)
        done_before = self._proved(earlier)
        todo = [i for i in items if (i.key, i.version_id) not in done_before]

        stopped = self._run_all(todo, campaign_id, client)
        results = self.history.entries(campaign=campaign_id)
        summary = summarize(
            d,
            items,
            results,
            started=started,
            stopped=stopped,
            resumed=resumed,
            parallel=self.opts.parallel,
        )
        summary["cluster"] = self.opts.cluster.describe() if self.opts.cluster else None
        if self.opts.cluster is not None:
            # How many of this run's results came back from the cluster's workers; the
            # others ran on the coordinator (restore tests, passphrase backups, items no
            # per-backup secret opens: docs/scale.md).
            summary["on_cluster"] = self._on_cluster
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

    def _resume_or_new(self) -> tuple[SampleSpec, str, list[Entry] | None]:
        """The sample, the campaign id and what it recorded so far: None for a new
        campaign (a resumed one may have recorded nothing yet: stopped that early)."""
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
            again = replace(spec, seed=seed if isinstance(seed, int) else spec.seed)
            return again, str(s["id"]), self.history.entries(campaign=str(s["id"]))
        return spec.with_seed(), new_campaign_id(), None

    @staticmethod
    def _proved(earlier: list[Entry]) -> set[tuple[str, str | None]]:
        return {(e.subject.key, e.subject.version_id) for e in earlier if e.verdict.is_verdict}

    # --- the work --------------------------------------------------------------------

    def _run_all(self, todo: list[WorkItem], campaign_id: str, client: Any) -> str | None:
        self._on_cluster = 0
        deadline = time.monotonic() + self.opts.max_duration if self.opts.max_duration else None
        ctx = ItemContext(self.opts.settings, client, self.cancel, self.restore_options)
        prog = Progress(len(todo), sum(item.size for item in todo))

        def record(item: WorkItem, result: Result) -> None:
            self.history.record(
                result,
                trigger=self.opts.trigger,
                campaign=campaign_id,
                targets=self.opts.targets_of(f"s3://{item.bucket}/{item.key}"),
            )

        def cluster_done(item: WorkItem, result: Result | None) -> None:
            """One item ended on the cluster (or here, for it): count it, record it."""
            prog.done(item)
            if result is not None:
                record(item, result)
                self._on_cluster += 1

        if self.opts.cluster is not None:
            from .cluster import run_on_cluster

            early, todo = run_on_cluster(
                self.opts.cluster,
                todo,
                self.secrets,
                ctx,
                campaign_id,
                deadline=deadline,
                on_done=cluster_done,
                on_tick=lambda: self.on_progress(prog),
            )
            if early is not None:
                return early
        return run_pool(
            todo,
            self.secrets,
            ctx,
            parallel=self.opts.parallel,
            deadline=deadline,
            on_result=record,
            on_progress=self.on_progress,
            prog=prog,
        )
