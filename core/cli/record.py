"""Recording a finished verify, restore, restore test or key rotation in the history.

Recording never changes a run's verdict: a history that cannot be written (damaged,
unreadable, locked too long) is a warning on stderr and the exit code stays the
verify's, restore's or restore test's own. Apart from history.py's commands, so that
a verify does not import the evidence reports.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..records import targets
from ..records.history import History, HistoryError, Result, Subject, Trigger
from ..records.report import Report
from .termtext import echo

log = logging.getLogger("sealcheck")


def record_history(args: argparse.Namespace, result: Result) -> None:
    """Append a finished run's result to the history unless ``--no-history``."""
    if getattr(args, "no_history", False):
        return
    if result.error is not None and result.error.kind == "Cancelled":
        return  # a cancelled run proved nothing either way
    fallback = None
    if getattr(args, "source", None):
        fallback = Subject.from_uri(args.source, getattr(args, "version_id", None))
    trigger = Trigger(getattr(args, "trigger", None) or Trigger.MANUAL.value)
    report = result if isinstance(result, Report) else result.verification  # a restore test
    uri = report.source.uri if report is not None and report.source is not None else None
    aims = targets.targets_for(uri, targets.load()) if uri else None
    _append(lambda h: h.record(result, subject=fallback, trigger=trigger, targets=aims))


def record_rotation(args: argparse.Namespace, report: dict[str, Any], exit_code: int) -> None:
    """Append a finished rotation run's report to the history unless ``--no-history``."""
    if getattr(args, "no_history", False):
        return
    trigger = Trigger(getattr(args, "trigger", None) or Trigger.MANUAL.value)
    _append(lambda h: h.record_rotation(report, exit_code=exit_code, trigger=trigger))


def _append(write: Callable[[History], object]) -> None:
    try:
        write(History.default())
    except HistoryError as exc:
        warn(f"{exc.message()}. The result was not recorded; the run itself is unaffected.")
    except Exception as exc:  # the verdict outranks a bug in the history
        log.debug("recording the history failed", exc_info=True)
        warn(
            f"the result was not recorded in the history (internal error "
            f"{type(exc).__name__}); the run itself is unaffected."
        )


def warn(text: str) -> None:
    echo(f"sealcheck: warning: {text}", file=sys.stderr)
