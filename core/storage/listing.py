"""Backup sets and every object version under an S3 prefix.

Each data version is paired with the wrapped-key version written with it. A
producer writes the data and its key once per run, so pairs never cross: the
versions are aligned in the order they were written, and within that order the
alignment nearest in time wins (no pair further apart than PAIR_WINDOW).
Stores report LastModified to the second, so versions written in the same
second are ordered by the listing, which S3 returns newest first per key.
Versions left without a partner are flagged (an orphan or a mismatch), as is
an object whose newest version is a delete marker.

Objects that are plainly not backups (``readme.txt``, ``photos/cat.jpg``: a document,
picture or web file, by name, with no wrapped key beside it) are listed as "not a
recognised backup"; a bucket without versioning is flagged, since an overwrite or a
delete there destroys the earlier backup for good.
"""

from __future__ import annotations

import datetime as _dt
import enum
import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AccessDenied, ObjectNotFound, SealcheckError, StorageError
from .naming import (
    Rule,
    Stamp,
    key_candidates,
    looks_like_wrapped_key,
    pair_names,
    series_name,
    stamp_of,
)
from .rewrap import current_links, is_rotation_object, parse_link
from .s3.errors import map_client_error
from .sidecar import sidecars_of

PAIR_WINDOW = _dt.timedelta(hours=1)
UNVERSIONED = "(unversioned)"
# Names that say "document, picture, page or config", never a database backup. A deny
# list, not an allow list: a backup under an odd name (no extension, ".bak") is still
# offered for verification, which then decides; only the obvious are left out.
_NOT_BACKUP_SUFFIXES = frozenset(
    "txt md rst log csv tsv json yaml yml xml html htm css js ini cfg conf toml "
    "pdf doc docx xls xlsx ppt pptx odt ods rtf "
    "jpg jpeg png gif bmp svg webp ico tif tiff heic "
    "mp3 mp4 mov avi mkv wav "
    "pem crt cer pub "
    # Sidecars whose backup is not there (with it, they are shown beside it).
    "sha256 sha256sum md5 md5sum sha1 sha512 info".split()
)
# Above this many (data x key) versions in one burst, align by rank instead of
# by the quadratic search (rank is what the search finds for such bursts anyway).
MAX_ALIGN_CELLS = 250_000
NO_KEY_VERSION = "no wrapped-key version was written with this version"
# Exact ties (LastModified has whole seconds) go to the key written after its
# data, as the producers upload the data first, then its key.
_KEY_BEFORE_DATA = 1e-3


@dataclass(frozen=True)
class ObjectVersion:
    """One version as listed. ``version_id`` None is the current version of an
    unversioned object; ``"null"`` an older one written before versioning."""

    key: str
    version_id: str | None
    size: int
    last_modified: _dt.datetime
    etag: str | None
    is_latest: bool
    delete_marker: bool = False
    # As listed (STANDARD, GLACIER, DEEP_ARCHIVE, ...); None where the store says nothing.
    storage_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "size": self.size,
            "last_modified": self.last_modified.isoformat(),
            "etag": self.etag,
            "is_latest": self.is_latest,
            "delete_marker": self.delete_marker,
            "storage_class": self.storage_class,
        }


def version_text(version_id: str | None) -> str:
    """A version id for people. S3 names the version of an object written while
    versioning was off "null", and an unversioned object has no id at all: both read
    "(unversioned)", never a literal null."""
    return version_id if version_id and version_id != "null" else UNVERSIONED


@dataclass(frozen=True)
class VersionPair:
    data: ObjectVersion
    key: ObjectVersion | None
    issue: str | None = None
    night: str | None = None  # in a nightly series: the night as its name writes it


def looks_like_backup(name: str, key_name: str | None, rules: Sequence[Rule] = ()) -> bool:
    """False for an object that is plainly not a backup: a document, picture, page or
    certificate by its name, with no wrapped key paired and no naming rule for it."""
    if key_name is not None or any(name.endswith(r.data_suffix) for r in rules):
        return True
    base = name.rsplit("/", 1)[-1]
    suffix = base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""
    return suffix not in _NOT_BACKUP_SUFFIXES


