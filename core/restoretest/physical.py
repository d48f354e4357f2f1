"""Restore test of a physical backup (issue 16): extract, prepare, start, check.

The pipeline reads every layer as ``verify`` does and writes the backup's files into
the sandbox (``Job.physical_into``: ``data`` in the throwaway server's private 0700
folder, bounded by ``--max-disk``, renamed into place only once every layer verified).
Then, as the unprivileged OS user the server runs as, ``mariabackup --prepare`` applies
the redo log, and a throwaway MariaDB starts on the prepared data directory through
the same road as the logical test (``MariaDBTarget.launch``: no defaults file, socket
only in the private folder, ``skip-networking``, empty plugin folder, no symbolic
links, ``secure_file_priv`` an empty folder, event scheduler off). The checks are the
logical test's: databases, tables, row counts, CHECKSUM TABLE, views, triggers,
routines, events, and drift against a baseline.

Why ``--skip-grant-tables`` is safe here, and why it is used. The prepared data
directory's ``mysql.*`` tables come from the backup: hostile input like everything in
it. Started with them, the server would know only the backup's accounts (passwords we
do not have, perhaps a passwordless ``root`` or a PUBLIC grant made to reach further).
Without grant tables no account of the backup exists at all: none can log in or give
anyone a privilege, and the server loads no plugin from ``mysql.plugin`` and no
function from ``mysql.func``. What it lifts — every connection may do anything — is
bounded by who can connect: nobody over the network (``--skip-networking``: no TCP
listener), and on the socket only processes that can enter its private 0700 folder,
i.e. this process and the server's own unprivileged OS user. The only statements
sent are this module's fixed queries (metadata, COUNT(*) and CHECKSUM TABLE read the
tables; nothing calls a routine, selects from a view or writes, so no code stored in
the backup runs, and the event scheduler is off). A backup from a replica does not
connect to its primary (``--skip-slave-start``). And whatever the server itself does
on the backup's behalf, it does as the unprivileged user inside its folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from ..payload.xbstream import CHECKPOINTS, INFO, MY_CNF
from ..physical.extract import FolderWriter
from ..physical.layout import PAYLOAD_KINDS
from ..plumbing.progress import CancelToken
from .checks import PHYSICAL_NOTES, check_mariadb
from .confine import SYSTEM_SCHEMAS
from .engines.mariadb import MariaDBTarget, find_mariabackup, find_tools
from .errors import (
    InstanceFailed,
    LimitExceeded,
    NotPreparable,
    PreparedDataUnreadable,
    PreparedServerFailed,
    PrepareFailed,
    ServerSoftwareMissing,
)
from .loader import size_text
from .procs import OsUser, StateDir, disk_usage, run_step
from .scan.common import ScanSummary, TableTally
from .target import CheckOutcome

PREPARE_TIMEOUT = 6 * 3600.0
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# The server's own file-name encoding of database/table names (sql/sql_table.cc): @XXXX.
_ENCODED = re.compile(r"@([0-9a-f]{4})")


@dataclass(frozen=True)
class BackupServer:
    """Which server and tool made the backup (xtrabackup_info, backup-my.cnf)."""

    mariadb: bool
    version: str  # "10.11.19-MariaDB-log", "8.0.36"
    tool: str  # "mariabackup", "xtrabackup"
    tool_version: str

    @property
    def series(self) -> str:
        m = _VERSION.search(self.version)
        return f"{m.group(1)}.{m.group(2)}" if m else self.version

    def words(self) -> str:
        flavour = "MariaDB" if self.mariadb else "MySQL"
        return f"{self.tool} {self.tool_version} from {flavour} {self.version}".strip()


def _kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq:
            out[k.strip()] = v.strip().strip("'\"")
    return out


def backup_server(datadir: Path) -> BackupServer:
    info: dict[str, str] = {}
    for name in INFO:
        with contextlib.suppress(OSError):
            info = _kv((datadir / name).read_text(errors="replace")[:65536])
            break
    with contextlib.suppress(OSError):
        cnf = _kv((datadir / MY_CNF).read_text(errors="replace")[:65536])
        # XtraBackup 8.0 writes the server version into backup-my.cnf too.
        info.setdefault("server_version", cnf.get("server_version", ""))
    version = info.get("server_version", "")
    tool = info.get("tool_name", "") or "xtrabackup"
    mariadb = "mariadb" in version.lower() or "mariabackup" in tool.lower()
    return BackupServer(mariadb, version, tool, info.get("tool_version", ""))


def xtrabackup_series(made_by: BackupServer) -> str:
    """The Percona XtraBackup series that prepares a MySQL backup: the one that made it
    (xtrabackup_info's tool_version), else by the server's: 2.4 up to MySQL 5.7 (its
    versions never followed the server's), the server's own series from 8.0 on."""
    tool = _VERSION.search(made_by.tool_version)
    if tool is not None and made_by.tool.lower() in ("xtrabackup", "innobackupex"):
        return f"{tool.group(1)}.{tool.group(2)}"
    server = _VERSION.search(made_by.version)
    if server is None:
        return "of the backup's version"
    return "2.4" if int(server.group(1)) < 8 else f"{server.group(1)}.{server.group(2)}"


def require_here(made_by: BackupServer, local: str) -> None:
    """The backup prepares and starts only in the server series that made it."""
    if not made_by.mariadb:
        m = _VERSION.search(made_by.version)
        series = f"{m.group(1)}.{m.group(2)}" if m else "of the backup's version"
        raise ServerSoftwareMissing(
            f"the backup was made by {made_by.words()}; preparing and starting it needs "
            f"Percona XtraBackup {xtrabackup_series(made_by)} (xtrabackup --prepare) and "
            f"MySQL Server {series} (or Percona Server {series}), "
            "which are not installed here (the throwaway server is MariaDB). Every layer of "
            "the backup verified; `sealcheck restore … --extract -o DIR` writes its files"
        )
    here = _VERSION.search(local)
    if here is None or f"{here.group(1)}.{here.group(2)}" != made_by.series:
        raise ServerSoftwareMissing(
            f"the backup was made by {made_by.words()}; mariabackup prepares only backups "
            f"of its own series, and the one installed here is {local or 'unknown'}: install "
            f"MariaDB {made_by.series} (mariadb-server and mariadb-backup). Every layer of "
            "the backup verified"
        )


def _whole(datadir: Path) -> None:
    """An incremental or partial backup is not a database on its own."""
    with contextlib.suppress(OSError):
        for name in CHECKPOINTS:
            if (datadir / name).exists():
                kind = _kv((datadir / name).read_text(errors="replace")).get("backup_type", "")
                if kind == "incremental":
                    raise NotPreparable(
                        "an incremental backup: it is prepared on top of its full backup, "
                        "which the restore test does not take; restore-test the full backup"
                    )
    info = next((datadir / n for n in INFO if (datadir / n).exists()), None)
    if info is not None and _kv(info.read_text(errors="replace")).get("partial") == "Y":
        raise NotPreparable(
            "a partial backup (--tables/--databases): it holds only some tablespaces and "
            "does not start as a server on its own"
        )


def catalogue(datadir: Path, dbs: list[str]) -> ScanSummary:
    """What the backup's own files define, as a dump's scan would list it: tables
    (binary ``.frm``), views (text ``.frm``: ``TYPE=VIEW``) and triggers (``.TRN``)."""
    out = ScanSummary("mysql", schemas=dbs)
    for frm in sorted(datadir.glob("*/*.frm")):
        db, name = _decode(frm.parent.name), _decode(frm.stem)
        if db.lower() in SYSTEM_SCHEMAS:
            continue
        with contextlib.suppress(OSError), frm.open("rb") as f:
            head = f.read(9)
            if head[:2] == b"\xfe\x01":
                out.tables[(db, name)] = TableTally(db, name, countable=False)
            elif head == b"TYPE=VIEW":
                out.views.add((db, name))
    for trn in sorted(datadir.glob("*/*.TRN")):
        db = _decode(trn.parent.name)
        if db.lower() not in SYSTEM_SCHEMAS:
            out.triggers.add((db, _decode(trn.stem)))
    return out


def _decode(name: str) -> str:
    return _ENCODED.sub(lambda m: chr(int(m.group(1), 16)), name)


def table_error(exc: Exception) -> str | None:
    """The server's answer to one table's query, when it refused that table alone (a
    tablespace missing, corrupt or of another server: error 194, 1812, 1932, 1033 …).
    A client-side error (2000 and up: the connection lost, the server gone) ends the
    check: no later table could be read either."""
    if not isinstance(exc, pymysql.err.MySQLError) or len(exc.args) < 2:
        return None
    code, message = exc.args[0], exc.args[-1]
    if not isinstance(code, int) or code >= 2000:
        return None
    return f"the server's error {code}: {message}"


def chown_tree(root: Path, user: OsUser) -> None:
    """The extracted files, written by us, become the server user's (as root only)."""
    if os.geteuid() != 0 or user.uid == 0:
        return
    os.lchown(root, user.uid, user.gid)
    for dirpath, dirs, files in os.walk(root):
        for n in (*dirs, *files):
            os.lchown(os.path.join(dirpath, n), user.uid, user.gid)


@dataclass
class PhysicalTimes:
    extract_s: float | None = None  # download, every layer verified, files written
    prepare_s: float | None = None
    start_s: float | None = None


class PhysicalRestore:
    """One physical restore test's sandbox, server and checks (see the module)."""

    def __init__(self, state: StateDir, max_disk: int | None, container: str = "xbstream") -> None:
        self.state = state
        self.kind = PAYLOAD_KINDS[container]
        self.max_disk = max_disk
        self.target: MariaDBTarget | None = None
        self.user: OsUser | None = None
        self.made_by: BackupServer | None = None
        self.times = PhysicalTimes()
        self.bytes: int | None = None  # the extracted files, before prepare
        self._t0 = time.monotonic()

    def folder(self, obj: str | None) -> FolderWriter:
        """The sandbox, made when the plaintext turns out to be a physical backup."""
        self._t0 = time.monotonic()
        my = self.target = MariaDBTarget(find_tools(need_server=False))
        self.user = my.sandbox(self.state, ())
        assert my.root is not None
        limit = self.max_disk
        if limit is None:  # the logical test's default: 90 % of the free space there
            limit = int(os.statvfs(my.root).f_bavail * os.statvfs(my.root).f_frsize * 0.9)
        return FolderWriter(my.root / "data", max_bytes=limit, obj=obj)

    def start(self, cancel: CancelToken, left: Callable[[], float]) -> MariaDBTarget:
        """Every layer verified and the files in place: prepare them and start."""
        my, user = self.target, self.user
        assert my is not None and my.root is not None and user is not None
        self.times.extract_s = round(time.monotonic() - self._t0, 3)
        data = my.root / "data"
        self.bytes = disk_usage(data)
        _whole(data)
        self.made_by = made_by = backup_server(data)
        if made_by.mariadb:
            my.tools = find_tools()
        tool = find_mariabackup() if made_by.mariadb else ""
        require_here(made_by, my.tools.version)
        chown_tree(data, user)
        t = time.monotonic()
        try:
            run_step(
                [tool, "--prepare", f"--target-dir={data}", "--use-memory=256M"],
                user=user, cwd=my.root, env=my.env(), log=my.root / "prepare.log",
                what="mariabackup --prepare", timeout=max(min(left(), PREPARE_TIMEOUT), 1.0),
                cancel=cancel,
            )  # fmt: skip
        except InstanceFailed as exc:
            if cancel.cancelled or "did not finish" in str(exc):
                raise
            raise PrepareFailed(str(exc)) from None
        self.times.prepare_s = round(time.monotonic() - t, 3)
        self._within_disk(my.root, "after mariabackup --prepare")
        t = time.monotonic()
        try:
            # See the module's docstring: why no grant tables, and why that is safe.
            my.launch(user, cancel, "--skip-grant-tables", "--skip-slave-start")
        except InstanceFailed as exc:
            raise PreparedServerFailed(str(exc)) from None
        self.times.start_s = round(time.monotonic() - t, 3)
        my.database = ""
        return my

    def _within_disk(self, root: Path, when: str) -> None:
        if self.max_disk is not None and (used := disk_usage(root)) > self.max_disk:
            raise LimitExceeded(
                f"disk limit of {size_text(self.max_disk)} (--max-disk): the backup's files "
                f"take {size_text(used)} {when}"
            )

    def check(self, cancel: CancelToken) -> tuple[CheckOutcome, ScanSummary]:
        my = self.target
        assert my is not None and my.root is not None
        try:
            dbs = [
                str(r[0])
                for r in my.query("SHOW DATABASES")
                if str(r[0]).lower() not in SYSTEM_SCHEMAS
            ]
            summary = catalogue(my.root / "data", dbs)
            outcome = check_mariadb(
                my.query, dbs, summary, cancel, PHYSICAL_NOTES, unreadable=table_error
            )
            return outcome, summary
        except pymysql.err.MySQLError as exc:
            raise PreparedDataUnreadable(str(exc.args[-1])) from None

    def details(self) -> dict[str, Any]:
        """What the result's ``dump`` says of a physical backup."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "physical": True,
            "extract_seconds": self.times.extract_s,
            "prepare_seconds": self.times.prepare_s,
            "start_seconds": self.times.start_s,
        }
        if self.made_by is not None:
            out.update(
                producer=self.made_by.tool,
                producer_version=self.made_by.tool_version,
                server_version=self.made_by.version,
            )
        if self.bytes is not None:
            out["bytes"] = self.bytes
        return out
