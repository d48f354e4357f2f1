"""What one verify or restore is given: the source, the secrets, where to write, and
the progress callback and cancel token every stage honours."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from ..decrypt.secrets import Secrets
from ..plumbing.progress import CancelToken, ProgressCallback, no_progress
from ..storage.sidecar import Sidecar
from ..storage.source import Source

if TYPE_CHECKING:  # physical/ loads only for a physical backup (issue 17)
    from ..physical.extract import FolderWriter


class PlaintextSink(Protocol):
    """Something else fed with the plaintext (the restore-test loader)."""

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


@dataclass
class Job:
    data: Source
    secrets: Secrets
    wrapped_key: Source | None = None
    operation: Literal["verify", "restore"] = "verify"
    destination: Path | None = None
    overwrite: bool = False
    max_output_bytes: int | None = None
    progress: ProgressCallback = no_progress
    cancel: CancelToken = field(default_factory=CancelToken)
    extra_sink: PlaintextSink | None = None
    # Audits: a payload nobody could check fails the run (exit 1) instead of a warning.
    strict: bool = False
    # Files beside the backup whose checksums or size are compared with what was read.
    sidecars: tuple[Sidecar, ...] = ()
    # restore --extract: the files of a physical backup into a new folder (issue 16).
    extract: bool = False
    max_disk_bytes: int | None = None
    # A restore test: where a physical backup's files go, asked for only once the
    # plaintext turns out to be one (given its container: "xbstream" or "tar");
    # committed (renamed into place) once every layer verified. Its caller owns it:
    # it aborts and removes it otherwise.
    physical_into: Callable[[str], FolderWriter] | None = None
