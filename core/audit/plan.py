"""The shard plan (issue 15): a campaign's work items as JSON Lines, the one contract
every engine runs (a Kubernetes Indexed Job, an AWS Batch array child, Dask).

    {"format": "sealcheck-plan/1", "campaign": {...}, "items": N, "sha256": "…"}
    {"bucket": "b", "key": "db/x.sql.gz", "version_id": "…", …, "operation": "verify"}
    …

* An item names exactly the listed version (and the wrapped-key version paired with it,
  and the sidecar names the listing found): a worker opens it through
  ``Locator.open_listed`` as a local campaign does, lists nothing and re-pairs nothing.
* Deterministic: items sorted by identity, each line canonical JSON (sorted keys, no
  spaces), so the same sample gives the same file on any machine.
* Sealed: the header carries the SHA-256 of the header without it and of every item
  line. ``read_plan`` refuses a plan whose digest does not match (a line edited, added,
  removed or reordered), naming the file: a worker never runs an edited plan.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SealcheckError
from ..plumbing.atomic import AtomicWriter
from ..storage.listing import ObjectVersion
from ..storage.locate import ListedVersion

FORMAT = "sealcheck-plan/1"


class PlanError(SealcheckError):
    """The shard plan cannot be used."""


class Operation(enum.Enum):
    VERIFY = "verify"
    RESTORE_TEST = "restore-test"


def canonical(doc: dict[str, Any]) -> str:
    """One line of JSON that is the same for the same content on every machine."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class WorkItem:
    """One version to check, as the coordinator's listing found it."""

    endpoint: str | None  # the S3 endpoint URL; None: AWS
    bucket: str
    data: ObjectVersion  # key, version id, size, ETag, last-modified, storage class
    paired: ObjectVersion | None  # the wrapped-key version written with it
    sidecars: tuple[str, ...] | None  # as the listing found them (None: not known)
    operation: Operation
    strict: bool  # the campaign's: a payload nobody could check fails
    # The rotation links the listing found for it (ListedVersion.links; None: not
    # known, as in a plan written before this field: the worker lists them).
    links: tuple[str, ...] | None = None

    @property
    def id(self) -> str:
        """The version's identity, as the campaign's sample names it."""
        return f"s3://{self.bucket}/{self.data.key}@{self.data.version_id or ''}"

    @property
    def key(self) -> str:
        return self.data.key

    @property
    def version_id(self) -> str | None:
        return self.data.version_id

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def etag(self) -> str | None:
        return self.data.etag

    @classmethod
    def of(
        cls,
        v: ListedVersion,
        *,
        endpoint: str | None,
        operation: Operation,
        strict: bool,
    ) -> WorkItem:
        if v.bucket is None:
            raise PlanError("a shard plan holds S3 versions only", obj=v.where)
        return cls(endpoint, v.bucket, v.data, v.key, v.sidecars, operation, strict, v.links)

    def listed(self) -> ListedVersion:
        """Back into what ``Locator.open_listed`` opens: exactly this version."""
        return ListedVersion(
            self.bucket, self.data, self.paired, sidecars=self.sidecars, links=self.links
        )

    def to_dict(self) -> dict[str, Any]:
        # "links" only when known: a plan without them reads as before (not known).
        links = {} if self.links is None else {"links": list(self.links)}
        return links | {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            **_version(self.data),
            "paired": None if self.paired is None else _version(self.paired),
            "sidecars": None if self.sidecars is None else list(self.sidecars),
            "operation": self.operation.value,
            "strict": self.strict,
        }

    def to_json(self) -> str:
        return canonical(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "work item") -> WorkItem:
        try:
            side, links = d["sidecars"], d.get("links")
            return cls(
                endpoint=_opt_str(d["endpoint"]),
                bucket=_str(d["bucket"]),
                data=_object_version(d),
                paired=None if d["paired"] is None else _object_version(d["paired"]),
                sidecars=None if side is None else tuple(_str(s) for s in side),
                operation=Operation(d["operation"]),
                strict=_bool(d["strict"]),
                links=None if links is None else tuple(_str(x) for x in links),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"not a work item ({_what(exc)})", obj=where) from None

    @classmethod
    def from_json(cls, line: str, where: str = "work item") -> WorkItem:
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise PlanError(f"not JSON ({exc})", obj=where) from None
        if not isinstance(doc, dict):
            raise PlanError("not a work item (not a JSON object)", obj=where)
        return cls.from_dict(doc, where)


def _version(v: ObjectVersion) -> dict[str, Any]:
    return {k: x for k, x in v.to_dict().items() if k != "delete_marker"}


