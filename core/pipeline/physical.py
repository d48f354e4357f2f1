"""The pipeline's side of physical backups (issue 16): the xbstream, or the tar of
the backup's folder, read by ``physical.check``, and what each layer proved in words."""

from __future__ import annotations

import re
from typing import Any

from ..decompress import quicklz
from ..decrypt.xbcrypt_opener import xbcrypt_proof
from ..decrypt.xbkey import XbcryptKey
from ..payload.info import MAX_LISTED_ENTRIES, Completeness, PayloadInfo
from ..payload.tarfiles import TarFilesReader
from ..payload.xbstream import META
from ..physical.check import PhysicalCheck, PhysicalResult
from ..physical.extract import FolderWriter
from ..physical.layout import PAYLOAD_KINDS
from ..records.report import LayerResult, Status
from .proof import Evidence

# Which QuickLZ decoder ran: a slow verify of a --compress backup says why.
_DECODER_WORDS = {
    "c": "decoded in C",
    "python": "decoded in pure Python (the C decoder was not built at install: slow)",
}
_LAYER_SUFFIXES = re.compile(r"(\.qp|\.xbcrypt)+$")
MAX_LISTED = MAX_LISTED_ENTRIES


def new_check(
    ev: Evidence,
    key: XbcryptKey | None,
    obj: str,
    writer: FolderWriter | None,
    max_disk: int | None = None,
    max_output: int | None = None,
    container: str = "xbstream",
) -> PhysicalCheck:
    def members_encrypted() -> None:
        # The first encrypted member: the backup is encrypted after all, by its members.
        if "the backup is not encrypted" in ev.warnings:
            ev.warnings.remove("the backup is not encrypted")
            ev.layers.pop("key", None)
            ev.set("cipher", Status.SKIPPED, "no envelope around the stream; see member-cipher")

    return PhysicalCheck(
        key=key,
        container=container,
        obj=obj,
        writer=writer,
        on_xbcrypt=members_encrypted,
        max_disk=max_disk,
        max_output=max_output,
    )


def _container_words(check: PhysicalCheck, r: PhysicalResult) -> str:
    reader = check.reader
    if isinstance(reader, TarFilesReader):
        skipped = (
            f"; {reader.zeros_skipped} zero blocks inside skipped, as tar -i does"
            if reader.zeros_skipped
            else ""
        )
        top = (
            f" (every member under the one top folder {reader.top + '/'!r}, which is the "
            "backup's root: the names here are below it)"
            if reader.top
            else ""
        )
        return (
            f"a tar of the backup's folder{top}: {r.chunks} headers, each checksummed; "
            f"{r.files} files and {reader.folders} folders, no link or device, every path "
            f"inside the backup's folder; its end blocks reached{skipped}"
        )
    return (
        f"{r.chunks} chunks, each CRC-32 checked; {r.files} files, each closed by its "
        "end chunk; every path inside the backup's folder"
    )


def payload_info(check: PhysicalCheck, r: PhysicalResult) -> PayloadInfo:
    names = list(check.reader.files)
    info = r.facts.info
    # The metadata files come last in the stream and prove the copy finished: list them first.
    meta = [n for n in names if _LAYER_SUFFIXES.sub("", n) in META]
    names = meta + [n for n in names if n not in meta]
    tool = info.get("tool_name") or "mariabackup/xtrabackup"
    tar = check.container == "tar"
    return PayloadInfo(
        kind=PAYLOAD_KINDS[check.container],
        database_kind="MariaDB" if "MariaDB" in info.get("server_version", "") else "MySQL",
        producer=f"{tool} ({'tar of the backup folder' if tar else 'xbstream'})",
        producer_version=info.get("tool_version"),
        server_version=info.get("server_version"),
        completeness=Completeness.STRUCTURE_COMPLETE,
        trailer=_container_words(check, r),
        tables=len(r.facts.tables),
        entries=names[:MAX_LISTED],
        entries_total=len(names),
    )


