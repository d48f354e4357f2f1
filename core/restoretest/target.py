"""What the loader and the runner need from a database server, whichever it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..plumbing.progress import CancelToken
from ..records.restore_result import LoadError, TableResult
from .archiveload import ArchiveSource
from .driverload import DriverCommand
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
