"""PostgreSQL checks in one psql session: tables, exact row counts and digests.

A table's digest is the SHA-256 of ``COPY (SELECT t::text … ORDER BY 1 COLLATE "C")``:
every row's text in a fixed order, independent of physical order and locale, streamed
(no size limit). Its line count is the exact row count, so each table is read once.
"""

# Queries are built from identifiers quoted here (`…`/"…") and %s placeholders;
# nothing from the dump is ever pasted in unquoted.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import secrets
import subprocess
from typing import IO

from ...plumbing.progress import CancelToken
from ..checks import _absent_table, _label, _missing, _table
from ..errors import ServerError
from ..scan.common import Key, ScanSummary
from ..target import CheckOutcome

_CATALOG = """
SELECT 'T', n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
UNION ALL
SELECT 'V', n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'G', n.nspname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT 'R', n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e');
"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def catalog(cmd: list[str], env: dict[str, str]) -> dict[str, list[Key]]:
    r = subprocess.run(
        [*cmd, "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1"],
        input=_CATALOG,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if r.returncode != 0:
        raise ServerError(f"psql: {r.stderr.strip()[-500:]}")
    out: dict[str, list[Key]] = {"T": [], "V": [], "G": [], "R": []}
    for line in r.stdout.splitlines():
        parts = line.split("\x1f")
        if len(parts) == 3:
            out[parts[0]].append((parts[1], parts[2]))
    return out


def digests(
    cmd: list[str], env: dict[str, str], tables: list[Key], cancel: CancelToken
) -> dict[Key, tuple[int, str]]:
    """Row count and digest of each table, one streaming psql session."""
    nonce = "@sealcheck-" + secrets.token_hex(8)
    script = []
    for i, (s, t) in enumerate(tables):
        rel = f"{_q(s)}.{_q(t)}"
        script.append(
            f'COPY (SELECT x::text FROM ONLY {rel} AS x ORDER BY x::text COLLATE "C") TO STDOUT;\n'
            f"SELECT '{nonce} {i}';\n"
        )
    proc = subprocess.Popen(
        [*cmd, "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(script).encode())
    proc.stdin.close()
    out: dict[Key, tuple[int, str]] = {}
    try:
        _read(proc.stdout, nonce.encode(), tables, out, cancel)
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        proc.wait()
    if proc.returncode != 0 and len(out) < len(tables):
        raise ServerError(f"psql: {err.strip()[-500:]}")
    return out


def _read(
    stdout: IO[bytes],
    nonce: bytes,
    tables: list[Key],
    out: dict[Key, tuple[int, str]],
    cancel: CancelToken,
) -> None:
    h = hashlib.sha256()
    rows = 0
    for line in stdout:
        if line.startswith(nonce):
            i = int(line[len(nonce) :].strip())
            out[tables[i]] = (rows, h.hexdigest())
            h = hashlib.sha256()
            rows = 0
            cancel.check()
            continue
        h.update(line)
        rows += 1


def check_postgres(
    cmd: list[str], env: dict[str, str], summary: ScanSummary, cancel: CancelToken
) -> CheckOutcome:
    out = CheckOutcome()
    cat = catalog(cmd, env)
    found = set(cat["T"])
    many = len({k[0] for k in found} | {k[0] for k in summary.tables}) > 1
    tables = sorted(set(summary.tables) | found)
    present = [k for k in tables if k in found]
    dig = digests(cmd, env, present, cancel)
    for key in tables:
        tally = summary.tables.get(key)
        want = tally.rows if tally is not None and tally.countable else None
        if key not in found:
            out.tables.append(_absent_table(key, many, want))
            continue
        rows, digest = dig.get(key, (0, ""))
        out.tables.append(_table(key, many, rows, tally, want, f"sha256:{digest}"))
    out.views = sorted(_label(k, many) for k in cat["V"])
    out.triggers = sorted(_label(k, many) for k in cat["G"])
    out.routines = sorted(_label(k, many) for k in cat["R"])
    _missing(out, summary, many, None)
    return out
