"""Backup sets and every object version under an S3 prefix.

Each data version is paired with the wrapped-key version written with it: the
nearest key version in time, each used once, within PAIR_WINDOW. Versions
left without a partner are flagged (an orphan or a mismatch), as is a data
object whose newest version is a delete marker.
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .naming import Rule, pair_names
from .s3 import map_client_error

PAIR_WINDOW = _dt.timedelta(hours=1)


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str | None
    size: int
    last_modified: _dt.datetime
    etag: str | None
    is_latest: bool
    delete_marker: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "size": self.size,
            "last_modified": self.last_modified.isoformat(),
            "etag": self.etag,
            "is_latest": self.is_latest,
            "delete_marker": self.delete_marker,
        }


@dataclass(frozen=True)
class VersionPair:
    data: ObjectVersion
    key: ObjectVersion | None
    issue: str | None = None


@dataclass(frozen=True)
class BackupSet:
    name: str
    key_name: str | None
    pairs: tuple[VersionPair, ...]  # newest first
    orphan_keys: tuple[ObjectVersion, ...]
    issues: tuple[str, ...]

    @property
    def newest(self) -> ObjectVersion | None:
        live = [p.data for p in self.pairs if not p.data.delete_marker]
        return live[0] if live else None

    @property
    def envelope(self) -> str:
        return "data + wrapped key" if self.key_name else "single object"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "wrapped_key": self.key_name,
            "envelope": self.envelope,
            "versions": [
                {
                    "data": p.data.to_dict(),
                    "key": p.key.to_dict() if p.key else None,
                    "issue": p.issue,
                }
                for p in self.pairs
            ],
            "orphan_key_versions": [k.to_dict() for k in self.orphan_keys],
            "issues": list(self.issues),
        }


def iter_version_pages(
    client: Any, bucket: str, prefix: str, *, page_size: int = 1000
) -> Iterator[list[ObjectVersion]]:
    """ListObjectVersions, one page at a time (the GUI shows rows per page)."""
    name = f"s3://{bucket}/{prefix}"
    try:
        pager = client.get_paginator("list_object_versions")
        for page in pager.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        ):
            out = [
                ObjectVersion(
                    v["Key"],
                    None if v.get("VersionId") in (None, "null") else v["VersionId"],
                    int(v.get("Size", 0)),
                    v["LastModified"],
                    v.get("ETag"),
                    bool(v.get("IsLatest")),
                )
                for v in page.get("Versions", [])
            ]
            out += [
                ObjectVersion(
                    d["Key"],
                    d.get("VersionId"),
                    0,
                    d["LastModified"],
                    None,
                    bool(d.get("IsLatest")),
                    delete_marker=True,
                )
                for d in page.get("DeleteMarkers", [])
            ]
            yield out
    except Exception as exc:  # noqa: BLE001 - typed below
        raise map_client_error(exc, name) from None


def _pair(data: list[ObjectVersion], keys: list[ObjectVersion]) -> tuple[list[VersionPair], list[ObjectVersion]]:
    free = [k for k in keys if not k.delete_marker]
    pairs = []
    for d in sorted(data, key=lambda v: v.last_modified, reverse=True):
        if d.delete_marker:
            pairs.append(VersionPair(d, None, "delete marker"))
            continue
        best = min(free, key=lambda k: abs(k.last_modified - d.last_modified), default=None)
        if best is not None and abs(best.last_modified - d.last_modified) <= PAIR_WINDOW:
            free.remove(best)
            pairs.append(VersionPair(d, best))
        elif keys:
            pairs.append(VersionPair(d, None, "no wrapped-key version was written with this version"))
        else:
            pairs.append(VersionPair(d, None))
    return pairs, free


def group(versions: Sequence[ObjectVersion], rules: Sequence[Rule] = ()) -> list[BackupSet]:
    by_key: dict[str, list[ObjectVersion]] = defaultdict(list)
    for v in versions:
        by_key[v.key].append(v)
    mapping = pair_names(by_key, rules)
    sets = []
    for data_name, key_name in sorted(mapping.items()):
        dv = by_key[data_name]
        kv = by_key.get(key_name, []) if key_name else []
        pairs, orphans = _pair(dv, kv)
        issues = []
        if pairs and pairs[0].data.delete_marker:
            issues.append("the newest version is a delete marker (the object was deleted)")
        if any(p.issue and p.issue != "delete marker" for p in pairs):
            n = sum(1 for p in pairs if p.issue and p.issue != "delete marker")
            issues.append(f"{n} data version(s) without a matching wrapped-key version")
        if orphans:
            issues.append(f"{len(orphans)} wrapped-key version(s) without a data version")
        if key_name is None and data_name.endswith((".key", ".key.txt.enc", ".key.bin.enc")):
            issues.append("a wrapped key with no data object")
        sets.append(BackupSet(data_name, key_name, tuple(pairs), tuple(orphans), tuple(issues)))
    return sets


def list_backup_sets(
    client: Any,
    bucket: str,
    prefix: str,
    rules: Sequence[Rule] = (),
    *,
    on_page: Callable[[list[BackupSet]], None] | None = None,
) -> list[BackupSet]:
    versions: list[ObjectVersion] = []
    for page in iter_version_pages(client, bucket, prefix):
        versions.extend(page)
        if on_page is not None:
            on_page(group(versions, rules))
    return group(versions, rules)
