"""MariaDB: a throwaway server (or an existing one), the load through the protocol, the checks.

The throwaway server (reliability.md §1.6, E1–E4): ``--no-defaults``; socket only
(``--skip-networking``) in a private 0700 folder; run as an unprivileged OS user when
we are root; ``secure_file_priv`` = an empty private folder; ``local_infile=0``; event
scheduler off; ``--plugin-dir`` = an empty folder (``INSTALL SONAME`` and ``CREATE
FUNCTION … SONAME`` find nothing to load); no symbolic links (``DATA DIRECTORY``).
Accounts come from an ``--init-file`` run once at start: an admin for the checks and a
loader with no global privilege at all, and every account ``mariadb-install-db`` made
(root, mysql, the OS user) dropped, so no account with FILE or SUPER exists.

Either way the dump is loaded by an account that holds privileges on its own
database(s) only (see ``confine``): on a throwaway server the loader is granted each
database the dump creates or uses as the scanner meets it (never a system schema); on
an existing server (``--server``) a fresh account with privileges on the scratch
database alone is made with the given account, and dropped with it afterwards.
DEFINER clauses are rewritten to the loading account (no account may borrow another).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from ...plumbing.progress import CancelToken
from ..checks import check_mariadb
from ..confine import (
    MYSQL_DB_PRIVILEGES,
    SYSTEM_SCHEMAS,
    mysql_grant_db,
    mysql_native_hash,
)
from ..driverload import DriverCommand
from ..errors import (
    ConfinementUnavailable,
    DumpRefused,
    InstanceFailed,
    ServerSoftwareMissing,
    ServerUnreachable,
)
from ..procs import (
    OsUser,
    StateDir,
    clean_env,
    disk_usage,
    make_dirs,
    private_dir,
    run_step,
    server_user,
    spawn,
    tail,
)
from ..scan.common import ScannerBase, ScanSummary, StatementRef
from ..scan.mysql import MySQLScanner
from ..target import CheckOutcome, ServerTarget

START_TIMEOUT = 90.0
SBIN = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/bin")
INSTALL_HINT = (
    "install the MariaDB server and client "
    "(Debian/Ubuntu: apt-get install mariadb-server mariadb-client)"
)
_SPEED = (
    "--innodb-buffer-pool-size=256M",
    "--innodb-log-file-size=256M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
)
MYSQL_HINT = "a MySQL dump is restore-tested in a throwaway MariaDB server: " + INSTALL_HINT


def _which(*names: str) -> str | None:
    if only := os.environ.get("SEALCHECK_MARIADB_BINDIR"):
        # An explicit folder: nothing else is searched (also how tests hide the tools).
        return next(
            (str(Path(only) / n) for n in names if os.access(Path(only) / n, os.X_OK)), None
        )
    for n in names:
        if p := shutil.which(n) or shutil.which(n, path=os.pathsep.join(SBIN)):
            return p
    return None


def find_mariabackup() -> str:
    """mariabackup, which prepares a physical backup for the throwaway server."""
    tool = _which("mariabackup", "mariadb-backup")
    if tool is None:
        raise ServerSoftwareMissing(
            "not found: mariabackup; a physical backup is prepared with it before the "
            "throwaway server starts on it (Debian/Ubuntu: apt-get install mariadb-backup)"
        )
    return tool


@dataclass(frozen=True)
class MariaDBTools:
    server: str
    install_db: str
    client: str | None  # shown to the user only: the load goes through the protocol
    version: str


def find_tools(*, need_server: bool = True, engine: str = "mariadb") -> MariaDBTools:
    """The MariaDB server and its installer (no client: see driverload).

    ``engine="mysql"`` (a MySQL dump) needs the same tools: a throwaway server is always
    MariaDB, which loads mysqldump output; Oracle MySQL's ``mysqld`` is not started here
    (an existing MySQL server is used through ``--server``).
    """
    hint = INSTALL_HINT if engine != "mysql" else MYSQL_HINT
    server = _which("mariadbd", "mysqld")
    install = _which("mariadb-install-db", "mysql_install_db")
    client = _which("mariadb", "mysql")
    if need_server:
        missing = [n for n, p in (("mariadbd", server), ("mariadb-install-db", install)) if not p]
        if missing:
            raise ServerSoftwareMissing(f"not found: {', '.join(missing)}; {hint}")
    version = ""
    if server:
        r = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=30)
        version = r.stdout.strip()
        if need_server and "mariadb" not in version.lower():
            raise ServerSoftwareMissing(
                f"{server} is not MariaDB ({version or 'no version'}); throwaway servers "
                f"need MariaDB ({hint}), or give an existing MySQL server with --server"
            )
    return MariaDBTools(server or "", install or "", client, version)


def _q(s: str) -> str:
    """A SQL string literal (for names we pass, never for the dump's text)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def _qi(s: str) -> str:
    return "`" + s.replace("`", "``") + "`"


@dataclass
class Account:
    user: str
    password: str


class MariaDBTarget(ServerTarget):
    """Throwaway (``start()``) or existing (``connect_existing()``) MariaDB server."""

    engine = "mariadb"

    def __init__(self, tools: MariaDBTools) -> None:
        super().__init__("MariaDB")
        self.tools = tools
        self.socket: Path | None = None
        self.loader = Account("sc_load", secrets.token_urlsafe(24))
        self.admin = Account("sc_admin", secrets.token_urlsafe(24))
        self._conn: Any = None
        self._state: StateDir | None = None
        self._dump_db: str | None = None  # --server: the one database the dump names
        self._granted: set[str] = set()  # databases the loader holds privileges on

    # -- throwaway ---------------------------------------------------------------------

    def sandbox(self, state: StateDir, folders: tuple[str, ...]) -> OsUser:
        """The throwaway server's private 0700 folder (with ``folders`` in it), owned by
        the unprivileged OS user it runs as, recorded so a crashed run's is wiped."""
        user = server_user()
        root = self.root = private_dir("scrt-my-", owner=user)
        self._state = state
        self.record = state.record("mariadb", root)
        make_dirs(root, ("tmp", "files", "plugins", *folders), user)
        self.socket = root / "my.sock"
        self.disk_path = root
        return user

    def start(self, state: StateDir, cancel: CancelToken, database: str) -> None:
        user = self.sandbox(state, ("data",))
        assert self.root is not None and self._state is not None
        root = self.root
        self.database = database
        init = root / "init.sql"
        self._write_init(init, user)
        run_step(
            [
                self.tools.install_db,
                "--no-defaults",
                f"--datadir={root / 'data'}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--tmpdir={root / 'tmp'}",
                *_SPEED,
            ],
            user=user,
            cwd=root,
            env=self.env(),
            log=root / "install.log",
            what="mariadb-install-db",
            timeout=START_TIMEOUT,
            cancel=cancel,
            on_spawn=lambda pid: state.set_pgid(self.record, pid),  # type: ignore[arg-type]
        )
        self.launch(user, cancel, f"--init-file={init}")
        init.unlink(missing_ok=True)
        self.query(f"CREATE DATABASE IF NOT EXISTS {_qi(database)}")
        self._grant(database)

    def env(self) -> dict[str, str]:
        assert self.root is not None
        return clean_env(TMPDIR=str(self.root / "tmp"), HOME=str(self.root))

    def launch(self, user: OsUser, cancel: CancelToken, *extra: str) -> None:
        """Start mariadbd on the sandbox's ``data`` folder, confined as the module says,
        and wait until it answers on its socket (``extra``: how its accounts are made)."""
        root, state = self.root, self._state
        assert root is not None and state is not None and self.record is not None
        self.proc = spawn(
            [
                self.tools.server,
                "--no-defaults",
                f"--datadir={root / 'data'}",
                f"--socket={self.socket}",
                "--skip-networking",
                f"--tmpdir={root / 'tmp'}",
                f"--pid-file={root / 'mariadbd.pid'}",
                f"--log-error={root / 'error.log'}",
                f"--secure-file-priv={root / 'files'}",
                "--local-infile=0",
                "--event-scheduler=OFF",
                f"--plugin-dir={root / 'plugins'}",
                "--skip-symbolic-links",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--performance-schema=OFF",
                "--max-allowed-packet=1G",
                "--max-connections=20",
                *_SPEED,
                *extra,
            ],
            user=user,
            cwd=root,
            env=self.env(),  # A server run as root would need --user=root; not ours.
            log=root / "mariadbd.out",  # what it writes before --log-error takes over
        )
        state.set_pgid(self.record, self.proc.pid)
        self._wait_ready(cancel, root / "error.log")
        ver = self.query("SELECT VERSION()")[0][0]
        self.server = f"MariaDB {ver}"

    def _grant(self, database: str) -> None:
        """The loader's privileges on one database of the dump (throwaway server)."""
        if database in self._granted or database.lower() in SYSTEM_SCHEMAS:
            return
        self.query(
            f"GRANT {MYSQL_DB_PRIVILEGES} ON {mysql_grant_db(database)}.* "
            f"TO {_q(self.loader.user)}@'localhost'"
        )
        self._granted.add(database)

    def _write_init(self, path: Path, user: OsUser) -> None:
        drop = ", ".join(
            f"{_q(u)}@'localhost'" for u in dict.fromkeys(("root", "mysql", user.name))
        )
        sql = (
            f"CREATE USER {_q(self.admin.user)}@'localhost' "
            f"IDENTIFIED BY {_q(self.admin.password)};\n"
            f"GRANT {MYSQL_DB_PRIVILEGES}, SHOW DATABASES, CREATE USER ON *.* "
            f"TO {_q(self.admin.user)}@'localhost' WITH GRANT OPTION;\n"
            # No global privilege: each of the dump's databases is granted as it comes.
            f"CREATE USER {_q(self.loader.user)}@'localhost' "
            f"IDENTIFIED BY {_q(self.loader.password)};\n"
            f"DROP USER IF EXISTS {drop};\n"
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(sql)
        if os.geteuid() == 0:
            os.chown(path, user.uid, user.gid)

    def _wait_ready(self, cancel: CancelToken, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while True:
            cancel.check()
            if self.proc.poll() is not None:
                raise InstanceFailed(f"mariadbd exited with {self.proc.returncode}: {tail(log)}")
            try:
                self._connect()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise InstanceFailed(
                        f"mariadbd did not accept connections in {START_TIMEOUT:.0f} s: {tail(log)}"
                    ) from None
                time.sleep(0.1)

    # -- an existing server (--server) ---------------------------------------------------

    def connect_existing(
        self, socket: Path, user: str, password: str | None, state: StateDir, server_key: str
    ) -> None:
        """Use an existing server: the given account makes a scratch database and a fresh
        account with privileges on it alone, which loads the dump; both are dropped
        afterwards. Passwords stay in this process's memory (the load goes through the
        protocol too); the server is sent only the new account's password hash."""
        self.mode = "server"
        self._state = state
        self.socket = socket
        self.admin = Account(user, password or "")
        try:
            self._connect()
        except pymysql.err.MySQLError as exc:
            raise ServerUnreachable(f"{socket}: {exc.args[-1]}") from None
        ver = self.query("SELECT VERSION()")[0][0]
        self.server = f"{'MariaDB' if 'MariaDB' in ver else 'MySQL'} {ver}"
        if "MariaDB" not in ver:
            self.engine = "mysql"
        self.open_scratch(
            state,
            server_key,
            "{name}@localhost (privileges on the scratch database only; dropped afterwards)",
        )

    def _create_scratch(self, name: str) -> None:
        self.loader = Account(name, secrets.token_urlsafe(24))
        try:
            self.query(f"CREATE DATABASE {_qi(name)} CHARACTER SET utf8mb4")
            if self.engine == "mariadb":
                ident = f"IDENTIFIED BY PASSWORD {_q(mysql_native_hash(self.loader.password))}"
            else:  # MySQL 8 has no PASSWORD form; it never logs the clause in clear
                ident = f"IDENTIFIED BY {_q(self.loader.password)}"
            self.query(f"CREATE USER {_q(name)}@'localhost' {ident} WITH MAX_USER_CONNECTIONS 4")
            self.query(
                f"GRANT {MYSQL_DB_PRIVILEGES} ON {mysql_grant_db(name)}.* TO {_q(name)}@'localhost'"
            )
        except pymysql.err.MySQLError as exc:
            raise ConfinementUnavailable(
                f"as {self.admin.user} on {self.socket}: {exc.args[-1]}; the given account must "
                "be able to create a database and an account and grant it privileges on that "
                "database (CREATE, CREATE USER and GRANT OPTION, e.g. root)"
            ) from None

    def _check_confined(self, name: str) -> None:
        """Log in as the new account and read back what it may do: exactly its own
        database. A server that grants more to everyone (MariaDB's PUBLIC, a mandatory
        role) cannot confine a dump, so the test refuses rather than load there."""
        conn = self._loader_connection(database=None)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GRANTS")
                grants = [str(r[0]) for r in cur.fetchall()]
        except pymysql.err.MySQLError as exc:
            raise ConfinementUnavailable(
                f"could not read the new account's privileges: {exc.args[-1]}"
            ) from None
        finally:
            conn.close()
        with contextlib.suppress(pymysql.err.MySQLError):  # MariaDB 10.11+; none: an error
            grants += [str(r[0]) for r in self.query("SHOW GRANTS FOR PUBLIC")]
        own = f" ON {mysql_grant_db(name)}.* TO "
        extra = [
            g
            for g in grants
            if not g.startswith("GRANT USAGE ON *.* TO ")
            and not (g.startswith("GRANT ") and own in g)
        ]
        if extra:
            raise ConfinementUnavailable(
                f"a new account on this server holds more than its scratch database: "
                f"{'; '.join(x[:160] for x in extra[:3])}; the dump would reach beyond it"
            )

    def _drop_scratch(self, name: str) -> tuple[list[str], bool]:
        try:
            done = self._kill_loads(name)
            self.query(f"DROP DATABASE IF EXISTS {_qi(name)}")
            done.append(f"dropped scratch database {name}")
            self.query(f"DROP USER IF EXISTS {_q(name)}@'localhost'")
            done.append(f"dropped account {name}@localhost")
        except pymysql.err.MySQLError as exc:
            return [f"could not drop scratch database/account {name} ({exc.args[-1]})"], False
        return done, True

    # -- connection --------------------------------------------------------------------

    def _connect(self) -> None:
        self._conn = pymysql.connect(
            unix_socket=str(self.socket),
            user=self.admin.user,
            password=self.admin.password,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
            local_infile=False,
        )

    def _loader_connection(self, database: str | None) -> Any:
        try:
            return pymysql.connect(
                unix_socket=str(self.socket),
                user=self.loader.user,
                password=self.loader.password,
                database=database,
                charset="utf8mb4",
                autocommit=False,
                local_infile=False,
                client_flag=0,  # no CLIENT_MULTI_STATEMENTS: one query, one statement
                max_allowed_packet=1 << 30,
                connect_timeout=10,
            )
        except pymysql.err.MySQLError as exc:
            raise ServerUnreachable(f"{self.socket}: {exc.args[-1]}") from None

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    # -- loading -----------------------------------------------------------------------

    def scanner(self) -> ScannerBase:
        s = MySQLScanner(self.database)
        s.rewrite_definers = True
        if self.mode == "throwaway":
            s.on_database = self._throwaway_database
        else:
            s.on_database = self._database_statement
            s.on_hostile = self._refuse_hostile
        return s

    def _throwaway_database(self, what: str, name: str, ref: StatementRef) -> str | None:
        # The loader gets privileges on each database the dump makes, uses or drops first
        # (--add-drop-database), before the statement runs; never on a system schema (the
        # server then refuses the dump).
        if name:
            self._grant(name)
        return None

    def _database_statement(self, what: str, name: str, ref: StatementRef) -> str | None:
        # --server: everything goes into the scratch database. One database named by the
        # dump is mapped onto it; a second one, or DROP DATABASE, is refused.
        if what == "drop" and name and name == (self._dump_db or name):
            # mysqldump --add-drop-database before its CREATE DATABASE: the dump's own
            # database, which the scratch database stands for. Nothing to drop.
            self._dump_db = name
            return self._scratch
        if what == "drop":
            raise DumpRefused(
                f"line {ref.line}: the dump drops a database: {ref.head}",
                line=ref.line, tried="drops a database", statement=ref.head,
            )  # fmt: skip
        if self._dump_db is None:
            self._dump_db = name
        if name != self._dump_db:
            raise DumpRefused(
                f"line {ref.line}: the dump uses a second database ({name!r} after "
                f"{self._dump_db!r}); --server restores one database into a scratch database",
                line=ref.line, tried=f"a second database ({name})", statement=ref.head,
            )  # fmt: skip
        return self._scratch

    def _refuse_hostile(self, line: int, kind: str, statement: str) -> None:
        raise DumpRefused(
            f"line {line}: {kind}: {statement!r}; on an existing server (--server) such "
            "statements are not run (a throwaway server confines them)"
        )

    def client(self) -> DriverCommand:
        """Load through the protocol (see driverload): the loading account's password
        stays in this process's memory, never in a file, argv or an environment."""
        assert self.root is not None or self.mode == "server"

        def connect() -> Any:
            return self._loader_connection(self.database)

        # autocommit off: one transaction per table's rows instead of one per INSERT
        # (the dump's own DDL and LOCK/UNLOCK TABLES commit implicitly as they go), so
        # InnoDB's bulk load into an empty table skips per-row undo logging. Same data.
        return DriverCommand(connect, postamble=(b"COMMIT",))

    # -- checks ------------------------------------------------------------------------

    def check(self, summary: ScanSummary, cancel: CancelToken) -> CheckOutcome:
        dbs = [self._scratch] if self._scratch else list(summary.schemas)
        return check_mariadb(self.query, dbs, summary, cancel)

    def disk_used(self) -> int | None:
        # --server: the existing server's own disk is its administrator's business.
        return disk_usage(self.disk_path) if self.disk_path is not None else None

    # -- the end -----------------------------------------------------------------------

    def close(self) -> list[str]:
        done = []
        if self._conn is not None:
            done += self.close_scratch()
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        return done + self.stop_and_wipe()

    def _kill_loads(self, name: str) -> list[str]:
        """--server: end statements of the load still running (the scratch account's
        connections, and any in the scratch database).

        A killed client does not stop the statement it sent (the server notices only
        when it next talks to the client), and DROP DATABASE would wait for it.
        """
        done = []
        for (conn_id,) in self.query(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE (DB = %s OR USER = %s) AND ID <> CONNECTION_ID()",
            (name, name),
        ):
            with contextlib.suppress(pymysql.err.MySQLError):
                self.query(f"KILL {int(conn_id)}")
                done.append(f"ended connection {conn_id} still running the load")
        return done
