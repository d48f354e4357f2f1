"""What an audit campaign prints and files, whichever way it ran (on this machine, or
merged from shards): the one progress line, the summary, the signed report."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..audit import coverage as cov
from ..audit.pool import Progress
from ..errors import UsageError
from ..records import report_names
from ..records.history import History
from ..records.report_file import failures_first
from ..storage.locate import ListedVersion
from .common import _fmt_eta
from .history import check_tsa, write_report
from .termtext import echo

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise UsageError(f"--max-duration {text!r}: give a time such as 3600, 90m, 2h")
    return float(m[1]) * _UNITS[m[2]]


def _report_format(path: Path) -> str:
    fmt = report_names.of_path(path)
    if fmt is None:
        raise UsageError(f"--report {path}: the name must end in {report_names.SUFFIXES}")
    return fmt


class Line:
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


def check_report_options(args: argparse.Namespace) -> None:
    """Up front, before any work: the report's name and the TSA."""
    if args.report:
        _report_format(args.report)
    if args.tsa and not args.report:
        raise UsageError("--tsa timestamps the report: give --report FILE too")
    check_tsa(args.tsa)


def finish(
    args: argparse.Namespace,
    history: History,
    summary: dict[str, Any],
    entries: list[Any],
    *,
    population: list[ListedVersion] | None,
) -> None:
    """The signed report (``--report``) and what the campaign prints."""
    s = summary
    if args.report:
        rows = cov.coverage(
            history,
            source=s["where"],
            population=population,
            outdated_days=args.outdated_after,
        )
        # The records are read back from the history as the report is written, a batch
        # at a time (a merged campaign's ``entries`` are tallies, without their text).
        ordered = [e.id for e in sorted(entries, key=failures_first)]
        signed_by = write_report(
            history,
            ordered,
            _report_format(args.report),
            args.report,
            True,
            args.tsa,
            sections={"campaign": s, "coverage": [r.to_dict() for r in rows]},
        )
        s = {**s, "report": str(args.report), "signed_by": signed_by}
    if args.json:
        results = [e.summary() for e in entries if e.kind.value != "audit"]
        print(json.dumps({"campaign": s, "results": results}, indent=2))
    else:
        _print(s, entries)
    history.close()


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
