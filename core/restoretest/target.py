"""What the loader and the runner need from a database server, whichever it is."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..plumbing.progress import CancelToken
from ..records.restore_result import LoadError, TableResult
from .archiveload import ArchiveSource
from .confine import Ledger, Made, new_name
from .driverload import DriverCommand
from .procs import StateDir, kill_group, kill_processes_in
from .scan.common import ScannerBase, ScanSummary


@dataclass(frozen=True)
class ClientCommand:
    """How to start the client that loads the dump (credentials only in files)."""

    argv: list[str]
    env: dict[str, str]
    # Reading the client's output: its first error (lines counted in the dump, given the
    # preamble's ``line_offset``) and a summary of its warnings.
    parse_error: Callable[[str, int], LoadError | None]
    warnings: Callable[[str], list[str]]
    preamble: bytes = b""  # written before the dump (psql: our own \restrict line)
    # Written after the dump's last byte when the load went through: the COMMIT of the
    # one transaction the preamble opened (see the targets' ``client``).
    postamble: bytes = b""
    line_offset: int = 0  # lines the preamble adds, to map the client's line numbers
    files: tuple[Path, ...] = ()  # credential files, deleted once the client has started
    # A pg_dump archive: pg_restore's script of it is what the client reads, not the
    # plaintext itself (see archiveload).
    archive: ArchiveSource | None = None


@dataclass
class CheckOutcome:
    tables: list[TableResult] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    routines: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Tables the server could not read (label → its error), listed in ``tables`` too.
    unreadable: dict[str, str] = field(default_factory=dict)


class Target(Protocol):
    engine: str
    server: str  # e.g. "MariaDB 10.11.19"
    mode: str
    database: str  # what the client connects to
    disk_path: Path | None  # the throwaway server's folder (its free space: default disk limit)
    roles_created: list[str]
    left: list[str]  # what its clean-up could not remove (empty: all cleaned)

    def scanner(self) -> ScannerBase: ...

    def client(self) -> ClientCommand | DriverCommand: ...

    def check(self, summary: ScanSummary, cancel: CancelToken) -> CheckOutcome: ...

    def disk_used(self) -> int | None:
        """Bytes of disk the restored data takes now (None: not measurable here)."""
        ...

    def close(self) -> list[str]: ...


class ServerTarget:
    """What every engine's target starts with: the fields the loader and the runner read
    (see ``Target``), what a throwaway server leaves to clean up, and on an existing
    server (``--server``) the scratch database and account's life: recorded, made,
    proved confined, dropped. An engine names itself in ``engine`` and ``server`` and
    fills the rest as it starts or connects; for ``--server`` it says how to make, prove
    and drop the scratch objects (``_create_scratch``, ``_check_confined``,
    ``_drop_scratch``)."""

    engine: str

    def __init__(self, server: str) -> None:
        self.server = server  # refined once the server says its version
        self.mode = "throwaway"  # "server": an existing server (--server)
        self.database = "restoretest"
        self.disk_path: Path | None = None
        self.roles_created: list[str] = []
        self.root: Path | None = None  # our private folder: the throwaway server's, or files
        self.proc: subprocess.Popen[bytes] | None = None  # the throwaway server
        self.record: Path | None = None  # its pid record: a crashed run's leftovers are found
        self._scratch: str | None = None  # --server: the scratch database
        self._made: Made | None = None  # --server: the scratch database and account
        self._ledger: Ledger | None = None
        # What the clean-up could not remove, in words (the record's cleanup status):
        # checked after the fact, never assumed from having asked.
        self.left: list[str] = []

    # -- an existing server (--server): the scratch database and its account ------------

    def open_scratch(self, state: StateDir, server_key: str, role: str) -> str:
        """Sweep what crashed runs left on this server, then make a scratch database and
        an account of a fresh name that can reach it alone, and prove that it can reach
        nothing else. The name is recorded before anything is made, so a crash at any
        point leaves a record the next run on this server sweeps. ``role`` describes the
        account for the result (``{name}`` filled in)."""
        self.mode = "server"
        self._ledger = Ledger(state, server_key)
        for made in self._ledger.orphans():
            if self._drop_scratch(made.name)[1]:
                Ledger.done(made)
        name = new_name()
        self._made = self._ledger.add(name)
        self._create_scratch(name)
        self._scratch = self.database = name
        self._check_confined(name)
        self.roles_created.append(role.format(name=name))
        return name

    def close_scratch(self) -> list[str]:
        """Drop the scratch database and account; the record goes only once both are
        gone (else the next restore test on this server retries)."""
        if self._made is None:
            return []
        done, dropped = self._drop_scratch(self._made.name)
        if dropped:
            Ledger.done(self._made)
        else:
            done.append("the next restore test on this server retries")
            self.left.append(f"scratch database and account {self._made.name} on the server")
        self._made = None
        self._scratch = None
        return done

    def _create_scratch(self, name: str) -> None:
        """Make the database and the account ``name`` (ConfinementUnavailable if the
        given account cannot)."""
        raise NotImplementedError

    def _check_confined(self, name: str) -> None:
        """Log in as the new account and refuse (ConfinementUnavailable) if it holds
        more than its database."""
        raise NotImplementedError

    def _drop_scratch(self, name: str) -> tuple[list[str], bool]:
        """Drop the database and the account ``name``: what was done, and whether both
        are gone. Never raises for the server's refusal (said in the list)."""
        raise NotImplementedError

    def stop_and_wipe(self) -> list[str]:
        """Stop a throwaway server, wipe its folder and drop its pid record.

        A throwaway server's data is wiped anyway: no clean shutdown to wait for. What
        is still there afterwards goes to ``left``, and the pid record then stays, so
        the next restore test sweeps it (``StateDir.clean_orphans``).
        """
        done: list[str] = []
        left_before = len(self.left)
        if self.proc is not None:
            kill_group(self.proc)
            if self.proc.poll() is None:
                self.left.append(f"the throwaway server (process {self.proc.pid}) still runs")
            else:
                done.append("stopped the throwaway server")
            self.proc = None
        if self.root is not None:
            if rest := kill_processes_in(self.root):  # e.g. PostgreSQL backends (own groups)
                done.append(f"stopped {len(rest)} more server process(es)")
            shutil.rmtree(self.root, ignore_errors=True)
            if self.root.exists():
                self.left.append(f"folder {self.root} (could not be removed)")
            else:
                done.append(f"wiped {self.root}")
            self.root = None
        if self.record is not None:
            if len(self.left) == left_before:
                self.record.unlink(missing_ok=True)
            else:
                done.append(f"kept {self.record.name}: the next restore test sweeps what is left")
            self.record = None
        return done
