"""``sealcheck restore-test``: load a backup into a throwaway database and prove it restores.

Exit codes: 0 the restore test passed; 1 the backup failed it (load error, a dump cut
short, checks that do not match); 2 usage or environment (no server software: the
message says what to install); 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..restoretest import RestoreTestOptions, restore_test
from .common import run_backup_command
from .termtext import echo


def cmd_restore_test(args: argparse.Namespace) -> int:
    opts = RestoreTestOptions(
        engine=args.engine,
        server=args.server,
        server_password_file=args.server_password_file,
        max_seconds=args.max_seconds,
        max_disk_bytes=args.max_disk,
        baseline=args.baseline,
    )
    return run_backup_command(args, lambda job: restore_test(job, opts), print_result)


def print_result(r: Any, out: Any = None) -> None:
    out = out or sys.stdout
    src = r.verification.source.uri if r.verification and r.verification.source else "?"
    head = "RESTORE TEST PASSED" if r.ok else "RESTORE TEST FAILED"
    if r.ok and r.hostile:
        # Never a plain PASSED when the dump tried something: it loaded, confined.
        head += f", BUT THE DUMP TRIED {len(r.hostile)} THING(S) A BACKUP SHOULD NOT DO"
    echo(f"{head}  {src}", file=out)
    if r.error is not None:
        echo(f"  {r.error.message}", file=out)
    echo(f"  server: {r.server or '-'} ({r.mode})", file=out)
    for t in r.tables:
        mark = "ok" if t.ok else "FAILED"
        exp = "" if t.expected_rows is None else f" / dump {t.expected_rows}"
        note = f"  {t.note}" if t.note else ""
        echo(
            f"  {mark:<7} {t.name:<40} {t.rows if t.rows is not None else '-':>10} rows"
            f"{exp}  {t.checksum or ''}{note}",
            file=out,
        )
    for label, items in (
        ("views", r.views),
        ("triggers", r.triggers),
        ("routines", r.routines),
        ("events", r.events),
    ):
        if items:
            echo(
                f"  {label}: {len(items)} ({', '.join(items[:10])}{' …' * (len(items) > 10)})",
                file=out,
            )
    for m in r.missing:
        echo(f"  missing: {m}", file=out)
    if r.load_seconds is not None:
        steps = r.physical_steps()
        echo(
            f"  load {r.load_seconds:.1f} s{f' ({steps})' if steps else ''}, "
            f"checks {r.checks_seconds or 0:.1f} s, total (RTO) {r.total_seconds:.1f} s",
            file=out,
        )
    for h in r.hostile:
        echo(f"  the dump tried: line {h['line']}: {h['kind']}: {h['statement']}", file=out)
    for role in r.roles_created:
        echo(f"  account/role made for the test: {role}", file=out)
    if r.cleanup_status:
        echo(f"  clean-up: {r.cleanup_status}", file=out)
    for w in r.warnings[:20]:
        echo(f"  warning: {w}", file=out)
    if r.drift is not None:
        d = r.drift
        for k in d.emptied:
            echo(f"  DRIFT: {k} is now empty", file=out)
        for c in d.row_changes:
            echo(f"  drift: {c.name}: {c.before} -> {c.after} rows", file=out)
        for k in d.tables_added:
            echo(f"  drift: table added {k}", file=out)
        for k in d.tables_removed:
            echo(f"  drift: table removed {k}", file=out)
