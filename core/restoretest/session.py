"""One restore test's session: which engine the plaintext needs, the server's lock, the
throwaway server (or the existing one) it loads into, or, for a physical backup, the
sandbox its files go into (see ``physical``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..payload.inspector import PayloadInspector
from ..physical.extract import FolderWriter
from ..pipeline.job import Job
from .archiveload import archive_kind, pg_restore_path
from .dsn import parse_dsn
from .engines.mariadb import MariaDBTarget, find_tools
from .engines.postgres import PostgresTarget, find_pg_tools
from .errors import NotRestorable
from .loader import Deadline, StreamingLoader
from .physical import PhysicalRestore
from .procs import StateDir
from .scan.common import ScanSummary
from .target import Target

ENGINES = ("auto", "mariadb", "mysql", "postgres")


@dataclass
class RestoreTestOptions:
    engine: str = "auto"
    server: str | None = None  # --server DSN: an existing local server
    server_password_file: Path | None = None
    state_dir: Path | None = None
    # Wall-clock limit from the start of the load to the end of the checks: what the dump
    # can make the test spend (the server's start has its own timeout).
    max_seconds: float = 6 * 3600.0
    # How much the server's disk use may grow during the load (the throwaway server's
    # folder; on --server, the scratch database where the server can tell). Default: 90 %
    # of the free space where the throwaway server keeps its data.
    max_disk_bytes: int | None = None
    baseline: Path | None = None  # an earlier result of the same backup (drift)


class Session:
    """Chooses the engine from the dump's head, takes the server's lock, starts it."""

    def __init__(
        self, options: RestoreTestOptions, state: StateDir, job: Job, deadline: Deadline
    ) -> None:
        self.options = options
        self.state = state
        self.job = job
        self.deadline = deadline
        self.target: Target | None = None
        self.engine: str | None = None
        self.producer: dict[str, str | None] = {}
        self.cleanup: list[str] = []
        self._lock: object | None = None
        self.physical: PhysicalRestore | None = None
        self.summary: ScanSummary | None = None  # a physical backup's own catalogue

    def _take_lock(self, name: str) -> None:
        cm = self.state.lock(name, self.job.cancel)
        cm.__enter__()
        self._lock = cm

    def physical_folder(self, container: str) -> FolderWriter:
        """The plaintext is a physical backup (an xbstream, or a tar of its folder): the
        throwaway MariaDB's sandbox, whose ``data`` folder receives the backup's files
        as they are verified."""
        if self.options.server or self.options.engine not in ("auto", "mariadb", "mysql"):
            given = "--server" if self.options.server else f"--engine {self.options.engine}"
            raise NotRestorable(
                f"the payload is a physical backup ({container}), which is restore-tested in "
                f"a throwaway MariaDB started on its own files, not with {given}"
            )
        self.engine = "mariadb"
        self._take_lock("mariadb")
        self.cleanup += self.state.clean_orphans("mariadb")
        self.deadline.start()  # the wall-clock limit: from here to the end of the checks
        self.physical = PhysicalRestore(self.state, self.options.max_disk_bytes, container)
        try:
            return self.physical.folder(self.job.data.name)
        finally:
            self.target = self.physical.target

    def prepare(self, head: bytes) -> Target:
        insp = PayloadInspector()
        insp.feed(head[:65536] if len(head) >= 512 else head + b"\n" * 512)
        info = insp.info
        self.producer = {
            "kind": info.kind,
            "producer": info.producer,
            "producer_version": info.producer_version,
            "server_version": info.server_version,
            "database": info.database,
        }
        engine = self.options.engine
        archive = archive_kind(head)
        if archive is not None:
            if engine not in ("auto", "postgres"):
                raise NotRestorable(
                    f"the payload is a pg_dump archive ({archive} format), which restores "
                    "into PostgreSQL only (--engine postgres or auto)"
                )
            engine = "postgres"
            self.producer.update(kind=f"pg_dump-{archive}", producer=f"pg_dump ({archive} format)")
        elif engine == "auto":
            if info.kind == "mysql-sql" or (info.kind == "sql" and looks_mysql(head)):
                engine = "mariadb"
            elif info.kind == "postgresql-sql" or (info.kind == "sql" and looks_pg(head)):
                engine = "postgres"
            else:
                raise NotRestorable(
                    f"the payload is {info.producer or info.kind}; the restore test loads SQL "
                    "dumps (mysqldump/mariadb-dump, Sequel Pro, plain pg_dump) and pg_dump "
                    "archives"
                )
        self.engine = engine
        # A stable name (hash() differs between processes): one test per server.
        server_key = (
            hashlib.sha256(self.options.server.encode()).hexdigest()[:16]
            if self.options.server
            else ""
        )
        lock_name = (
            "server-" + server_key
            if self.options.server
            else ("postgres" if engine == "postgres" else "mariadb")
        )
        self._take_lock(lock_name)
        if not self.options.server:
            self.cleanup += self.state.clean_orphans(
                "postgres" if engine == "postgres" else "mariadb"
            )
        else:  # the passfile folders of --server runs that died
            self.cleanup += self.state.clean_orphans("postgres-client")
        db = db_name(info.database)
        if engine == "postgres":
            pg = PostgresTarget(find_pg_tools(need_server=not self.options.server))
            if archive is not None:
                pg_restore_path(pg.tools.bindir)  # missing: say so before starting a server
                pg.archive = archive
            self.target = pg
            if self.options.server:
                d = parse_dsn(self.options.server, "postgres", self.options.server_password_file)
                pg.connect_existing(d.socket, d.user, d.password, d.port, self.state, server_key)
            else:
                pg.start(self.state, self.job.cancel, "restoretest")
        else:
            # A MySQL dump (--engine mysql) loads into MariaDB when Sealcheck starts the
            # server itself; an existing Oracle MySQL server is used through --server.

            my = MariaDBTarget(find_tools(need_server=not self.options.server, engine=engine))
            self.target = my
            if self.options.server:
                d = parse_dsn(self.options.server, "mysql", self.options.server_password_file)
                my.connect_existing(d.socket, d.user, d.password, self.state, server_key)
            else:
                my.start(self.state, self.job.cancel, db)
        return self.target

    def close(self) -> list[str]:
        done = list(self.cleanup)
        if self.target is not None:
            done += self.target.close()
        if self._lock is not None:
            self._lock.__exit__(None, None, None)  # type: ignore[attr-defined]
            self._lock = None
        return done


class Plaintext:
    """The pipeline's extra sink: the plaintext goes to the SQL loader, unless the
    pipeline found a physical backup (it writes that one's files itself)."""

    def __init__(self, loader: StreamingLoader, session: Session) -> None:
        self.loader = loader
        self.session = session

    def feed(self, data: bytes) -> None:
        if self.session.physical is None:
            self.loader.feed(data)

    def finish(self) -> None:
        if self.session.physical is None:
            self.loader.finish()


def looks_mysql(head: bytes) -> bool:
    # No producer header: MySQL's backquotes and table options are unmistakable.
    return b"ENGINE=" in head or head.count(b"`") >= 4


def looks_pg(head: bytes) -> bool:
    return b"FROM stdin;" in head or b"search_path" in head or b"\\connect " in head


def db_name(name: str | None) -> str:
    if name and name.replace("_", "").isalnum() and len(name) <= 60:
        return name
    return "restoretest"