@dataclass(frozen=True)
class BackupSet:
    name: str
    key_name: str | None
    pairs: tuple[VersionPair, ...]  # newest first
    orphan_keys: tuple[ObjectVersion, ...]
    issues: tuple[str, ...]
    recognised: bool = True  # False: plainly not a backup (looks_like_backup)
    # A nightly series (naming.stamp_of): the object of each night, newest night first;
    # ``name`` is then the pattern (``clustercontrol/YYYY-MM-DD/backup-full.sql.gz.aes256``).
    members: tuple[str, ...] = ()
    # Files a producer wrote beside the backup (``X.sha256``, ``X.info``…; see sidecar):
    # not backups, shown with it; verify compares the checksums and sizes they carry.
    sidecars: tuple[str, ...] = ()

    @property
    def is_series(self) -> bool:
        return bool(self.members)

    @property
    def newest(self) -> ObjectVersion | None:
        live = [p.data for p in self.pairs if not p.data.delete_marker]
        return live[0] if live else None

    @property
    def envelope(self) -> str:
        return "data + wrapped key" if self.key_name else "single object"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "wrapped_key": self.key_name,
            "envelope": self.envelope,
            "versions": [
                {
                    "data": p.data.to_dict(),
                    "key": p.key.to_dict() if p.key else None,
                    "issue": p.issue,
                }
                | ({"night": p.night} if self.is_series else {})
                for p in self.pairs
            ],
            "orphan_key_versions": [k.to_dict() for k in self.orphan_keys],
            "issues": list(self.issues),
            "recognised": self.recognised,
            "sidecars": list(self.sidecars),
        }
        if self.is_series:
            out["series"] = {"nights": len(self.members), "objects": list(self.members)}
        return out


@dataclass
class ListingStats:
    """What a listing saw besides the versions (for the pagination cross-check)."""

    pages: int = 0
    server: str = ""


def _version_id(v: dict[str, Any]) -> str | None:
    vid = v.get("VersionId")
    # "null" of the current version means an unversioned object: address it as
    # "current". An older "null" version must stay addressable by its id.
    if vid is None or (vid == "null" and v.get("IsLatest")):
        return None
    return str(vid)


