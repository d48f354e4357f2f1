"""How the GUI's state names a listed version (Qt-free, for the job specs and the
window's compose module)."""

from __future__ import annotations

from dataclasses import dataclass

from sealcheck.core.storage.listing import ObjectVersion

VersionKey = tuple[str, str | None]  # (object key, version id)


@dataclass(frozen=True)
class VersionRow:
    """One row of a backup's versions: the data version, its paired key version."""

    data: ObjectVersion
    key: ObjectVersion | None
    flag: str | None  # orphan, mismatch, delete marker
    # The sidecar files the listing found beside this backup; None: not known (look).
    sidecars: tuple[str, ...] | None = None
