"""``sealcheck audit`` past one machine (issue 15): the shard plan's three commands.

* ``audit s3://B/P … --plan-out PLAN.jsonl``: list and draw as ``audit`` does, write the
  sealed plan, verify nothing (no key needed).
* ``audit --plan PLAN.jsonl --shard i/N --results DEST``: run shard i into DEST. It
  exits 0 when every item of the shard has a verdict in DEST (OK or FAILED: the merge
  is the gate), 2 when some could not be checked or it stopped at ``--max-duration``
  (a retry of the index continues it), 130 when cancelled. It never writes the history.
* ``audit merge PLAN.jsonl RESULTS…``: check every item has exactly one result, record
  them and the campaign in the history, write the signed report; exit codes as
  ``audit``'s (2 also for an incomplete or inconsistent merge, which records nothing).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..audit.campaign import CampaignOptions, drawn, new_campaign_id
from ..audit.item import ItemContext
from ..audit.merge import Merged, bulk, merge, record
from ..audit.plan import Plan, PlanError, parse_plan, read_plan, write_plan
from ..audit.results import Destination, Parts, destination
from ..audit.shard import ShardOutcome, parse_shard, run_shard
from ..errors import ExitCode, UsageError
from ..plumbing.progress import CancelToken
from ..records.history import History
from ..storage.s3.client import S3Settings, make_client, parse_uri
from ..storage.s3.object import S3Object
from .campaignout import Line, check_report_options, finish, parse_duration
from .common import cancel_on_sigint, s3_settings, secrets_from_args
from .termtext import echo

# A plan of 100,000 items is about 50 MB.
MAX_PLAN_BYTES = 1 << 30
# Named in full up to this many; the JSON lists every one.
_NAMED = 20


def cmd_plan_out(args: argparse.Namespace, opts: CampaignOptions) -> int:
    if args.report or args.tsa or args.max_duration:
        raise UsageError(
            "--plan-out verifies nothing: --report, --tsa and --max-duration "
            "go with 'audit merge' and the shards"
        )
    client = make_client(opts.settings)
    d, items, _pop = drawn(opts, client, opts.sample.with_seed(), new_campaign_id())
    campaign = {
        **d.to_dict(),
        "planned_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "endpoint": opts.settings.endpoint_url,
        "strict": opts.strict,
    }
    plan = write_plan(args.plan_out, campaign, items)
    doc = {
        "plan": str(args.plan_out),
        "sha256": plan.sha256,
        "items": len(plan.items),
        "campaign": campaign,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        echo(
            f"PLAN {args.plan_out}  {len(plan.items)} work items of {d.population} versions "
            f"({d.method}); campaign {d.id}\n  sha256 {plan.sha256}"
        )
    return 0


def load_plan(spec: str | Path, args: argparse.Namespace) -> Plan:
    """A plan from a file, or from ``s3://BUCKET/KEY`` (read with this machine's S3
    options): where an array job's pods find it without a volume."""
    text = str(spec)
    if not text.startswith("s3://"):
        return read_plan(Path(text))
    uri = parse_uri(text)
    obj = S3Object(make_client(s3_settings(args)), uri.bucket, uri.key)
    if obj.size > MAX_PLAN_BYTES:
        raise PlanError(f"{obj.size} bytes: larger than a plan can be", obj=text)
    stream, chunks = obj.open(), []
    while chunk := stream.read():
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        return parse_plan(body.decode("utf-8"), text)
    except UnicodeDecodeError:
        raise PlanError("not a shard plan (not UTF-8 text)", obj=text) from None


def _settings(args: argparse.Namespace, plan: Plan) -> S3Settings:
    """The plan's endpoint unless this machine names its own (an in-region endpoint)."""
    s = s3_settings(args)
    return s if s.endpoint_url else replace(s, endpoint_url=plan.campaign.get("endpoint"))


