"""The payload checks for pg_dump archives: the custom format (-Fc) and a tar
(-Ft, or a tarred -Fd), read to their last data block by custom.py and tar.py;
here their facts become the payload's findings."""

from __future__ import annotations

from typing import Any

from ..info import MAX_LISTED_ENTRIES, Completeness, PayloadInfo
from .archive import ArchiveFacts
from .custom import CustomArchiveCheck
from .tar import TarCheck


class PgCustomCheck:
    """A pg_dump custom-format archive: a StructureCheck (payload/registry.py)."""

    def __init__(self, info: PayloadInfo, *, obj: str | None = None) -> None:
        info.kind = "pg_dump-custom"
        info.database_kind = "PostgreSQL"
        info.producer = "pg_dump (custom format)"
        self._info = info
        self._check = CustomArchiveCheck(obj=obj)

    def feed(self, data: bytes) -> None:
        self._check.feed(data)

    def finish(self, total: int) -> None:
        _pg_info(self._info, [self._check.finish()])


class TarArchiveCheck:
    """A tar, and the pg_dump archives in it: a StructureCheck (payload/registry.py)."""

    def __init__(self, info: PayloadInfo, *, obj: str | None = None) -> None:
        info.kind = "tar"
        info.producer = "tar"
        self._info = info
        self._check = TarCheck(obj=obj)

    def feed(self, data: bytes) -> None:
        self._check.feed(data)

    def finish(self, total: int) -> None:
        _tar_info(self._info, self._check)


_PG_FORMATS = {
    "custom": "custom format",
    "tar": "tar format",
    "directory": "directory format, tarred",
}


def _tar_info(info: PayloadInfo, tar: TarCheck) -> None:
    archives = [a for a in tar.finish() if a.toc is not None]
    if tar.not_judged is not None:
        info.not_judged = tar.not_judged
    elif archives:
        _pg_info(info, archives)
        return
    else:
        info.not_judged = (
            f"a tar archive of {tar.members} member{'' if tar.members == 1 else 's'} (headers "
            "checksummed, its end reached), none of them a pg_dump archive: their content is "
            "not judged"
        )
    info.completeness = Completeness.UNKNOWN


def _pg_info(info: PayloadInfo, archives: list[ArchiveFacts]) -> None:
    """PayloadInfo from the pg_dump archives read (one, or several in one tar)."""
    first = archives[0]
    info.kind = f"pg_dump-{first.fmt}"
    info.database_kind = "PostgreSQL"
    info.producer = f"pg_dump ({_PG_FORMATS[first.fmt]})"
    if first.not_judged is not None or first.toc is None:
        info.not_judged = first.not_judged
        info.completeness = Completeness.UNKNOWN
        return
    head = first.toc.header
    info.producer_version = head.dump_version
    info.server_version = head.server_version
    info.database = ", ".join(a.toc.header.database for a in archives if a.toc)
    info.facts = {"archives": [_archive_facts(a) for a in archives]}
    info.tables = sum(a.toc.by_desc.get("TABLE", 0) for a in archives if a.toc)
    rows = [f"{t}: {n} rows" for a in archives for t, n in a.table_rows.items()]
    info.entries = rows[:MAX_LISTED_ENTRIES]
    info.entries_total = sum(a.toc.entries for a in archives if a.toc)
    not_decoded = sorted({m for a in archives for m in a.not_decoded})
    blocks = sum(a.blocks for a in archives)
    data = sum(len(a.toc.data) for a in archives if a.toc)
    several = f"{len(archives)} archives, " if len(archives) > 1 else ""
    info.trailer = (
        f"{several}archive {head.version_text}, compression {head.compression}; "
        f"{info.entries_total} TOC entries, {data} with data, {blocks} data "
        f"{'blocks' if first.fmt == 'custom' else 'files'} read, "
        f"{sum(a.rows for a in archives)} rows"
    )
    if blobs := sum(a.blobs for a in archives):
        info.trailer += f", {blobs} large objects"
        if head.compression == "none":
            # Rows are checked as COPY text; a large object is bytes with no check at all.
            info.trailer += " (uncompressed: their bytes carry no check)"
    if not_decoded:
        info.not_judged = (
            f"its data compressed with {', '.join(not_decoded)} was not decoded (no decoder "
            "installed): its structure is whole, its content not checked"
        )
        info.completeness = Completeness.STRUCTURE_ONLY
    else:
        info.completeness = Completeness.ARCHIVE_COMPLETE


def _archive_facts(a: ArchiveFacts) -> dict[str, Any]:
    assert a.toc is not None
    h = a.toc.header
    return {
        "format": a.fmt,
        "archive_version": h.version_text,
        "compression": h.compression,
        "created": h.created,
        "database": h.database,
        "server_version": h.server_version,
        "pg_dump_version": h.dump_version,
        "encoding": a.toc.encoding,
        "toc_entries": a.toc.entries,
        "entries_by_kind": dict(sorted(a.toc.by_desc.items())),
        "data_entries": len(a.toc.data),
        "data_checked": a.blocks,
        "rows": a.rows,
        "large_objects": a.blobs,
        "table_rows": dict(list(a.table_rows.items())[:MAX_LISTED_ENTRIES]),
        "not_decoded": sorted(a.not_decoded),
    }