def iter_version_pages(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    page_size: int = 1000,
    stats: ListingStats | None = None,
) -> Iterator[list[ObjectVersion]]:
    """ListObjectVersions, one page at a time (the GUI shows rows per page)."""
    name = f"s3://{bucket}/{prefix}"
    try:
        pager = client.get_paginator("list_object_versions")
        for page in pager.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        ):
            if stats is not None:
                stats.pages += 1
                headers = page.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                stats.server = str(headers.get("server", ""))
            out = [
                ObjectVersion(
                    v["Key"],
                    _version_id(v),
                    int(v.get("Size", 0)),
                    v["LastModified"],
                    v.get("ETag"),
                    bool(v.get("IsLatest")),
                    storage_class=v.get("StorageClass"),
                )
                for v in page.get("Versions", [])
            ]
            out += [
                ObjectVersion(
                    d["Key"],
                    _version_id(d),
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
        raise listing_error(exc, name) from None


class ListingDenied(AccessDenied):
    """Access denied: these credentials may not list this bucket."""


def listing_error(exc: Exception, where: str) -> SealcheckError:
    """A failed listing in words that fit a listing (what was denied is the list)."""
    err = map_client_error(exc, where)
    if type(err) is AccessDenied and err.detail.startswith("("):
        return ListingDenied(f"They need s3:ListBucketVersions on it {err.detail}", obj=where)
    return err


def versions_of(client: Any, bucket: str, key: str) -> list[ObjectVersion]:
    """Every version of exactly ``key``, in listing order (newest first)."""
    return [v for page in iter_version_pages(client, bucket, key) for v in page if v.key == key]


# --- pairing -----------------------------------------------------------------------


def _chronological(vs: Sequence[ObjectVersion]) -> list[int]:
    """Indices of ``vs`` oldest first. Ties (same second) keep the listing's
    order, newest first per key, reversed; the current version is the newest."""
    return sorted(range(len(vs)), key=lambda i: (vs[i].last_modified, vs[i].is_latest, -i))


def _seconds(a: ObjectVersion, b: ObjectVersion) -> float:
    return abs((a.last_modified - b.last_modified).total_seconds())


def _pair_cost(d: ObjectVersion, k: ObjectVersion) -> float:
    dt = _seconds(d, k)
    if dt > PAIR_WINDOW.total_seconds():
        return float("inf")
    return dt + (_KEY_BEFORE_DATA if k.last_modified < d.last_modified else 0.0)


def _segments(
    data: Sequence[ObjectVersion], keys: Sequence[ObjectVersion]
) -> Iterator[tuple[range, range]]:
    """Split both chronological lists where nothing happened for PAIR_WINDOW:
    no pair can span such a gap, so each burst is aligned on its own."""
    events = sorted(
        [(v.last_modified, 0, i) for i, v in enumerate(data)]
        + [(v.last_modified, 1, j) for j, v in enumerate(keys)]
    )
    d0 = k0 = d = k = 0
    last: _dt.datetime | None = None
    for when, kind, _ in events:
        if last is not None and when - last > PAIR_WINDOW:
            yield range(d0, d), range(k0, k)
            d0, k0 = d, k
        last = when
        d, k = (d + 1, k) if kind == 0 else (d, k + 1)
    yield range(d0, d), range(k0, k)


def _align_burst(
    data: Sequence[ObjectVersion], keys: Sequence[ObjectVersion]
) -> list[tuple[int, int]]:
    """Order-preserving pairs (i, j) with the least total time apart; leaving a
    version unpaired costs PAIR_WINDOW, so any pair within the window is kept."""
    n, m = len(data), len(keys)
    if not n or not m:
        return []
    gap = PAIR_WINDOW.total_seconds()
    if n * m > MAX_ALIGN_CELLS:
        pairs = [(n - 1 - t, m - 1 - t) for t in range(min(n, m))]
        return [(i, j) for i, j in pairs if _seconds(data[i], keys[j]) <= gap]
    cost = [[j * gap for j in range(m + 1)]] + [[i * gap] + [0.0] * m for i in range(1, n + 1)]
    move = [[2] * (m + 1)] + [[1] + [0] * m for _ in range(n)]  # 0 pair, 1 skip data, 2 skip key
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best, mv = cost[i - 1][j - 1] + _pair_cost(data[i - 1], keys[j - 1]), 0
            if cost[i - 1][j] + gap < best:
                best, mv = cost[i - 1][j] + gap, 1
            if cost[i][j - 1] + gap < best:
                best, mv = cost[i][j - 1] + gap, 2
            cost[i][j], move[i][j] = best, mv
    out: list[tuple[int, int]] = []
    i, j = n, m
    while i and j:
        mv = move[i][j]
        if mv == 0:
            out.append((i - 1, j - 1))
        i, j = (i - 1, j - 1) if mv == 0 else (i - 1, j) if mv == 1 else (i, j - 1)
    return out


def pair_versions(
    data: Sequence[ObjectVersion], keys: Sequence[ObjectVersion]
) -> tuple[list[VersionPair], list[ObjectVersion]]:
    """Pair each data version with the key version written with it.

    ``data`` and ``keys`` are in listing order. Returns the pairs newest first
    (delete markers included, flagged) and the key versions left unpaired.
    """
    d_order = [i for i in _chronological(data) if not data[i].delete_marker]
    k_order = [j for j in _chronological(keys) if not keys[j].delete_marker]
    live_d = [data[i] for i in d_order]
    live_k = [keys[j] for j in k_order]
    partner: dict[int, int] = {}
    for ds, ks in _segments(live_d, live_k):
        burst = _align_burst(live_d[ds.start : ds.stop], live_k[ks.start : ks.stop])
        for i, j in burst:
            partner[d_order[ds.start + i]] = k_order[ks.start + j]
    pairs = []
    for i in reversed(_chronological(data)):
        d = data[i]
        if d.delete_marker:
            pairs.append(VersionPair(d, None, "delete marker"))
        elif i in partner:
            pairs.append(VersionPair(d, keys[partner[i]]))
        else:
            pairs.append(VersionPair(d, None, NO_KEY_VERSION if keys else None))
    used = set(partner.values())
    orphans = [keys[j] for j in reversed(k_order) if j not in used]
    return pairs, orphans


def _issues(
    name: str,
    key_name: str | None,
    data: Sequence[ObjectVersion],
    keys: Sequence[ObjectVersion],
    pairs: Sequence[VersionPair],
    orphans: Sequence[ObjectVersion],
    rules: Sequence[Rule],
) -> tuple[str, ...]:
    issues = []
    # IsLatest, not the timestamp: a delete marker often shares its second with
    # the version it hides.
    if any(v.delete_marker and v.is_latest for v in data):
        issues.append("the newest version is a delete marker (the object was deleted)")
    elif any(v.delete_marker and v.is_latest for v in keys):
        issues.append("the wrapped key was deleted (its newest version is a delete marker)")
    unpaired = sum(1 for p in pairs if p.issue == NO_KEY_VERSION)
    if unpaired:
        issues.append(f"{unpaired} data version(s) without a matching wrapped-key version")
    if orphans:
        issues.append(f"{len(orphans)} wrapped-key version(s) without a data version")
    if key_name is None and looks_like_wrapped_key(name, rules):
        issues.append("a wrapped key with no data object")
    return tuple(issues)


def group(versions: Sequence[ObjectVersion], rules: Sequence[Rule] = ()) -> list[BackupSet]:
    """Group a complete version list (one page for the incremental Grouper)."""
    grouper = Grouper(rules)
    grouper.add(versions)
    return grouper.sets


# --- listing -----------------------------------------------------------------------


class Versioning(enum.Enum):
    ENABLED = "enabled"
    SUSPENDED = "suspended"  # was on: old versions stay, new writes replace "null"
    OFF = "off"  # never enabled
    UNKNOWN = "unknown"  # not allowed to ask (s3:GetBucketVersioning), or not supported
    NONE = "none"  # a local folder: files have no versions


def bucket_versioning(client: Any, bucket: str) -> Versioning:
    """Whether the bucket keeps every version. Best effort, asked after a listing that
    worked: a store that refuses or lacks the call (s3:GetBucketVersioning) is unknown."""
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except Exception:  # noqa: BLE001 - a flag, never a reason to fail the listing
        return Versioning.UNKNOWN
    return {"Enabled": Versioning.ENABLED, "Suspended": Versioning.SUSPENDED}.get(
        str(status), Versioning.OFF
    )


def versioning_warning(v: Versioning, bucket: str) -> str | None:
    """The flag for a bucket that does not keep every version, or None."""
    if v is Versioning.OFF:
        state = "versioning is off"
    elif v is Versioning.SUSPENDED:
        state = "versioning is suspended"
    else:
        return None
    return (
        f"bucket {bucket}: {state}, so an overwrite or a delete destroys the earlier backup "
        "for good; enable versioning on the bucket to keep every version"
    )


def _current_keys(client: Any, bucket: str, prefix: str) -> set[str]:
    """Keys of the current objects (ListObjectsV2); empty when not allowed."""
    try:
        pager = client.get_paginator("list_objects_v2")
        return {
            o["Key"]
            for page in pager.paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        }
    except Exception as exc:  # noqa: BLE001 - typed below
        err = map_client_error(exc, f"s3://{bucket}/{prefix}")
        if isinstance(err, AccessDenied):
            return set()  # the cross-check is best effort; ListBucket may be denied
        raise err from None


def _relist_dropped(
    client: Any, bucket: str, prefix: str, versions: list[ObjectVersion], stats: ListingStats
) -> list[ObjectVersion]:
    """Re-list, key by key, what a paginated version listing may have dropped.

    SeaweedFS 4.48 drops versions of X from a *paginated* ListObjectVersions
    when X has several versions and a key such as X.key exists, even the
    current one. Keys that ListObjectsV2 shows but the version listing lacks
    are re-listed on any store; on SeaweedFS, every key that prefixes another.
    """
    seen = {v.key for v in versions}
    suspects = _current_keys(client, bucket, prefix) - seen
    if stats.server.startswith("SeaweedFS"):
        names = sorted(seen | suspects)
        suspects |= {a for a, b in itertools.pairwise(names) if b.startswith(a)}
    if not suspects:
        return versions
    kept = [v for v in versions if v.key not in suspects]
    for key in sorted(suspects):
        kept += versions_of(client, bucket, key)
    return kept


class Grouper:
    """Incremental grouping for page-by-page listings.

    ``add`` regroups only the backup sets a page touched, so a listing of N
    pages costs O(N) set pairings instead of O(N^2): the GUI shows each page
    as soon as it arrives without the work growing with the bucket.

    Objects are paired by their own names first (``X`` with ``X.key``); a date-stamped
    name then joins the nightly series of its pattern (``series_of``). A dated name is a
    series from its first night on, so a set keeps its name while later pages arrive.
    """

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self._by_key: dict[str, list[ObjectVersion]] = defaultdict(list)
        self._mapping: dict[str, str | None] = {}
        self._members: dict[str, BackupSet] = {}  # one per data object name
        self._in_set: dict[str, set[str]] = defaultdict(set)  # set name -> object names
        self._sets: dict[str, BackupSet] = {}  # as shown: plain sets and series
        self._links: list[ObjectVersion] = []  # rotation's re-wrapped keys (rewrap.py)
        self.versions = 0

    def add(self, page: Sequence[ObjectVersion]) -> list[BackupSet]:
        """Add a page of versions; return the backup sets that are new or changed."""
        touched = set()
        # Re-wrapped keys and rotation's control objects are not backups (rewrap.py);
        # the keys are kept aside, so a complete listing answers which exist (links).
        self._links += [v for v in page if parse_link(v.key) is not None]
        page = [v for v in page if not is_rotation_object(v.key)]
        for v in page:
            self._by_key[v.key].append(v)
            touched.add(v.key)
        self.versions += len(page)
        mapping = pair_names(self._by_key, self._rules)
        regroup: set[str] = set()
        for data_name, key_name in sorted(mapping.items()):
            if (
                data_name in touched
                or (key_name is not None and key_name in touched)
                or self._mapping.get(data_name, "") != key_name
                or any(sc in touched for sc in sidecars_of(data_name, self._by_key))
            ):
                self._members[data_name] = self._group_one(data_name, key_name)
                shown = series_name(data_name)
                self._in_set[shown].add(data_name)
                regroup.add(shown)
        for gone in set(self._mapping) - set(mapping):
            # A name now known to be another set's key.
            self._members.pop(gone, None)
            shown = series_name(gone)
            self._in_set[shown].discard(gone)
            regroup.add(shown)
        self._mapping = mapping
        return [s for name in sorted(regroup) if (s := self._regroup(name)) is not None]

    def replace(self, versions: Sequence[ObjectVersion]) -> list[BackupSet]:
        """Start over from a complete version list (after a re-listing)."""
        self._by_key.clear()
        self._mapping.clear()
        self._members.clear()
        self._in_set.clear()
        self._sets.clear()
        self._links.clear()
        self.versions = 0
        return self.add(versions)

    def _group_one(self, data_name: str, key_name: str | None) -> BackupSet:
        dv = self._by_key[data_name]
        kv = self._by_key.get(key_name, []) if key_name else []
        pairs, orphans = pair_versions(dv, kv)
        issues = _issues(data_name, key_name, dv, kv, pairs, orphans, self._rules)
        recognised = looks_like_backup(data_name, key_name, self._rules)
        sidecars = sidecars_of(data_name, self._by_key)
        return BackupSet(
            data_name, key_name, tuple(pairs), tuple(orphans), issues, recognised,
            sidecars=sidecars,
        )  # fmt: skip

    def _regroup(self, shown: str) -> BackupSet | None:
        names = self._in_set.get(shown)
        if not names:
            self._in_set.pop(shown, None)
            self._sets.pop(shown, None)
            return None
        members = [self._members[n] for n in names]
        if len(members) == 1 and stamp_of(members[0].name) is None:
            s = members[0]  # a name without a date is a set of its own
        else:
            s = series_of(shown, members)
        self._sets[shown] = s
        return s

    @property
    def sets(self) -> list[BackupSet]:
        return [self._sets[n] for n in sorted(self._sets)]

    def links(self) -> dict[tuple[str, str], list[str]]:
        """The re-wrapped keys listed so far, by (wrapped key or data name, data version
        id): all of them once the listing of the prefix is complete."""
        return current_links(self._links)

    @property
    def all_versions(self) -> list[ObjectVersion]:
        return [v for vs in self._by_key.values() for v in vs]


NO_KEY_OBJECT = "no wrapped-key object beside this night's backup"


def series_of(name: str, members: Sequence[BackupSet]) -> BackupSet:
    """One backup set for the nights of a series, each night's versions in turn.

    Newest night first (the date its name carries: when the producer made it), and
    within a night its S3 versions newest first. A versioned bucket thus shows
    nights x versions as one list in which every row is one object version: a later
    version of a night is a re-upload of that night, which must not pass ahead of a
    later night (it holds older data), and the newest good version is the first row
    that verifies."""
    nights: list[tuple[Stamp, BackupSet]] = []
    for m in members:
        st = stamp_of(m.name)
        assert st is not None, m.name
        nights.append((st, m))
    nights.sort(key=lambda sm: sm[0].order, reverse=True)
    key_names = [m.key_name for _, m in nights if m.key_name]
    key_name = series_name(key_names[0]) if key_names else None
    pairs: list[VersionPair] = []
    orphans: list[ObjectVersion] = []
    issues: list[str] = []
    keyless = 0
    for st, m in nights:
        lacks_key = key_name is not None and m.key_name is None
        keyless += lacks_key
        for p in m.pairs:
            issue = p.issue or (NO_KEY_OBJECT if lacks_key else None)
            pairs.append(replace(p, issue=issue, night=st.night))
        orphans += m.orphan_keys
        issues += [f"{st.night}: {i}" for i in m.issues]
    if keyless:
        issues.append(f"{keyless} night(s) without a wrapped-key object beside the backup")
    return BackupSet(
        name,
        key_name,
        tuple(pairs),
        tuple(orphans),
        tuple(issues),
        all(m.recognised for _, m in nights),
        tuple(m.name for _, m in nights),
        tuple(sc for _, m in nights for sc in m.sidecars),
    )


def iter_complete_pages(
    client: Any, bucket: str, prefix: str, *, page_size: int = 1000
) -> Iterator[tuple[bool, list[ObjectVersion]]]:
    """The version listing page by page, ``(False, page)``; then, when it took several
    pages and a re-listing found versions the pagination dropped (``_relist_dropped``),
    ``(True, every version)``: start over from that complete list. Every version is
    kept, rotation's own objects too (a caller such as rotation's scope reads them)."""
    stats = ListingStats()
    versions: list[ObjectVersion] = []
    for page in iter_version_pages(client, bucket, prefix, page_size=page_size, stats=stats):
        versions += page
        yield False, page
    if stats.pages > 1:
        relisted = _relist_dropped(client, bucket, prefix, versions, stats)
        if len(relisted) != len(versions):
            yield True, relisted


def iter_set_changes(
    client: Any,
    bucket: str,
    prefix: str,
    rules: Sequence[Rule] = (),
    *,
    page_size: int = 1000,
) -> Iterator[tuple[list[BackupSet], Grouper]]:
    """Per page, the backup sets that changed; then, if a re-listing found
    versions the paginated listing dropped, one more batch of changes."""
    grouper = Grouper(rules)
    for whole, versions in iter_complete_pages(client, bucket, prefix, page_size=page_size):
        yield (grouper.replace(versions) if whole else grouper.add(versions)), grouper


def list_backup_sets(
    client: Any,
    bucket: str,
    prefix: str,
    rules: Sequence[Rule] = (),
    *,
    on_page: Callable[[list[BackupSet]], None] | None = None,
    page_size: int = 1000,
) -> list[BackupSet]:
    grouper = Grouper(rules)
    for _changed, grouper in iter_set_changes(client, bucket, prefix, rules, page_size=page_size):
        if on_page is not None:
            on_page(grouper.sets)
    return grouper.sets


# --- local folders -----------------------------------------------------------------
#
# A folder is listed as a prefix is: every file under it, recursively, each as the one
# current version of an object named by its path (the path the jobs open), grouped and
# paired by the same naming rules. Hidden files and folders (".DS_Store", an editor's or
# an uploader's ".partial") are left out: no producer names a backup that way.


class FolderNotFound(ObjectNotFound):
    """No such file or folder: check the path."""


def _file_version(path: str) -> ObjectVersion | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # gone since the folder was read
    if not os.path.isfile(path):
        return None  # a fifo, a socket, a device: never a backup
    when = _dt.datetime.fromtimestamp(st.st_mtime, _dt.UTC)
    return ObjectVersion(path, None, st.st_size, when, None, True)


def _walk_error(err: OSError) -> None:
    where = err.filename or "?"
    if isinstance(err, PermissionError):
        raise AccessDenied("this folder cannot be read", obj=str(where)) from None
    raise StorageError(err.strerror or str(err), obj=str(where)) from None


def iter_folder_pages(
    root: Path, rules: Sequence[Rule] = (), *, page_size: int = 1000
) -> Iterator[list[ObjectVersion]]:
    """The files under ``root`` as object versions, a page at a time. A file as root
    lists that file and its wrapped key beside it (an opened backup file)."""
    name = str(root)
    if not os.path.exists(name):
        raise FolderNotFound(obj=name)
    if os.path.isfile(name):
        beside = [str(root.with_name(c)) for c in key_candidates(root.name, rules)]
        found = [v for p in [name, *beside] if (v := _file_version(p)) is not None]
        yield found
        return
    page: list[ObjectVersion] = []
    for folder, dirs, files in os.walk(name, onerror=_walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            if (v := _file_version(os.path.join(folder, f))) is not None:
                page.append(v)
                if len(page) >= page_size:
                    yield page
                    page = []
    yield page


def iter_folder_changes(
    root: Path, rules: Sequence[Rule] = (), *, page_size: int = 1000
) -> Iterator[tuple[list[BackupSet], Grouper]]:
    """Per page of files, the backup sets that changed (as ``iter_set_changes``)."""
    grouper = Grouper(rules)
    for page in iter_folder_pages(root, rules, page_size=page_size):
        yield grouper.add(page), grouper


def list_folder(root: Path, rules: Sequence[Rule] = ()) -> list[BackupSet]:
    grouper = Grouper(rules)
    for page in iter_folder_pages(root, rules):
        grouper.add(page)
    return grouper.sets


# --- nothing there: say so, and what is near ---------------------------------------

NEARBY = 8  # keys or files shown from one level up


@dataclass(frozen=True)
class Nearby:
    """What exists one level above an empty prefix or folder."""

    where: str  # the place looked at (s3://bucket/parent/ or a folder)
    names: tuple[str, ...]  # its first entries, folders ending in "/"
    more: bool = False


def parent_prefix(prefix: str) -> str | None:
    """The prefix one level up ("a/b/" and "a/b" -> "a/", "db/" -> ""); None for ""."""
    if not prefix:
        return None
    return prefix[: prefix.rstrip("/").rfind("/") + 1]


def nearby_keys(client: Any, bucket: str, prefix: str, n: int = NEARBY) -> Nearby | None:
    """The first keys and "folders" one level above ``prefix``; None when ``prefix`` is
    the whole bucket or that cannot be listed (best effort, never an error)."""
    parent = parent_prefix(prefix)
    if parent is None:
        return None
    try:
        r = client.list_objects_v2(Bucket=bucket, Prefix=parent, Delimiter="/", MaxKeys=n)
    except Exception:  # noqa: BLE001 - a hint, never a reason to fail
        return None
    names = [str(c["Prefix"])[len(parent) :] for c in r.get("CommonPrefixes", [])]
    names += [str(o["Key"])[len(parent) :] for o in r.get("Contents", [])]
    return Nearby(f"s3://{bucket}/{parent}", tuple(sorted(names)[:n]), bool(r.get("IsTruncated")))


def nearby_files(root: Path, n: int = NEARBY) -> Nearby | None:
    """The first entries of the folder above ``root`` (``root`` itself left out)."""
    parent = root.parent
    if parent == root:
        return None
    try:
        entries = sorted(
            e.name + ("/" if e.is_dir() else "")
            for e in os.scandir(parent)
            if not e.name.startswith(".") and e.name != root.name
        )
    except OSError:
        return None
    return Nearby(str(parent), tuple(entries[:n]), len(entries) > n)


RULES_HINT = (
    "Everything under it is listed; a backup's data and its wrapped key are paired by "
    "name (X with X.key, STEM.sql.bz.enc with STEM.key.txt.enc; a single .enc, .gpg or "
    ".aes256 object needs none), and a naming rule DATA_SUFFIX:KEY_SUFFIX pairs others."
)


def empty_text(where: str, nearby: Nearby | None, *, whole: bool = False) -> str:
    """What an empty listing says: nothing there, how a prefix matches, what is one
    level up, and how backups are recognised."""
    if whole:
        head = f"{where} is empty."
    else:
        head = (
            f"Nothing under {where}. A prefix matches the start of each name exactly "
            "(case matters; a folder ends in /)."
        )
    if nearby is not None and nearby.names:
        shown = ", ".join(nearby.names) + (", …" if nearby.more else "")
        head += f" One level up, {nearby.where} holds: {shown}."
    elif nearby is not None:
        head += f" One level up, {nearby.where} is empty too."
    return f"{head} {RULES_HINT}"


# --- a connection test: one page ------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What one page of a listing showed (Add/Edit source's "Test connection")."""

    where: str
    count: int  # object versions (or files) in the first page
    more: bool  # the first page was full: more follow
    versioning: Versioning
    nearby: Nearby | None = None
    whole: bool = False  # an empty bucket (no prefix), not an empty prefix

    def text(self) -> str:
        if not self.count:
            if self.versioning is Versioning.NONE:
                return empty_text(f"The folder {self.where}", self.nearby, whole=True)
            if self.whole:
                bucket = self.where[5:].split("/", 1)[0]
                return "Connected. " + empty_text(f"The bucket {bucket}", None, whole=True)
            return "Connected. " + empty_text(self.where, self.nearby)
        noun = "object version" if self.versioning is not Versioning.NONE else "file"
        n = f"{self.count}{'+' if self.more else ''} {noun}{'s' * (self.count != 1)}"
        out = f"Connected: {n} under {self.where}"
        out += " (the first page; more follow)." if self.more else "."
        if self.versioning is Versioning.ENABLED:
            out += " Versioning is enabled: every version is kept."
        elif self.versioning is not Versioning.NONE:
            bucket = self.where[5:].split("/", 1)[0]
            warning = versioning_warning(self.versioning, bucket)
            out += (
                f" {warning[0].upper()}{warning[1:]}."
                if warning
                else (" Versioning: not allowed to ask (s3:GetBucketVersioning).")
            )
        return out


def probe_bucket(client: Any, bucket: str, prefix: str, *, page_size: int = 1000) -> Probe:
    """List one page under the prefix, ask the bucket's versioning, and, when nothing is
    there, look one level up. Errors are raised in a listing's words."""
    where = f"s3://{bucket}/{prefix}"
    try:
        page = client.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=page_size)
    except Exception as exc:  # noqa: BLE001 - typed below
        raise listing_error(exc, where) from None
    count = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    nearby = None if count else nearby_keys(client, bucket, prefix)
    return Probe(
        where,
        count,
        bool(page.get("IsTruncated")),
        bucket_versioning(client, bucket),
        nearby,
        whole=not prefix,
    )


def probe_folder(root: Path, *, page_size: int = 1000) -> Probe:
    """The folder's first page of files, as ``probe_bucket`` for a bucket."""
    pages = iter_folder_pages(root, page_size=page_size)
    first = next(pages, [])
    more = bool(first) and next(pages, []) != []
    nearby = None if first else nearby_files(root)
    return Probe(str(root), len(first), more, Versioning.NONE, nearby)
