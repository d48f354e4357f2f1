"""``sealcheck audit`` (a campaign over an estate) and ``sealcheck coverage``.

Exit codes of ``audit``, a gate for cron and CI: 0 every checked version OK, 1 any
version FAILED, 2 usage or environment (a version no key opens, storage refused:
NOT CHECKED, which is no verdict on the backup), 130 cancelled. A campaign stopped by
``--max-duration`` exits by what it checked, and the next identical run continues it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..audit import coverage as cov
from ..audit.campaign import Campaign, CampaignOptions, Progress, population
from ..audit.cluster import ClusterSpec, parse_cluster, require_dask
from ..audit.sample import parse_sample
from ..errors import UsageError
from ..plumbing.progress import CancelToken
from ..records import evidence, targets
from ..records.history import History, Trigger
from ..storage.s3.client import make_client, parse_uri
from .common import (
    _fmt_eta,
    cancel_on_sigint,
    naming_rules,
    s3_settings,
    secrets_from_args,
)
from .history import check_tsa, write_report
from .termtext import echo

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise UsageError(f"--max-duration {text!r}: give a time such as 3600, 90m, 2h")
    return float(m[1]) * _UNITS[m[2]]


def _report_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("html", "pdf", "json", "csv"):
        raise UsageError(f"--report {path}: the name must end in .html, .pdf, .json or .csv")
    return fmt


class _Line:
    """One progress line for the whole campaign, on a terminal."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, p: Progress) -> None:
        pct = 100.0 * p.done_versions / p.total_versions if p.total_versions else 100.0
        sys.stderr.write(
            f"\raudit  {p.done_versions}/{p.total_versions} versions  {pct:5.1f}%  "
            f"ETA {_fmt_eta(p.eta)}   "
        )
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 70 + "\r")


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
    uri = parse_uri(args.location)
    fmt = _report_format(args.report) if args.report else None
    if args.tsa and not args.report:
        raise UsageError("--tsa timestamps the report: give --report FILE too")
    check_tsa(args.tsa)
    opts = CampaignOptions(
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
    secrets = secrets_from_args(args)
    history = History.default(keep_open=True)
    cancel = CancelToken()
    line = _Line() if sys.stderr.isatty() and not args.no_progress and not args.json else None
    campaign = Campaign(opts, secrets, history, cancel=cancel, on_progress=line)
    try:
        with cancel_on_sigint(cancel):
            out = campaign.run()
    finally:
        if line:
            line.clear()
        secrets.wipe()
    s = out.summary
    if fmt is not None:
        rows = cov.coverage(
            history,
            source=opts.location,
            population=out.population,
            outdated_days=args.outdated_after,
        )
        ordered = sorted(out.entries, key=_failures_first)
        body = evidence.build(
            ordered,
            sections={"campaign": s, "coverage": [r.to_dict() for r in rows]},
        )
        signed_by = write_report(body, fmt, args.report, True, args.tsa)
        s = {**s, "report": str(args.report), "signed_by": signed_by}
    if args.json:
        results = [e.summary() for e in out.entries if e.kind.value != "audit"]
        print(json.dumps({"campaign": s, "results": results}, indent=2))
    else:
        _print(s, out.entries)
    history.close()
    return out.exit_code


def _failures_first(e: Any) -> tuple[int, int]:
    order = {"failed": 0, "not-checked": 1, "ok": 2}
    return (3 if e.kind.value == "audit" else order[e.verdict.value], e.id)


def _print(s: dict[str, Any], entries: list[Any]) -> None:
    t = s["totals"]
    head = {0: "AUDIT OK", 1: "AUDIT FAILED", 130: "AUDIT CANCELLED"}.get(
        s["exit_code"], "AUDIT INCOMPLETE (setup problems)"
    )
    echo(f"{head}  {s['where']}  (campaign {s['id']})")
    echo(
        f"  population {s['population']} versions; sample {s['sample_size']} by {s['method']}"
        + (f", seed {s['seed']}" if s["seed"] is not None else "")
    )
    echo(
        f"  OK {t.get('ok', 0)}, FAILED {t.get('failed', 0)}, "
        f"NOT CHECKED (setup) {t.get('not-checked', 0)}"
        + (f"; restore-tested {len(s['restore_tested'])}" if s["restore_tested"] else "")
    )
    for sk in s["skipped"]:
        echo(f"  skipped {sk['version']}: {sk['why']}")
    for e in entries:
        if e.kind.value != "audit" and e.verdict.value != "ok":
            layer = f" ({e.failed_layer})" if e.failed_layer else ""
            echo(f"  {e.verdict.short_label}{layer}  {e.subject.label}")
    for kind, what in (("rto", "recovery time"), ("rpo", "newest backup age")):
        for m in (x for x in s["targets"][kind] if x["met"] is False):
            echo(f"  target missed: {what} of {m.get('version') or m.get('backup')}")
    if s["stopped"] == "max-duration":
        echo(
            f"  stopped at the time limit: {s['not_yet_checked']} versions left; run the "
            "same command again to continue this campaign"
        )
    if s.get("report"):
        signed = f"signed by {s['signed_by']}" if s.get("signed_by") else "NOT signed"
        echo(f"  report {s['report']} ({signed})")


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
