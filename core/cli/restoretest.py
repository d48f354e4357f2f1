"""``sealcheck restore-test``: load a backup into a throwaway database and prove it restores.

Exit codes: 0 the restore test passed; 1 the backup failed it (load error, a dump cut
short, checks that do not match); 2 usage or environment (no server software: the
message says what to install); 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..restoretest import RestoreTestOptions, restore_test
from .common import add_key_options, add_s3_options, run_backup_command
from .history import add_history_option
from .termtext import echo


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore-test",
        help="load a backup into a throwaway MariaDB/PostgreSQL server and check what came back",
    )
    p.add_argument("source", metavar="SOURCE", help="local path or s3://bucket/key")
    p.add_argument("--version-id", metavar="V")
    p.add_argument(
        "--engine",
        choices=("auto", "mariadb", "mysql", "postgres"),
        default="auto",
        help="the server to load into (auto: from the dump's header)",
    )
    p.add_argument(
        "--server",
        metavar="DSN",
        help="an existing local server instead of a throwaway one: mysql://USER@localhost/"
        "?socket=PATH or postgresql://USER@/?host=SOCKET_DIR (a scratch database is used)",
    )
    p.add_argument("--server-password-file", type=Path, metavar="F")
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="JSON",
        help="an earlier restore-test result of the same backup (--json output): show drift",
    )
    p.add_argument(
        "--max-time",
        "--max-seconds",
        dest="max_seconds",
        type=_seconds,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="wall-clock limit from the start of the load to the end of the checks "
        "(default 21600: 6 hours); over it the load is stopped and the test fails",
    )
    p.add_argument(
        "--max-disk",
        type=_size,
        metavar="SIZE",
        help="how much the server's disk use may grow during the load, e.g. 500M or 2G "
        "(default: 90%% of the free space where the throwaway server keeps its data; "
        "with --server: the scratch database's size, PostgreSQL only)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_history_option(p)
    add_key_options(p)
    add_s3_options(p)
    p.set_defaults(func=cmd_restore_test)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``1048576``: binary units (K = 1024 bytes)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = t[: len(t) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (examples: 500M, 2G, 1048576)"
        ) from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the disk limit must be at least 1 byte")
    return int(value)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the wall-clock limit must be positive")
    return value


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
        echo(
            f"  load {r.load_seconds:.1f} s, checks {r.checks_seconds or 0:.1f} s, "
            f"total (RTO) {r.total_seconds:.1f} s",
            file=out,
        )
    for h in r.hostile:
        echo(f"  the dump tried: line {h['line']}: {h['kind']}: {h['statement']}", file=out)
    for role in r.roles_created:
        echo(f"  account/role made for the test: {role}", file=out)
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