def physical_evidence(ev: Evidence, r: PhysicalResult, key: XbcryptKey | None) -> None:
    """The member layers, the backup's completeness and its pages."""
    t = r.tally
    stacks = ", ".join(f"{n} {s}" for s, n in sorted(t.stacks.items()))
    if t.xbcrypt.chunks and key is not None:
        keyp, cipher = xbcrypt_proof(t.xbcrypt, key, where="in each member")
        if "key" not in ev.layers:  # no outer envelope: the members' key is the backup's
            ev.set("key", Status.OK if t.xbcrypt.key_proved else Status.WARNING, keyp)
        # The member cipher proves the key when it is v3; the outer key stays as it was.
        ev.set(
            "member-cipher",
            Status.OK if t.xbcrypt.key_proved else Status.WARNING,
            f"{cipher}. Key: {keyp}",
            versions=sorted(t.xbcrypt.versions),
            chunks=t.xbcrypt.chunks,
            key_proved=t.xbcrypt.key_proved,
            key_origin=key.origin,
        )
        if not t.xbcrypt.key_proved:
            ev.warnings.append(
                "xbcrypt v1/v2 carries no key check: the key is proved only by the layers below it"
            )
    else:
        ev.set("member-cipher", Status.SKIPPED, "members not encrypted")
    if t.qpress_files:
        ev.ok(
            "member-decompress",
            f"qpress (QuickLZ): {t.qpress_files} files, {t.qpress_blocks} blocks, the "
            "Adler-32 of every block verified, each decoded to its stated size, each "
            f"archive's end marker read; {_DECODER_WORDS[quicklz.DECODER]}",
            files=t.qpress_files,
            blocks=t.qpress_blocks,
            decoder=quicklz.DECODER,
        )
    else:
        ev.set("member-decompress", Status.SKIPPED, "members not compressed")
    f = r.facts
    cp = f.checkpoints
    tables = (
        f"every table definition's data files present ({len(f.tables)} tables: "
        f"{sum(1 for e in f.tables.values() if e == 'InnoDB')} InnoDB)"
        if f.dictionary_in_files
        else "no .frm files (MySQL 8.0 data dictionary): tablespaces not compared with a catalogue"
    )
    details: dict[str, Any] = {
        "checkpoints": cp,
        "tables": dict(list(f.tables.items())[:MAX_LISTED]),
        "system_files": f.system_files,
        "member_layers": t.stacks,
    }
    ev.ok(
        "backup",
        f"complete: checkpoints ({cp.get('backup_type', '?')}, LSN {cp.get('from_lsn', '?')}"
        f"–{cp.get('to_lsn', '?')}), backup-my.cnf and the backup info present; system "
        f"tablespace {', '.join(f.system_files)} present; {tables}; members: {stacks}",
        **details,
    )
    p = r.pages
    if p.program is None:
        ev.set(
            "pages",
            Status.NOT_CHECKED,
            "innochecksum is not installed (MariaDB server packages): the InnoDB pages were "
            "not checked",
        )
        ev.warnings.append("InnoDB page checksums not checked: innochecksum is not installed")
    else:
        status = Status.WARNING if p.skipped else Status.OK
        text = (
            f"innochecksum: every page of {len(p.checked)} tablespaces "
            f"({p.pages_bytes} bytes) has a valid checksum; tablespaces piped from the stream, "
            "the system tablespace through a private 0700 folder (wiped after) so that its "
            "doublewrite buffer, copies of other pages, is left out"
        )
        if p.over_budget:
            text += (
                f"; NOT checked: {', '.join(p.over_budget)} (the system tablespace is checked "
                "in a scratch folder, and it is larger than --max-disk)"
            )
            ev.warnings.append(
                f"InnoDB pages of {', '.join(p.over_budget)} not checked: --max-disk"
            )
        if len(p.skipped) > len(p.over_budget):
            text += f"; {len(p.skipped) - len(p.over_budget)} interleaved tablespaces not checked"
        ev.set("pages", status, text, tablespaces=len(p.checked), bytes=p.pages_bytes)


def physical_partial(check: PhysicalCheck) -> dict[str, Any]:
    """Once a physical backup is found, its own layers are listed ("not reached"
    when the run stops before them)."""
    none: Any = lambda: None  # noqa: E731
    return {
        "member-cipher": none,
        "member-decompress": none,
        "backup": none,
        "pages": none,
        "payload": lambda: _partial_words(check),
    }


def _partial_words(check: PhysicalCheck) -> str | None:
    reader = check.reader
    if isinstance(reader, TarFilesReader):
        return (
            f"read {reader.headers} tar headers ({reader.bytes} bytes), each checksummed; "
            "the end of the archive was not reached"
            if reader.headers
            else None
        )
    return (
        f"read {reader.chunks} xbstream chunks ({reader.bytes} bytes), each CRC-32 checked; "
        "the end of the stream was not reached"
        if reader.chunks
        else None
    )


def destination_result(writer: FolderWriter) -> LayerResult:
    holes = (
        f"; {writer.holes} bytes of sparse chunks left as holes, as xbstream -x leaves them"
        if writer.holes
        else ""
    )
    top = (
        f"; the tar's top folder {writer.stripped + '/'!r} left out: {writer.destination} is "
        "the backup's root, as after mbstream -x, ready for mariabackup --prepare --target-dir"
        if writer.stripped
        else ""
    )
    return LayerResult(
        "destination",
        Status.OK,
        f"{writer.files} files extracted into {writer.destination} (a new folder, renamed "
        f"into place only once every layer verified; every file synced to disk{holes}{top})",
        {
            "files": writer.files,
            "bytes": writer.bytes,
            "holes": writer.holes,
            "stripped_folder": writer.stripped,
        },
    )
