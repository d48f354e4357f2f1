"""What the window's job actions queue, decided without widgets: a selection of listed
versions becomes job specs (each the version as listed, with its paired key version),
restored files get their names, several restore tests run oldest first, and each one's
drift baseline is picked. Qt-free (an import-linter contract says so): tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sealcheck.core.storage.listing import UNVERSIONED, BackupSet, ObjectVersion, version_text

from ...jobs.spec import JobSpec, Operation, RestoreTestSpec
from ...state.settings import SourceConfig
from ...state.versions import VersionKey, VersionRow

VERBS: dict[Operation, str] = {
    "verify": "Verify",
    "restore": "Restore",
    "restore-test": "Restore test",
}


def restored_name(key: str) -> str:
    base = key.rsplit("/", 1)[-1]
    for suffix in (".enc", ".aes256", ".aes", ".gpg", ".gz", ".bz", ".bz2", ".zst", ".xz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base if base.endswith((".sql", ".xbstream")) else base + ".restored"


def restored_version_name(key: str, version_id: str | None) -> str:
    """``restored_name`` with the version in it, for several versions in one folder:
    ``backup-full.sql`` → ``backup-full.3HL4kqtJlcpX.sql``."""
    name = restored_name(key)
    if not version_id:
        return name
    stem, dot, ext = name.rpartition(".")
    # S3's "null" version (written while versioning was off) is no id to show.
    tag = "".join(c for c in version_id if c.isalnum())[:12]
    tag = tag if tag and version_id != "null" else "unversioned"
    return f"{stem}.{tag}.{ext}" if dot else f"{name}.{tag}"


def short_version(version_id: str | None) -> str:
    """A version id short enough for a title, long enough to tell versions apart."""
    text = str(version_text(version_id))
    return text if text == UNVERSIONED or len(text) <= 12 else text[:10] + "…"


def job_title(verb: str, d: ObjectVersion) -> str:
    """``Verify db/x.sql.gz (2026-11-27 03:00:07, version 3HL4kqtJlc…)``: two nightly
    uploads a minute apart, or two versions of one second, still read differently."""
    when: str = d.last_modified.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{verb} {d.key} ({when}, version {short_version(d.version_id)})"


def job_spec(
    source: SourceConfig,
    row: VersionRow,
    operation: Operation,
    dest: Path | None = None,
    *,
    confirmed: bool = True,
) -> JobSpec:
    """One job on a listed version: core opens exactly it and its paired key version."""
    return JobSpec(
        operation=operation,
        version=source.listed(row.data, row.key, row.sidecars),
        s3=source.s3(),
        destination=dest,
        # Only the save dialog asks "replace it?": a file it returns may be replaced.
        overwrite=confirmed and dest is not None and dest.exists(),
        title=job_title(VERBS[operation], row.data),
    )


def restore_specs(source: SourceConfig, rows: Iterable[VersionRow], folder: Path) -> list[JobSpec]:
    """One restore per version into ``folder``, each to its own file named after the
    object and the version; an existing file is never replaced (that job fails)."""
    return [
        job_spec(
            source,
            row,
            "restore",
            folder / restored_version_name(row.data.key, row.data.version_id),
            confirmed=False,
        )
        for row in rows
    ]


def newest_of_each(sets: Iterable[BackupSet]) -> list[VersionRow]:
    """With several backups selected, what a job runs on: the newest live version of
    each one that is a backup (readme.txt, photos/cat.jpg are never offered)."""
    out = []
    for s in sets:
        if not s.recognised:
            continue
        pair = next((p for p in s.pairs if not p.data.delete_marker), None)
        if pair is not None:
            out.append(VersionRow(pair.data, pair.key, pair.issue, s.sidecars))
    return out


def _key(v: ObjectVersion) -> VersionKey:
    return (v.key, v.version_id)


def oldest_first(
    rows: Iterable[VersionRow], backups: Sequence[BackupSet | None]
) -> list[VersionRow]:
    """By upload time; versions of one second keep S3's order (it lists a key's versions
    newest first, and ``backups`` hold them in that order), so the listing breaks the tie."""
    place: dict[VersionKey, int] = {}
    for s in backups:
        for i, p in enumerate(s.pairs if s is not None else ()):
            place.setdefault(_key(p.data), i)

    def age(r: VersionRow) -> tuple[Any, int]:
        return (r.data.last_modified, -place.get(_key(r.data), 0))

    return sorted(rows, key=age)


def drift_baselines(row: VersionRow, backups: Sequence[BackupSet | None]) -> tuple[VersionKey, ...]:
    """Where drift is measured from: the older live versions of the same backup, newest
    first, then this version's own earlier run (the queue takes the first that has a
    restore-test result when the job starts)."""
    this = _key(row.data)
    for s in backups:
        if s is None:
            continue
        keys = [_key(p.data) for p in s.pairs]  # newest first
        if this in keys:
            older = s.pairs[keys.index(this) + 1 :]
            return (*[_key(p.data) for p in older if not p.data.delete_marker], this)
    return (this,)


def restore_test_specs(
    source: SourceConfig,
    rows: Iterable[VersionRow],
    options: RestoreTestSpec,
    backups: Sequence[BackupSet | None],
) -> list[JobSpec]:
    """One restore test per version, oldest first: each version is then compared with
    the one tested just before it (the queue resolves the baseline when a job starts)."""
    return [
        replace(
            job_spec(source, row, "restore-test"),
            restore_test=replace(options, compare_with=drift_baselines(row, backups)),
        )
        for row in oldest_first(rows, backups)
    ]
