"""The coordinator's own throughput for a sharded campaign (issue 15; a script, not a
timed test): plan-out and merge of N synthetic items, no S3 and no verifying.

One real record is made first: a SecureCircle backup (gzip | openssl enc, its secret
wrapped with openssl rsautl, by the seed's own commands) verified by ``sealcheck
verify --json``. Every synthetic item's result is that record with the item's identity
(so each row is the size of a real one, layers and proofs included). Then, timed:

* plan-out: N listed versions -> work items -> the sealed plan file (the listing's own
  S3 requests are not included: a ListObjectVersions page is 1,000 versions);
* plan read: what every shard does first (read, check the SHA-256, parse);
* shards' results: the N rows written as create-only parts of 100 rows in a folder, as
  shards do (not the coordinator's time: shown for scale);
* merge: read every part, check each item has exactly one result, parse the records,
  record them in the chained history in one transaction, the campaign record;
* report: the signed JSON evidence report of the merged campaign, written to a file as
  ``audit merge --report FILE.json`` writes it (streamed: the records read back from the
  history a batch at a time); the peak RSS of the process, and of the report alone.

    .venv/bin/python bench/scale_bench.py --items 100000
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def real_record(work: Path) -> dict[str, Any]:
    from fixtures.dumps import mysql_like
    from fixtures.pipelines import make_rsa_key, securecircle

    key = make_rsa_key(work / "keys", "bench", 2048)
    dump = mysql_like(work / "dump.sql", rows=200)
    b = securecircle(dump, work / "backup", key, name="nightly")
    assert b.wrapped_key is not None
    r = subprocess.run(
        [sys.executable, "-m", "sealcheck.core.cli", "verify", str(b.data), "--key",
         str(key.private), "--wrapped-key", str(b.wrapped_key), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


class Clock:
    """Wall time of each phase, and this process's CPU time (the machine is shared: CPU
    time says what the work costs, wall time what it took under the load)."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def start(self) -> tuple[float, float]:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self.wall, self.cpu

    def done(self, name: str, since: tuple[float, float] | None = None) -> None:
        wall0, cpu0 = since or (self.wall, self.cpu)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        self.figures[name], self.figures[f"{name} (cpu)"] = wall, cpu
        print(f"{name:<34} {wall:8.2f} s wall  {cpu:8.2f} s cpu", flush=True)
        self.start()


