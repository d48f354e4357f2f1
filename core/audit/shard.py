"""One shard of a plan: which items are shard i of N, and running them into a results
destination (what a Kubernetes Indexed Job pod or an AWS Batch array child runs).

* Deterministic: shard i of N is the same items on every machine (the plan is sorted).
  ``strided``: items i, i+N, i+2N… (the default: each shard gets a mix of backups and
  of restore tests); ``contiguous``: the i-th run of about len/N consecutive items.
* The index counts from 0, as ``JOB_COMPLETION_INDEX`` and
  ``AWS_BATCH_JOB_ARRAY_INDEX`` do; ``auto/N`` reads it from whichever is set.
* Idempotent: a rerun reads the destination first and runs only the items of its shard
  that no earlier run proved (a verdict: OK or FAILED); a run that could not check an
  item (NOT CHECKED) is tried again. Nothing written is ever replaced.
* A shard never writes the history: the coordinator's merge does.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..decrypt.secrets import Secrets
from ..errors import UsageError
from .item import ItemContext, ItemResult, Result
from .plan import Plan, WorkItem
from .pool import Progress, run_pool
from .results import Destination, PartWriter, read_rows

INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")
SPLITS = ("strided", "contiguous")


@dataclass(frozen=True)
class ShardSpec:
    index: int  # from 0
    count: int
    split: str = "strided"

    def pick(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        i, n = self.index, self.count
        if self.split == "strided":
            return list(items[i::n])
        size = len(items)
        return list(items[i * size // n : (i + 1) * size // n])


def parse_shard(text: str, split: str = "strided", env: dict[str, str] | None = None) -> ShardSpec:
    """``i/N`` (0 <= i < N) or ``auto/N`` (i from the array job's own variable)."""
    env = dict(os.environ) if env is None else env
    if split not in SPLITS:
        raise UsageError(f"--split {split}: give strided or contiguous")
    m = re.fullmatch(r"\s*(\d+|auto)\s*/\s*(\d+)\s*", text)
    if not m or int(m[2]) < 1:
        raise UsageError(f"--shard {text!r}: give i/N with 0 <= i < N, or auto/N")
    if m[1] == "auto":
        found = [(v, env[v]) for v in INDEX_VARIABLES if env.get(v, "").strip()]
        if not found:
            raise UsageError(
                f"--shard {text}: neither {' nor '.join(INDEX_VARIABLES)} is set; "
                "give the index (i/N)"
            )
        var, value = found[0]
        if not value.strip().isdigit():
            raise UsageError(f"--shard {text}: {var}={value!r} is not an index")
        index = int(value)
    else:
        index = int(m[1])
    if index >= int(m[2]):
        raise UsageError(f"--shard {text}: index {index} is not below {m[2]} (they count from 0)")
    return ShardSpec(index, int(m[2]), split)


@dataclass
class ShardOutcome:
    spec: ShardSpec
    items: int  # in this shard
    already: int  # proved by an earlier run, skipped
    written: list[ItemResult] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    stopped: str | None = None

    @property
    def left(self) -> int:
        """Items of this shard with no verdict yet (this run or an earlier one)."""
        proved = sum(1 for r in self.written if r.verdict.is_verdict)
        return self.items - self.already - proved


def run_shard(
    plan: Plan,
    spec: ShardSpec,
    secrets: Secrets,
    ctx: ItemContext,
    dest: Destination,
    *,
    parallel: int,
    max_duration: float | None = None,
    on_progress: Callable[[Progress], None] = lambda _p: None,
) -> ShardOutcome:
    mine = spec.pick(plan.items)
    ids = {i.id for i in mine}
    proved = {
        r.result.item for r in read_rows(dest, plan.sha256) if r.result.verdict.is_verdict
    } & ids
    todo = [i for i in mine if i.id not in proved]
    out = ShardOutcome(spec, len(mine), len(proved))
    writer = PartWriter(dest, spec.index, spec.count)

    def keep(item: WorkItem, result: Result) -> None:
        r = ItemResult.of(item, result, plan.sha256)
        out.written.append(r)
        writer.add(r)

    try:
        out.stopped = run_pool(
            todo,
            secrets,
            ctx,
            parallel=parallel,
            deadline=time.monotonic() + max_duration if max_duration else None,
            on_result=keep,
            on_progress=on_progress,
        )
    finally:
        writer.flush()  # what was proved before a stop or an error is kept
        out.parts = writer.parts
    return out