def cmd_shard(args: argparse.Namespace) -> int:
    if args.location is not None or args.operands:
        raise UsageError("--plan runs a shard of the plan: give no location")
    if not args.shard or not args.results:
        raise UsageError("--plan goes with --shard i/N (or auto/N) and --results DIR|s3://B/P")
    if args.report or args.tsa or args.plan_out:
        raise UsageError("a shard writes results only: --report goes with 'audit merge'")
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    spec = parse_shard(args.shard, args.split)
    plan = load_plan(args.plan, args)
    settings = _settings(args, plan)
    client = make_client(settings)
    dest = destination(args.results, settings, create=True, client=client)
    secrets = secrets_from_args(args)
    cancel = CancelToken()
    line = Line() if sys.stderr.isatty() and not args.no_progress and not args.json else None
    try:
        with cancel_on_sigint(cancel):
            out = run_shard(
                plan,
                spec,
                secrets,
                ItemContext(settings, client, cancel),
                dest,
                parallel=args.parallel,
                max_duration=parse_duration(args.max_duration) if args.max_duration else None,
                on_progress=line or (lambda _p: None),
            )
    finally:
        if line:
            line.clear()
        secrets.wipe()
    return _shard_done(args, out, dest.name)


def _shard_done(args: argparse.Namespace, out: ShardOutcome, dest: str) -> int:
    totals: dict[str, int] = {}
    for r in out.written:
        totals[r.verdict.value] = totals.get(r.verdict.value, 0) + 1
    if out.stopped == "cancelled":
        code = int(ExitCode.CANCELLED)
    else:
        code = int(ExitCode.OK) if out.left == 0 else int(ExitCode.USAGE)
    s = out.spec
    if args.json:
        doc = {
            "shard": [s.index, s.count],
            "split": s.split,
            "items": out.items,
            "already_proved": out.already,
            "written": len(out.written),
            "totals": totals,
            "left": out.left,
            "stopped": out.stopped,
            "results": dest,
            "parts": out.parts,
            "exit_code": code,
        }
        print(json.dumps(doc, indent=2))
        return code
    echo(
        f"SHARD {s.index}/{s.count}  {out.items} items: {out.already} proved before, "
        f"{len(out.written)} run now (OK {totals.get('ok', 0)}, FAILED {totals.get('failed', 0)}"
        f", NOT CHECKED {totals.get('not-checked', 0)}); {out.left} left  -> {dest}"
    )
    if out.stopped == "max-duration":
        echo("  stopped at the time limit: run the same shard again to continue it")
    return code


def cmd_merge(args: argparse.Namespace) -> int:
    if len(args.operands) < 2:
        raise UsageError("audit merge PLAN.jsonl RESULTS...: give the plan and its results")
    if args.plan or args.plan_out or args.shard:
        raise UsageError("audit merge takes the plan as its first operand, not --plan")
    check_report_options(args)
    plan = load_plan(args.operands[0], args)
    settings = _settings(args, plan)
    client: Any = None
    dests: list[Destination] = []
    for spec in args.operands[1:]:
        if spec.startswith("s3://") and client is None:
            client = make_client(settings)
        dests.append(destination(spec, settings, create=False, client=client))
    with bulk(), Parts() as parts:
        merged = merge(plan, parts, dests)
        if not merged.complete:
            return _incomplete(args, plan, merged)
        history = History.default(keep_open=True)
        out = record(plan, merged, parts, history, shards=None)
    # The report reads every record back from the history as it writes it, a batch at
    # a time: the tallies say which, in what order.
    with bulk():
        finish(args, history, out.summary, out.entries, population=None)
    return out.exit_code


def _incomplete(args: argparse.Namespace, plan: Plan, m: Merged) -> int:
    if args.json:
        doc = {
            "ok": False,
            "complete": False,
            "plan": plan.name,
            "items": len(plan.items),
            "missing": m.missing,
            "conflicts": m.conflicts,
            "strangers": m.strangers,
            "exit_code": int(ExitCode.USAGE),
        }
        print(json.dumps(doc, indent=2))
        return int(ExitCode.USAGE)
    echo(
        f"MERGE INCOMPLETE  {plan.name}: {len(plan.items)} items, {len(m.missing)} missing, "
        f"{len(m.conflicts)} with conflicting results, {len(m.strangers)} results that match "
        "no item; nothing was recorded (rerun the shards, then merge again)"
    )
    for item in m.missing[:_NAMED]:
        echo(f"  missing      {item}")
    for item, where in list(m.conflicts.items())[:_NAMED]:
        echo(f"  conflicting  {item}: {' / '.join(where)}")
    for what in m.strangers[:_NAMED]:
        echo(f"  not in plan  {what}")
    hidden = max(0, len(m.missing) - _NAMED) + max(0, len(m.conflicts) - _NAMED)
    if hidden:
        echo(f"  ... and {hidden} more (--json lists them all)")
    return int(ExitCode.USAGE)
