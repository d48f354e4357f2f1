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
from .driverload import DriverCommand
from .procs import kill_group, kill_processes_in
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


class Target(Protocol):
    engine: str
    server: str  # e.g. "MariaDB 10.11.19"
    mode: str
    database: str  # what the client connects to
    disk_path: Path | None  # the throwaway server's folder (its free space: default disk limit)
    roles_created: list[str]

    def scanner(self) -> ScannerBase: ...

    def client(self) -> ClientCommand | DriverCommand: ...

    def check(self, summary: ScanSummary, cancel: CancelToken) -> CheckOutcome: ...

    def disk_used(self) -> int | None:
        """Bytes of disk the restored data takes now (None: not measurable here)."""
        ...

    def close(self) -> list[str]: ...


class ServerTarget:
    """What every engine's target starts with: the fields the loader and the runner read
    (see ``Target``) and what a throwaway server leaves to clean up. An engine names
    itself in ``engine`` and ``server`` and fills the rest as it starts or connects."""

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

    def stop_and_wipe(self) -> list[str]:
        """Stop a throwaway server, wipe its folder and drop its pid record.

        A throwaway server's data is wiped anyway: no clean shutdown to wait for.
        """
        done: list[str] = []
        if self.proc is not None:
            kill_group(self.proc)
            done.append("stopped the throwaway server")
            self.proc = None
        if self.root is not None:
            if rest := kill_processes_in(self.root):  # e.g. PostgreSQL backends (own groups)
                done.append(f"stopped {len(rest)} more server process(es)")
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                done.append(f"wiped {self.root}")
            self.root = None
        if self.record is not None:
            self.record.unlink(missing_ok=True)
            self.record = None
        return done
