"""What confines a dump: a fresh account that can reach nothing but its own database.

A dump is hostile input. The statement scanner reports what a dump tries, but it is not
the boundary (comments, quoting, dynamic SQL and schema-qualified names can disguise
anything from a pattern): the server's privileges are. So the dump is always loaded by
an account made for the test, which holds privileges on the test's database(s) only:

* MariaDB/MySQL: privileges on the scratch schema (``--server``) or on the dump's own
  databases (throwaway server) and nothing global: no FILE, SUPER, PROCESS, SET USER,
  no grant on ``mysql`` or any other schema. DEFINER clauses are rewritten to the
  loading account (a definer-less load): without SET USER the server refuses any other.
* PostgreSQL: a NOSUPERUSER, NOCREATEDB, NOCREATEROLE login role, member of no role,
  owning only the scratch database. Ownership and privilege statements are skipped as
  ``pg_restore --no-owner --no-privileges`` would.

Whatever the server refuses for lack of privilege is reported as something the dump
tried. The account and the scratch database are dropped afterwards, and recorded in
the state folder before they are made, so a run that crashed is cleaned up by the next
one that uses the same server.

Passwords: random, kept in this process's memory; the server receives only a hash
(``IDENTIFIED BY PASSWORD`` / a SCRAM verifier), so even a server that logs every
statement never logs the loading account's password.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import SaveFailed
from ..plumbing.atomic import AtomicWriter, pid_alive
from .procs import StateDir

PREFIX = "sealcheck_rt_"
_NAME = re.compile(r"sealcheck_rt_[0-9a-f]{12}")

# Schemas a MariaDB/MySQL dump never gets privileges on, even on a throwaway server.
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

# What the loading account may do inside its own database(s): enough for every statement
# a dump tool writes, nothing that reaches outside (no FILE, SUPER, SET USER, PROCESS …).
MYSQL_DB_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, "
    "ALTER ROUTINE, EVENT, TRIGGER"
)

# Server errors that mean "this account may not": the dump reached for something its
# confinement forbids (or needs a privilege no test account gets).
MYSQL_PRIVILEGE_CODES = frozenset(
    {
        "1044",  # access denied to database
        "1045",  # access denied (FILE …)
        "1142",  # command denied on table
        "1143",  # command denied on column
        "1227",  # needs SUPER / a specific privilege
        "1370",  # command denied on routine
        "1410",  # may not create a user with GRANT
        "1211",  # may not create new users
        "1095",  # not the owner of the thread (KILL)
        "1419",  # needs SUPER for binary logging of routines
    }
)
_PG_REFUSED = re.compile(
    r"permission denied|must be (?:superuser|owner|member|able to SET ROLE)"
    r"|only superusers?|requires superuser|not allowed to|is not trusted"
    r"|must have (?:privileges|the \w+ privilege)",
    re.I,
)


def new_name() -> str:
    """A scratch database / account name no one else uses (checked by its pattern)."""
    return PREFIX + secrets.token_hex(6)


def is_scratch_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def refused_by_privilege(engine: str, code: str | None, message: str) -> bool:
    if engine == "postgres":
        return bool(_PG_REFUSED.search(message))
    return code in MYSQL_PRIVILEGE_CODES


def mysql_grant_db(name: str) -> str:
    """A database name for GRANT … ON `x`.*: ``_`` and ``%`` are wildcards there."""
    escaped = name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return "`" + escaped.replace("`", "``") + "`"


def mysql_native_hash(password: str) -> str:
    """``IDENTIFIED BY PASSWORD`` form: the server never sees the password itself."""
    # The server's own scheme (SHA1 twice), required by the syntax, not our choice.
    inner = hashlib.sha1(password.encode()).digest()  # noqa: S324
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """A PostgreSQL SCRAM-SHA-256 verifier (RFC 5803 form), as ``PASSWORD '…'`` takes."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server_key)}"


def cap_rewritten(rewritten: list[str], marker: str, what: str, keep: int = 20) -> None:
    """Keep the first ``keep`` entries that end with ``marker`` and count the rest in one
    line (a dump with 5,000 tables has 5,000 OWNER TO statements: the
    confinement's rewrites are listed, not all of them)."""
    idx = [i for i, r in enumerate(rewritten) if r.endswith(marker)]
    if len(idx) <= keep:
        return
    for i in reversed(idx[keep:]):
        del rewritten[i]
    rewritten.append(f"… and {len(idx) - keep} more {what} {marker}")


# --- what was made on an existing server: recorded before, swept after a crash ----------


@dataclass(frozen=True)
class Made:
    """A scratch database and its account on an existing server (same name for both)."""

    name: str
    record: Path


class Ledger:
    """Records of scratch databases and accounts on one existing server.

    A record is written *before* the objects are made and removed once they are
    dropped; a record whose process is gone names an orphan. Only names of our own
    pattern are ever dropped from a record.
    """

    def __init__(self, state: StateDir, server_key: str) -> None:
        self.state = state
        self.server_key = server_key

    def add(self, name: str) -> Made:
        rec = self.state.path / f"scratch-{self.server_key}-{name}.json"
        with AtomicWriter(rec, overwrite=True, error=SaveFailed) as f:
            f.write(json.dumps({"name": name, "owner": os.getpid()}).encode())
        return Made(name, rec)

    @staticmethod
    def done(made: Made) -> None:
        made.record.unlink(missing_ok=True)

    def orphans(self) -> list[Made]:
        """Records left by runs that died (call with the server's lock held)."""
        out = []
        for rec in sorted(self.state.path.glob(f"scratch-{self.server_key}-*.json")):
            try:
                data = json.loads(rec.read_text())
            except (OSError, ValueError):
                rec.unlink(missing_ok=True)
                continue
            name = str(data.get("name") or "")
            owner = int(data.get("owner") or 0)
            if owner and owner != os.getpid() and pid_alive(owner):
                continue
            if not is_scratch_name(name):
                with contextlib.suppress(OSError):
                    rec.unlink()
                continue
            out.append(Made(name, rec))
        return out
