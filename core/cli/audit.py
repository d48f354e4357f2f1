"""``sealcheck audit`` (a campaign over an estate) and ``sealcheck coverage``.

Exit codes of ``audit``, a gate for cron and CI: 0 every checked version OK, 1 any
version FAILED, 2 usage or environment (a version no key opens, storage refused:
NOT CHECKED, which is no verdict on the backup), 130 cancelled. A campaign stopped by
``--max-duration`` exits by what it checked, and the next identical run continues it.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..audit import coverage as cov
from ..audit.campaign import Campaign, CampaignOptions, population
from ..audit.cluster import ClusterSpec, parse_cluster, require_dask
from ..audit.sample import parse_sample
from ..errors import UsageError
from ..plumbing.progress import CancelToken
from ..records import targets
from ..records.history import History, Trigger
from ..storage.s3.client import make_client, parse_uri
from .campaignout import Line, check_report_options, finish, parse_duration
from .common import (
    cancel_on_sigint,
    naming_rules,
    s3_settings,
    secrets_from_args,
)
from .scale import cmd_merge, cmd_plan_out, cmd_shard
from .termtext import echo


def _cluster(args: argparse.Namespace) -> ClusterSpec | None:
    if not args.cluster:
        if args.cluster_tls_ca or args.cluster_tls_cert or args.cluster_tls_key:
            raise UsageError("--cluster-tls-* go with --cluster tls://HOST:PORT")
        return None
    spec = parse_cluster(
        args.cluster,
        tls_ca=args.cluster_tls_ca,
        tls_cert=args.cluster_tls_cert,
        tls_key=args.cluster_tls_key,
    )
    require_dask()
    return spec


def cmd_audit(args: argparse.Namespace) -> int:
    # Past one machine (issue 15): write a plan, run one shard of it, or merge shards;
    # those are run by the shards' engine, not on a Dask cluster.
    if args.cluster and (args.location == "merge" or args.plan or args.plan_out):
        raise UsageError("--cluster runs a campaign from here: not with a plan or a merge")
    if args.location == "merge":
        return cmd_merge(args)
    if args.plan is not None:
        return cmd_shard(args)
    if args.location is None:
        raise UsageError("audit: give s3://BUCKET/PREFIX (or --plan PLAN.jsonl --shard i/N)")
    if args.operands:
        raise UsageError(f"audit: one location, not {args.operands[0]!r} too")
    if args.plan_out is not None:
        return cmd_plan_out(args, campaign_options(args))
    opts = campaign_options(args)
    check_report_options(args)
    secrets = secrets_from_args(args)
    history = History.default(keep_open=True)
    cancel = CancelToken()
    line = Line() if sys.stderr.isatty() and not args.no_progress and not args.json else None
    campaign = Campaign(opts, secrets, history, cancel=cancel, on_progress=line)
    try:
        with cancel_on_sigint(cancel):
            out = campaign.run()
    finally:
        if line:
            line.clear()
        secrets.wipe()
    finish(args, history, out.summary, out.entries, population=out.population)
    return out.exit_code


def campaign_options(args: argparse.Namespace) -> CampaignOptions:
    uri = parse_uri(args.location)
    return CampaignOptions(
        location=f"s3://{uri.bucket}/{uri.key}",
        settings=s3_settings(args),
        rules=naming_rules(args),
        versions=args.versions,
        sample=parse_sample(args.sample, args.seed, args.slice),
        restore=args.restore_test,
        parallel=args.parallel,
        max_duration=parse_duration(args.max_duration) if args.max_duration else None,
        trigger=Trigger(args.trigger),
        target_rto_s=args.target_rto,
        target_rpo_h=args.target_rpo,
        cluster=_cluster(args),
        source_targets=targets.load(),
    )


def cmd_coverage(args: argparse.Namespace) -> int:
    pop = None
    source = args.source
    if args.location:
        uri = parse_uri(args.location)
        opts = CampaignOptions(
            location=f"s3://{uri.bucket}/{uri.key}",
            settings=s3_settings(args),
            rules=naming_rules(args),
        )
        pop, _skipped = population(opts, make_client(opts.settings))
        source = source or f"s3://{uri.bucket}/{uri.key}*"
    rows = cov.coverage(
        History.default(), source=source, population=pop, outdated_days=args.outdated_after
    )
    if args.json:
        print(
            json.dumps(
                {
                    "outdated_after_days": args.outdated_after,
                    "backups": cov.by_backup(rows),
                    "versions": [r.to_dict() for r in rows],
                },
                indent=2,
            )
        )
        return 0
    if not rows:
        echo("Nothing to show: no verdicts in the history" + (" match" if source else ""))
        return 0
    for backup, b in cov.by_backup(rows).items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(b["states"].items()))
        echo(f"{b['state'].upper():<16} {backup}  ({b['versions']} versions: {counts})")
    for r in rows:
        age = f"{r.age_days:.1f} d ago" if r.age_days is not None else "never"
        echo(
            f"  {r.state:<16} {r.backup}@{r.version_id or '(unversioned)'}  verified "
            f"{r.verify_result or '-'} ({age}); restore test {r.restore_test_result or 'never'}"
        )
    return 0