def _object_version(d: dict[str, Any]) -> ObjectVersion:
    made = _dt.datetime.fromisoformat(_str(d["last_modified"]))
    size = d["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("size: not a byte count")
    return ObjectVersion(
        key=_str(d["key"]),
        version_id=_opt_str(d["version_id"]),
        size=size,
        last_modified=made,
        etag=_opt_str(d["etag"]),
        is_latest=_bool(d["is_latest"]),
        storage_class=_opt_str(d["storage_class"]),
    )


def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{x!r} is not text")
    return x


def _opt_str(x: Any) -> str | None:
    return None if x is None else _str(x)


def _bool(x: Any) -> bool:
    if not isinstance(x, bool):
        raise TypeError(f"{x!r} is not true or false")
    return x


def _what(exc: Exception) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


# --- the file -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    campaign: dict[str, Any]  # what the coordinator's merge records (id, sample, seed…)
    items: tuple[WorkItem, ...]
    sha256: str
    path: Path | None = None
    name: str = ""  # the file or s3:// object it was read from, for people


def sort_items(items: Iterable[WorkItem]) -> list[WorkItem]:
    return sorted(items, key=lambda i: (i.id, i.operation.value))


def _header(campaign: dict[str, Any], count: int) -> dict[str, Any]:
    return {"format": FORMAT, "campaign": campaign, "items": count}


def seal(campaign: dict[str, Any], lines: Sequence[str]) -> str:
    """The plan's digest: its header (without the digest) and every item line."""
    h = hashlib.sha256(canonical(_header(campaign, len(lines))).encode())
    for line in lines:
        h.update(b"\n")
        h.update(line.encode())
    return h.hexdigest()


def write_plan(path: Path, campaign: dict[str, Any], items: Iterable[WorkItem]) -> Plan:
    """Write the plan whole or not at all (an existing file is replaced)."""
    ordered = sort_items(items)
    ids = [i.id for i in ordered]
    if len(set(ids)) != len(ids):
        raise PlanError("a version is in the plan twice", obj=str(path))
    lines = [i.to_json() for i in ordered]
    digest = seal(campaign, lines)
    head = canonical({**_header(campaign, len(lines)), "sha256": digest})
    with AtomicWriter(path, overwrite=True, mode=0o644) as f:
        f.write(("\n".join([head, *lines]) + "\n").encode())
    return Plan(campaign, tuple(ordered), digest, path, str(path))


def read_plan(path: Path) -> Plan:
    """The plan at ``path``; PlanError (naming the file) when it is not one or its
    digest does not match what it holds. Read a line at a time: a plan of 100,000 items
    is 50 MB of text, which is not held (nor a copy of it split in lines) beside them."""
    try:
        with path.open(encoding="utf-8") as f:
            return _parse(f, str(path), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read it ({exc})", obj=str(path)) from None


def parse_plan(text: str, name: str, path: Path | None = None) -> Plan:
    """A plan's text (read from a file or an S3 object called ``name``), checked."""
    lines = text.split("\n")  # not splitlines(): a name may hold U+2028
    if lines and lines[-1] == "":
        lines.pop()
    return _parse(iter(lines), name, path)


def _parse(lines: Iterator[str], name: str, path: Path | None) -> Plan:
    """The header, then every item line hashed as it is read; the items are kept only
    when the digest matches (an edited plan is refused as such, even where an edit
    made a line unreadable)."""
    try:
        head = json.loads(next(lines, ""))
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise PlanError(f"not a shard plan (its first line is not a {FORMAT} header)", obj=name)
    campaign, digest, count = head.get("campaign"), head.get("sha256"), head.get("items")
    if not isinstance(campaign, dict) or not isinstance(digest, str):
        raise PlanError("its header has no campaign or no sha256", obj=name)
    if not isinstance(count, int):
        raise _not_sealed(name)
    h = hashlib.sha256(canonical(_header(campaign, count)).encode())
    items: list[WorkItem] = []
    unreadable: PlanError | None = None
    read = 0
    for n, raw in enumerate(lines, 2):
        read += 1
        line = raw.removesuffix("\n")
        h.update(b"\n")
        h.update(line.encode())
        if unreadable is None:
            try:
                items.append(WorkItem.from_json(line, f"{name} line {n}"))
            except PlanError as exc:
                unreadable = exc
    if h.hexdigest() != digest or count != read:
        raise _not_sealed(name)
    if unreadable is not None:
        raise unreadable
    return Plan(campaign, tuple(items), digest, path, name)


def _not_sealed(name: str) -> PlanError:
    return PlanError(
        "its SHA-256 does not match what it holds (edited, cut short or reordered "
        "since it was written): make the plan again",
        obj=name,
    )
