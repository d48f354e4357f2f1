"""What the payload was found to be, and how complete: the inspector's findings.

Filled by the inspector (text dumps) and by the structure checks of binary
payloads (payload/registry.py); read by the pipeline's report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackupFailed, Layer

# The most entries (files, tables) a report lists; the total is given besides.
MAX_LISTED_ENTRIES = 200


class Completeness(enum.Enum):
    COMPLETE = "complete"  # the producer's trailer is at the end
    NO_TRAILER_BY_PRODUCER = "complete: no trailer by this producer"
    INCOMPLETE = "incomplete"  # the producer writes a trailer and it is missing
    STRUCTURE_COMPLETE = "complete: every chunk whole and checksummed"
    ARCHIVE_COMPLETE = "complete: every TOC entry with data has its data, all of it read"
    # The archive's structure is whole, but some data is compressed with a method
    # that cannot be decoded here (lz4 without its package): its content is unread.
    STRUCTURE_ONLY = "structure complete; some compressed data not decoded"
    UNKNOWN = "unknown payload: completeness not judged"

    @property
    def judged(self) -> bool:
        """Whether the payload's content and completeness were checked."""
        return self not in (Completeness.UNKNOWN, Completeness.STRUCTURE_ONLY)


class PayloadNotChecked(BackupFailed):
    """Payload not checked: nothing proved the backup's content (--strict)."""

    layer = Layer.PAYLOAD


@dataclass
class PayloadInfo:
    kind: str = "unknown"  # "mysql-sql", "postgresql-sql", "xbstream", "pg_dump-custom", ...
    database_kind: str | None = None  # "MySQL", "MariaDB", "PostgreSQL"
    producer: str | None = None
    producer_version: str | None = None
    server_version: str | None = None
    database: str | None = None
    completeness: Completeness = Completeness.UNKNOWN
    trailer: str | None = None
    tables: int = 0
    entries: list[str] = field(default_factory=list)
    entries_total: int = 0
    # SQL dumps appended one after another in the stream (each judged on its own).
    dumps: int = 1
    # Format-specific facts for the report (pg_dump archives: version, blocks, rows).
    facts: dict[str, Any] = field(default_factory=dict)
    # Why the payload could not be judged (an archive version not read here, ...).
    not_judged: str | None = None


def not_checked_note(info: PayloadInfo) -> str:
    """The warning a report carries when the payload was not (fully) checked."""
    why = info.not_judged or "it is not a dump format Sealcheck recognises"
    return (
        f"payload not checked: {why}. The layers above proved the envelope (the bytes "
        "read, the key, the decryption and decompression), not the backup's content; "
        "--strict makes this a failure"
    )


def require_judged(info: PayloadInfo, obj: str | None) -> None:
    """--strict: a payload nobody checked fails the run (audits)."""
    if not info.completeness.judged:
        raise PayloadNotChecked(
            f"{info.not_judged or 'the payload is not a dump format Sealcheck recognises'}; "
            "--strict requires the payload to be checked",
            obj=obj,
        )