def make(work: Path, n: int, clock: Clock) -> None:
    """The coordinator's plan-out, and the results N shards would write."""
    from sealcheck.core.audit.item import ItemResult
    from sealcheck.core.audit.plan import Operation, WorkItem, read_plan, write_plan
    from sealcheck.core.audit.results import Folder, PartWriter
    from sealcheck.core.audit.summary import Drawn
    from sealcheck.core.records.report import Report
    from sealcheck.core.storage.listing import ObjectVersion
    from sealcheck.core.storage.locate import ListedVersion

    template = real_record(work)
    made = _dt.datetime(2026, 12, 1, tzinfo=_dt.UTC)
    clock.start()
    listed = []
    for i in range(n):
        obj = f"db/set{i % 1000:04d}/nightly.sql.gz"
        data = ObjectVersion(obj, f"v{i:08d}", 5_000_000 + i, made, f'"{i:032x}"', False)
        key = ObjectVersion(obj + ".key", f"k{i:08d}", 256, made, f'"{i:031x}k"', False)
        listed.append(ListedVersion("estate", data, key, sidecars=()))
    items = [
        WorkItem.of(v, endpoint="https://s3.eu-west-1.amazonaws.com", operation=Operation.VERIFY,
                    strict=True)
        for v in listed
    ]  # fmt: skip
    drawn = Drawn(
        id="audit-bench",
        where="s3://estate/db/",
        versions="all",
        population=n,
        method="whole population",
        seed=None,
        slice=None,
        restore=None,
        skipped=(),
        newest={},
        resume_key={},
        trigger="audit",
    )
    plan_path = work / "plan.jsonl"
    write_plan(plan_path, drawn.to_dict(), items)
    clock.done("plan-out (items + sealed file)")
    clock.figures["plan_bytes"] = plan_path.stat().st_size
    plan = read_plan(plan_path)
    clock.done("plan read + check (each shard)")

    writer = PartWriter(Folder(work / "results", create=True), 0, 1)
    for item in plan.items:
        rec = dict(template)
        rec["source"] = {
            **template["source"],
            "uri": f"s3://{item.bucket}/{item.key}",
            "version_id": item.version_id,
            "size": item.size,
            "etag": item.etag,
        }
        writer.add(ItemResult.of(item, Report.from_dict(rec), plan.sha256))
    writer.flush()
    clock.done("shards write results (for scale)")
    clock.figures["results_bytes"] = sum(p.stat().st_size for p in (work / "results").iterdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument(
        "--merge-only",
        type=Path,
        metavar="WORK",
        help="merge again the plan and results an earlier run left in WORK (a new history)",
    )
    ap.add_argument("--no-report", action="store_true", help="stop after the merge")
    args = ap.parse_args()

    from sealcheck.core.audit.merge import bulk
    from sealcheck.core.audit.plan import read_plan

    work = args.merge_only or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    os.environ["SEALCHECK_DATA_DIR"] = tempfile.mkdtemp(prefix="data-", dir=work)
    clock = Clock()
    if args.merge_only is None:
        make(work, args.items, clock)

    plan = read_plan(work / "plan.jsonl")
    with bulk():  # as `audit merge` does
        merge_and_report(work, plan, clock, report=not args.no_report)
    print(json.dumps({k: round(v, 3) for k, v in clock.figures.items()}))
    print(f"work folder: {work} (remove when done)")


def merge_and_report(work: Path, plan: Any, clock: Clock, *, report: bool) -> None:
    from sealcheck.core.audit.merge import merge, record
    from sealcheck.core.audit.results import Folder, Parts
    from sealcheck.core.plumbing.atomic import AtomicWriter
    from sealcheck.core.records import evidence, report_formats
    from sealcheck.core.records.history import History
    from sealcheck.core.records.report_file import failures_first

    n = len(plan.items)
    merge_started = clock.start()
    with Parts() as parts:
        merged = merge(plan, parts, [Folder(work / "results", create=False)])
        assert merged.complete and len(merged.chosen) == n
        clock.done("merge: read parts, one result per item")
        history = History.default(keep_open=True)
        out = record(plan, merged, parts, history, shards=None)
        clock.done("merge: parse + record history + campaign")
    clock.done(f"MERGE TOTAL ({n} results)", merge_started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clock.figures["peak_rss_mib_after_merge"] = peak
    print(f"peak RSS after the merge: {peak:.0f} MiB", flush=True)
    assert out.summary["totals"] == {"ok": n}, out.summary["totals"]
    if not report:
        return

    # As `audit merge --report FILE.json` writes it: the records read back from the
    # history a batch at a time as the report is signed and written (failures first).
    rss_after_merge = _rss_mib()
    fresh_peak = _reset_peak()
    ids = [e.id for e in sorted(out.entries, key=failures_first)]
    body = evidence.build_streamed(history, ids, sections={"campaign": out.summary})
    signed = evidence.sign(body, history, None)
    clock.done("report: chain spine + body digest")
    path = work / "report.json"
    with AtomicWriter(path, overwrite=True) as f:
        report_formats.write(signed, "json", f)
    clock.done("report: JSON written")
    clock.figures["report_bytes"] = path.stat().st_size
    path.unlink()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clock.figures["peak_rss_mib_after_report"] = peak
    print(f"peak RSS after the report: {peak:.0f} MiB (the process)", flush=True)
    if fresh_peak:
        # The report's own high-water mark (VmHWM, reset once the merge was done).
        hwm = _hwm_mib()
        clock.figures["rss_mib_before_report"] = rss_after_merge
        clock.figures["peak_rss_mib_during_report"] = hwm
        print(f"RSS when the report began: {rss_after_merge:.0f} MiB; its peak: {hwm:.0f} MiB")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _hwm_mib() -> float:
    return _status_mib("VmHWM")


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux: 5 into /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
