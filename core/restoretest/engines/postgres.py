"""PostgreSQL: a throwaway server (or an existing one), restricted psql, the checks.

The throwaway server: ``initdb`` + ``postgres`` as a direct child (``pg_ctl`` would
detach it from us, beyond timeouts and Ctrl-C), run as an unprivileged OS user when
we are root, socket only (``listen_addresses=''``) in a private 0700 folder, password
(SCRAM) authentication. Its bootstrap superuser gets a random name, so the roles a
dump names (``postgres``, ``rdsadmin``, ``cloudsqlsuperuser`` …) are all created as
plain NOLOGIN roles; the load runs as a non-superuser that owns the database, so COPY …
PROGRAM, server files, ALTER SYSTEM and untrusted languages are refused by the server.
psql gets ``\\restrict <random key>`` first: no meta-command of the dump (``\\!``,
``\\copy``, ``\\i``, ``\\o``) can run, and the dump cannot lift it without the key.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ...plumbing.progress import CancelToken
from ...records.restore_result import LoadError, summarise_warnings
from ..archiveload import ArchiveSource, pg_restore_path
from ..confine import scram_verifier
from ..errors import (
    ConfinementUnavailable,
    DumpRefused,
    InstanceFailed,
    ServerError,
    ServerSoftwareMissing,
    ServerUnreachable,
)
from ..procs import (
    StateDir,
    clean_env,
    disk_usage,
    private_dir,
    run_step,
    server_user,
    spawn,
    tail,
)
from ..scan.common import ScannerBase, ScanSummary, StatementRef
from ..scan.pg import PgScanner
from ..target import CheckOutcome, ClientCommand, ServerTarget
from .pgchecks import check_postgres

START_TIMEOUT = 90.0
TOOLS = ("initdb", "postgres", "psql")
INSTALL_HINT = "install PostgreSQL 15.14 or later (Debian/Ubuntu: apt-get install postgresql)"


@dataclass(frozen=True)
class PgTools:
    bindir: Path
    version: str


def _restrict_supported(psql: Path) -> bool:
    r = subprocess.run([str(psql), "--help=commands"], capture_output=True, text=True, timeout=30)
    return "\\restrict" in r.stdout


def find_pg_tools(*, need_server: bool = True) -> PgTools:
    """The newest bin folder with initdb, postgres and a psql that knows ``\\restrict``."""
    cands: list[Path] = []
    if env := os.environ.get("SEALCHECK_PG_BINDIR"):
        cands.append(Path(env))
    if not env and (found := shutil.which("postgres")):
        cands.append(Path(os.path.realpath(found)).parent)

    def major(p: str) -> int:
        part = p.split("/")[4]
        return int(part) if part.isdigit() else 0

    if not env:  # an explicit SEALCHECK_PG_BINDIR is the only folder searched
        found_dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
        cands += [Path(p) for p in found_dirs]
    tools = TOOLS if need_server else ("psql",)
    old_psql = None
    for c in cands:
        if all(os.access(c / t, os.X_OK) for t in tools):
            if not _restrict_supported(c / "psql"):
                old_psql = c / "psql"
                continue
            r = subprocess.run([str(c / "psql"), "--version"], capture_output=True, text=True)
            return PgTools(c, r.stdout.strip())
    if old_psql is not None:
        raise ServerSoftwareMissing(
            f"{old_psql} has no \\restrict (psql 13.22/14.19/15.14/16.10/17.6 or later): it "
            f"would run meta-commands found in a dump; {INSTALL_HINT}"
        )
    raise ServerSoftwareMissing(
        f"PostgreSQL server tools ({', '.join(tools)}) not found; {INSTALL_HINT}"
    )


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class PostgresTarget(ServerTarget):
    engine = "postgres"

    def __init__(self, tools: PgTools) -> None:
        super().__init__("PostgreSQL")
        self.tools = tools
        self.host = ""
        self.port = 5432
        self.admin = f"sc_admin_{secrets.token_hex(6)}"
        self.loader = "sc_load"
        self._pw = {self.admin: secrets.token_urlsafe(24), self.loader: secrets.token_urlsafe(24)}
        self._passfile: Path | None = None
        # A pg_dump archive ("custom", "tar", "directory"): loaded through pg_restore.
        self.archive: str | None = None

    # -- throwaway ---------------------------------------------------------------------

    def start(self, state: StateDir, cancel: CancelToken, database: str) -> None:
        user = server_user()
        root = self.root = private_dir("scrt-pg-", owner=user)
        self.record = state.record("postgres", root)
        self.disk_path = root
        self.host = str(root)
        env = clean_env(HOME=str(root), TMPDIR=str(root))
        pwfile = root / "pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._pw[self.admin] + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, user.uid, user.gid)
        try:
            run_step(
                [
                    str(self.tools.bindir / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    self.admin,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=reject",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    "--no-instructions",
                ],
                user=user,
                cwd=root,
                env=env,
                log=root / "initdb.log",
                what="initdb",
                timeout=START_TIMEOUT,
                cancel=cancel,
                on_spawn=lambda pid: state.set_pgid(self.record, pid),  # type: ignore[arg-type]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.proc = spawn(
            [
                str(self.tools.bindir / "postgres"),
                "-D",
                str(root / "data"),
                "-k",
                str(root),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "wal_level=minimal",
                "-c",
                "max_wal_senders=0",
                "-c",
                "max_wal_size=2GB",
                "-c",
                "autovacuum=off",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "maintenance_work_mem=256MB",
                "-c",
                "logging_collector=off",
                "-c",
                "max_connections=20",
            ],
            user=user,
            cwd=root,
            env=env,
            log=root / "postgres.log",
        )
        state.set_pgid(self.record, self.proc.pid)
        self._write_passfile()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            cancel.check()
            if self.proc.poll() is not None:
                raise InstanceFailed(
                    f"postgres exited with {self.proc.returncode}: {tail(root / 'postgres.log')}"
                )
            r = self._psql("SELECT 1", "postgres", check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise InstanceFailed(
                    f"postgres did not accept connections: {tail(root / 'postgres.log')}"
                )
            time.sleep(0.1)
        self.server = "PostgreSQL " + self._psql("SHOW server_version", "postgres").stdout.strip()
        self.database = database
        self._psql(
            f"CREATE ROLE {ident(self.loader)} LOGIN PASSWORD {literal(self._pw[self.loader])};\n"
            f"CREATE DATABASE {ident(database)} OWNER {ident(self.loader)} TEMPLATE template0;",
            "postgres",
        )

    def _write_passfile(self) -> None:
        folder = self._client_dir()
        self._passfile = folder / "pgpass"
        fd = os.open(self._passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for user, pw in self._pw.items():
                esc = pw.replace("\\", "\\\\").replace(":", "\\:")
                f.write(f"*:*:*:{user}:{esc}\n")

    def _client_dir(self) -> Path:
        assert self.root is not None
        d = self.root / "client"
        d.mkdir(mode=0o700, exist_ok=True)
        return d

    # -- an existing server (--server) ---------------------------------------------------

    def connect_existing(
        self,
        socket_dir: Path,
        user: str,
        password: str | None,
        port: int,
        state: StateDir,
        server_key: str,
    ) -> None:
        """Use an existing server: the given account makes a fresh login role (no
        superuser, no CREATEDB/CREATEROLE, member of no role) and a scratch database owned
        by it; the dump is loaded as that role, and both are dropped afterwards. The
        passwords are only in a 0600 passfile; the server gets the role's SCRAM verifier."""
        self.mode = "server"
        self.host = str(socket_dir)
        self.port = port
        self.admin = user
        self._pw = {user: password or ""}
        self.root = private_dir("scrt-pgc-")
        # The passfile's folder: wiped by the next run if we crash.
        self.record = state.record("postgres-client", self.root)
        self._write_passfile()
        r = self._psql("SHOW server_version", "postgres", check=False)
        if r.returncode != 0:
            raise ServerUnreachable(f"{socket_dir} (port {port}): {r.stderr.strip()[-300:]}")
        self.server = "PostgreSQL " + r.stdout.strip()
        self.open_scratch(
            state,
            server_key,
            "{name} (login role owning only the scratch database; dropped afterwards)",
        )

    def _create_scratch(self, name: str) -> None:
        user = self.admin
        self.loader = name
        self._pw[name] = secrets.token_urlsafe(24)
        self._write_passfile()
        su = self._psql(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", "postgres", check=False
        ).stdout.strip()
        r = self._psql(
            f"CREATE ROLE {ident(name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS CONNECTION LIMIT 4 "
            f"PASSWORD {literal(scram_verifier(self._pw[name]))};\n"
            # A non-superuser may give a database to a role only as one of its members
            # (the membership goes that way: the given account gains, the role does not).
            + (f"GRANT {ident(name)} TO {ident(user)};\n" if su != "t" else "")
            + f"CREATE DATABASE {ident(name)} OWNER {ident(name)} TEMPLATE template0 "
            "ENCODING 'UTF8';\n"
            f"REVOKE ALL ON DATABASE {ident(name)} FROM PUBLIC;\n",
            "postgres",
            check=False,
        )
        if r.returncode != 0:
            raise ConfinementUnavailable(
                f"as {user}: {r.stderr.strip()[-300:]}; the given account must be able to "
                "create a role and a database (a superuser, or CREATEROLE and CREATEDB)"
            )

    def _check_confined(self, name: str) -> None:
        """Log in as the new role and read back what it is: no attribute, no membership,
        none of the server-file or program roles. Also proves the server lets it log in
        (a pg_hba.conf with peer/ident only for local connections does not)."""
        r = self._psql(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls, "
            "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid), "
            "pg_has_role('pg_read_server_files', 'MEMBER') "
            "OR pg_has_role('pg_write_server_files', 'MEMBER') "
            "OR pg_has_role('pg_execute_server_program', 'MEMBER') "
            "FROM pg_roles r WHERE rolname = current_user",
            name,
            check=False,
            user=name,
        )
        if r.returncode != 0:
            raise ConfinementUnavailable(
                f"the confined role {name} could not log in: {r.stderr.strip()[-300:]}; "
                "the server must let the test's role log in over the local socket with a "
                "password: put 'local sameuser /^sealcheck_rt_[0-9a-f]{12}$ scram-sha-256' "
                "(PostgreSQL 16+; before: 'local sameuser all scram-sha-256') before the "
                "first peer/ident line of pg_hba.conf and reload (each test role connects "
                "only to the scratch database of its own name)"
            )
        if r.stdout.strip() != "f|0|f":
            raise ConfinementUnavailable(
                f"the new role {name} holds more than its database on this server "
                f"({r.stdout.strip()}: attributes|memberships|server-file roles)"
            )

    def _drop_scratch(self, name: str) -> tuple[list[str], bool]:
        done, dropped = [], True
        # FORCE ends the load's session too: a killed psql leaves its statement running.
        for what, sql in (
            ("scratch database", f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)"),
            ("role", f"DROP ROLE IF EXISTS {ident(name)}"),
        ):
            r = self._psql(sql, "postgres", check=False)
            dropped = dropped and r.returncode == 0
            done.append(
                f"dropped {what} {name}"
                if r.returncode == 0
                else f"could not drop {what} {name}: {r.stderr.strip()[-200:]}"
            )
        return done, dropped

    # -- psql --------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        assert self._passfile is not None
        return clean_env(
            PGPASSFILE=str(self._passfile), PGCLIENTENCODING="UTF8", HOME=str(self._passfile.parent)
        )

    def conn_args(self, user: str, database: str) -> list[str]:
        return ["-X", "-h", self.host, "-p", str(self.port), "-U", user, "-d", database]

    def _psql(
        self, sql: str, database: str | None = None, *, check: bool = True, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.tools.bindir / "psql"),
            *self.conn_args(user or self.admin, database or self.database),
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        r = subprocess.run(
            cmd,
            input=sql,
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=600,
            check=False,
        )
        if check and r.returncode != 0:
            raise ServerError(f"psql: {r.stderr.strip()[-500:]}")
        return r

    # -- loading -----------------------------------------------------------------------

    def scanner(self) -> ScannerBase:
        s = PgScanner()
        if self.mode == "server":
            # Ownership and privileges are not applied (pg_restore --no-owner
            # --no-privileges): the confined role owns everything it makes.
            s.skip_ownership = True
            s.on_hostile = self._refuse
        else:
            # Roles named by OWNER TO / GRANT (managed services' rdsadmin, cloudsqlsuperuser
            # …) are created NOLOGIN on the throwaway server before the statement runs.
            s.on_roles = self._roles
        s.on_refuse = self._refuse_statement
        return s

    def _roles(self, names: set[str]) -> None:
        r = self._psql("SELECT rolname FROM pg_roles", "postgres", check=False)
        if r.returncode != 0:
            raise ServerError(f"cannot list the server's roles: {r.stderr.strip()[-300:]}")
        have = set(r.stdout.split())
        new = sorted(n for n in names if n not in have)
        if not new:
            return
        for n in new:
            sql = (
                f"CREATE ROLE {ident(n)} NOLOGIN;\nGRANT {ident(n)} TO {ident(self.loader)};\n"
                # Ownership moves to a role only if it may create in the schema.
                f"GRANT CREATE ON SCHEMA public TO {ident(n)};\n"
            )
            r = self._psql(sql, check=False)
            if r.returncode != 0:
                raise ServerError(
                    f"the dump names the role {n!r}, which could not be created: "
                    f"{r.stderr.strip()[-300:]}"
                )
            self.roles_created.append(f"{n} (NOLOGIN)")

    def _refuse(self, line: int, kind: str, statement: str) -> None:
        raise DumpRefused(f"line {line}: {kind}: {statement!r}; not run on an existing server")

    def _refuse_statement(self, what: str, ref: StatementRef) -> None:
        raise DumpRefused(
            f"line {ref.line}: {what} ({ref.head}): the restore test loads one database "
            "(a pg_dump -C dump is restored into the test database); dump each database "
            "of a pg_dumpall with pg_dump",
            line=ref.line, tried=what, statement=ref.head,
        )  # fmt: skip

    def client(self) -> ClientCommand:
        key = secrets.token_hex(16)
        argv = [
            str(self.tools.bindir / "psql"),
            *self.conn_args(self.loader, self.database),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=default",
            "--no-readline",
            # -f -: stdin, with "psql:<stdin>:LINE:" in error messages.
            "-f",
            "-",
        ]
        # Our own \restrict first: from here on psql refuses every meta-command but
        # \unrestrict with this key, which the dump cannot know. Then one transaction
        # for the whole load (psql -1's effect): with wal_level=minimal, COPY into a
        # table created in the same transaction skips the WAL. A dump's own BEGIN/COMMIT
        # (pg_dump's large-object sections) only ends it early, with a warning.
        archive = None
        if self.archive is not None:
            # pg_restore writes the script (no connection, so no credentials: only PATH
            # and a HOME of ours in its environment); the confined role loads it.
            scratch = self._client_dir()
            archive = ArchiveSource(
                self.archive, pg_restore_path(self.tools.bindir), clean_env(HOME=str(scratch)),
                scratch,
            )  # fmt: skip
        return ClientCommand(
            argv,
            self._env(),
            _parse_error,
            _warnings,
            preamble=f"\\restrict {key}\nBEGIN;\n".encode(),
            postamble=b"\nCOMMIT;\n",
            line_offset=2,
            files=(),
            archive=archive,
        )

    # -- checks ------------------------------------------------------------------------

    def check(self, summary: ScanSummary, cancel: CancelToken) -> CheckOutcome:
        cmd = [str(self.tools.bindir / "psql"), *self.conn_args(self.admin, self.database)]
        return check_postgres(cmd, self._env(), summary, cancel)

    def disk_used(self) -> int | None:
        if self.mode == "throwaway":
            return disk_usage(self.root) if self.root is not None else None
        if self._scratch is None:
            return None
        r = self._psql(
            f"SELECT pg_database_size({literal(self._scratch)})", "postgres", check=False
        )
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None

    def close(self) -> list[str]:
        done = self.close_scratch() if self._passfile is not None else []
        return done + self.stop_and_wipe()


# "psql:<stdin>:LINE: ERROR:  …" from the server, "psql:<stdin>:LINE: …" from psql itself.
_ERROR = re.compile(
    r"^psql:[^:\n]*:(?P<line>\d+): (?!(?:NOTICE|WARNING|INFO|DETAIL|HINT|LOG):)"
    r"(?:(?:ERROR|FATAL|error):\s+)?(?P<msg>.*)$",
    re.M,
)


def _parse_error(output: str, offset: int) -> LoadError | None:
    m = _ERROR.search(output)
    if not m:
        return None
    return LoadError(m.group("msg").strip()[:500], int(m.group("line")) - offset, None, None)


def _warnings(output: str) -> list[str]:
    return summarise_warnings(
        f"{m.group(1)}: {m.group(2)[:200]}"
        for m in re.finditer(r"^psql:[^:]*:\d+: (WARNING|NOTICE):\s+(.*)$", output, re.M)
    )
