"""S3 writes for a rotation: create-only, proved honoured, read back by version id.

Nothing is ever deleted or replaced: every PUT carries ``If-None-Match: *``, so a
name that exists answers 412 instead of being overwritten (moto >= 5.1.5 and
SeaweedFS 4.48 honour it). A store that silently ignores the condition would turn
that promise into an overwrite, so it is probed first on a scratch name under the
prefix: create-only twice must give 200, then 412. The lock is a sequence of
create-only objects as well (``lock.00000001``, ``lock.00000002``, …): the newest
says who holds the prefix until when, or that it was released.

The probe's object and the lock generations a run wrote are deleted again so they do
not pile up, and only those (``delete_own``): on a versioned bucket by the version id
the PUT returned, so nothing else is touched and no delete marker is left.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..errors import SealcheckError, StorageError, UsageError
from ..storage.listing import Versioning, bucket_versioning
from ..storage.rewrap import CONTROL
from ..storage.s3.errors import map_client_error

log = logging.getLogger("sealcheck.rotation")
LOCK_DIGITS = 8
META_PREFIX = "sealcheck-"


class ConditionsIgnored(StorageError):
    """The store ignores create-only writes (PutObject If-None-Match): a rotation there
    could overwrite keys, so it is refused."""


class VersioningNotEnabled(UsageError):
    """Versioning is not Enabled on this bucket: without versions a mistake cannot be
    undone, so the rotation is refused (--allow-unversioned to rotate anyway; every
    write stays create-only)."""


class LockHeld(UsageError):
    """Another rotation holds this prefix."""


class AlreadyExists(StorageError):
    """An object already exists under this name (create-only write refused with 412)."""


@dataclass(frozen=True)
class Stored:
    body: bytes
    version_id: str | None
    metadata: dict[str, str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def _status(exc: Exception) -> int | None:
    resp = getattr(exc, "response", None) or {}
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(resp.get("Error", {}).get("Code", ""))
    if code in ("PreconditionFailed", "412"):
        return 412
    return int(status) if status is not None else None


@dataclass(frozen=True)
class Written:
    """An object this process created (create-only): exactly what it may delete again."""

    key: str
    version_id: str | None
    etag: str | None


def put_create_only(
    client: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None
) -> str | None:
    """PUT ``body`` only if ``key`` does not exist; its VersionId. AlreadyExists on 412
    (and on 409, which some stores answer to a concurrent conditional write)."""
    return _create(client, bucket, key, body, metadata).version_id


def _create(
    client: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None
) -> Written:
    name = f"s3://{bucket}/{key}"
    try:
        r = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            IfNoneMatch="*",
            Metadata={META_PREFIX + k: v for k, v in (metadata or {}).items()},
        )
    except Exception as exc:  # noqa: BLE001 - typed below
        if _status(exc) in (409, 412):
            raise AlreadyExists(obj=name) from None
        raise map_client_error(exc, name) from None
    vid, etag = r.get("VersionId"), r.get("ETag")
    return Written(key, str(vid) if vid and vid != "null" else None, str(etag) if etag else None)


def delete_own(client: Any, bucket: str, obj: Written) -> bool:
    """Delete a scratch object this process created, and nothing else: on a versioned
    bucket exactly the version it wrote (by its version id: no delete marker, no other
    version touched); unversioned, only while the object there still has the ETag it was
    written with. Best effort: False (the object left as it is) when the store refuses."""
    try:
        if obj.version_id is not None:
            client.delete_object(Bucket=bucket, Key=obj.key, VersionId=obj.version_id)
            return True
        head = client.head_object(Bucket=bucket, Key=obj.key)
        if obj.etag is None or head.get("ETag") != obj.etag:
            return False
        client.delete_object(Bucket=bucket, Key=obj.key)
    except Exception as exc:  # noqa: BLE001 - clean-up never fails a rotation
        log.debug("left s3://%s/%s (%s)", bucket, obj.key, type(exc).__name__)
        return False
    return True


def get_version(client: Any, bucket: str, key: str, version_id: str | None) -> Stored:
    """One version, whole (wrapped keys are small), with its metadata."""
    kw: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id:
        kw["VersionId"] = version_id
    try:
        r = client.get_object(**kw)
        body = r["Body"].read()
    except Exception as exc:  # noqa: BLE001 - typed below
        raise map_client_error(exc, f"s3://{bucket}/{key}") from None
    meta = {
        k.removeprefix(META_PREFIX): str(v)
        for k, v in (r.get("Metadata") or {}).items()
        if k.startswith(META_PREFIX)
    }
    vid = r.get("VersionId")
    return Stored(body, str(vid) if vid and vid != "null" else None, meta)


def check_versioning(client: Any, bucket: str, *, allow_unversioned: bool) -> Versioning:
    state = bucket_versioning(client, bucket)
    if state is not Versioning.ENABLED and not allow_unversioned:
        raise VersioningNotEnabled(f"(it is {state.value})", obj=f"s3://{bucket}")
    return state


def control_prefix(prefix: str) -> str:
    return f"{prefix}{CONTROL}"


def probe_conditions(client: Any, bucket: str, prefix: str) -> str:
    """Create-only twice on a fresh scratch name: 200 then 412, or refuse. The scratch
    object is deleted again (delete_own: only the version this probe wrote)."""
    key = f"{control_prefix(prefix)}probe/{secrets.token_hex(8)}"
    first = _create(client, bucket, key, b"create-only probe\n", {"purpose": "probe"})
    try:
        put_create_only(client, bucket, key, b"create-only probe, second write\n")
    except AlreadyExists:
        delete_own(client, bucket, first)
        return key
    # Ignored: both writes stay, as evidence of what the store did.
    raise ConditionsIgnored(
        f"a second create-only PUT of {key} succeeded instead of answering 412 Precondition Failed",
        obj=f"s3://{bucket}/{prefix}",
    )


# --- the lock ------------------------------------------------------------------------


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass
class Lock:
    """The prefix's rotation lock: create-only generations, each with an expiry."""

    client: Any
    bucket: str
    prefix: str
    owner: str
    ttl: _dt.timedelta
    generation: int = 0
    expires: _dt.datetime | None = None
    # The generations this process wrote, oldest first (release deletes them again).
    written: list[Written] = field(default_factory=list)

    def _key(self, gen: int) -> str:
        return f"{control_prefix(self.prefix)}lock.{gen:0{LOCK_DIGITS}d}"

    def _newest(self) -> tuple[int, dict[str, str]]:
        p = f"{control_prefix(self.prefix)}lock."
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=p
            )
            gens = [
                int(tail)
                for page in pages
                for o in page.get("Contents", [])
                if (tail := str(o["Key"])[len(p) :]).isdigit()
            ]
        except SealcheckError:
            raise
        except Exception as exc:  # noqa: BLE001 - typed below
            raise map_client_error(exc, f"s3://{self.bucket}/{p}") from None
        if not gens:
            return 0, {}
        gen = max(gens)
        return gen, get_version(self.client, self.bucket, self._key(gen), None).metadata

    def acquire(self, *, take_over: bool = False) -> None:
        """Hold the prefix; LockHeld while another owner's lock has not expired, unless
        ``take_over`` (that rotation is known dead: killed, its journal lost)."""
        gen, meta = self._newest()
        if meta.get("state") == "held" and meta.get("owner") != self.owner and not take_over:
            until = _dt.datetime.fromisoformat(meta.get("expires", "1970-01-01T00:00:00+00:00"))
            if until > _now():
                raise LockHeld(
                    f"rotation {meta.get('owner')} holds it until {until.isoformat()} "
                    f"({self._key(gen)}); wait for it, or for the lock to expire (or, if that "
                    "rotation was killed and its journal lost, pass --take-over-lock)",
                    obj=f"s3://{self.bucket}/{self.prefix}",
                )
        self._write(gen + 1, "held")

    def renew_if_due(self) -> None:
        if self.expires is not None and self.expires - _now() < self.ttl / 2:
            self._write(self.generation + 1, "held")

    def release(self) -> None:
        """Write the ``released`` generation, then delete the generations this process
        wrote (delete_own), oldest first so the newest a reader sees is still ours. The
        released one stays when an earlier run's generations lie below ours: without it
        the newest would be theirs, perhaps a killed run's lock not yet expired."""
        if not self.generation:
            return
        self._write(self.generation + 1, "released")
        first = self.written[0].key == self._key(1)
        for obj in self.written if first else self.written[:-1]:
            delete_own(self.client, self.bucket, obj)
        self.written.clear()

    def _write(self, gen: int, state: str) -> None:
        expires = _now() + self.ttl
        try:
            obj = _create(
                self.client,
                self.bucket,
                self._key(gen),
                f"sealcheck rotation lock: {state} by {self.owner}\n".encode(),
                {"owner": self.owner, "state": state, "expires": expires.isoformat()},
            )
        except AlreadyExists:
            # Someone wrote this generation between our look and our write.
            raise LockHeld(
                "another rotation took the lock at the same moment",
                obj=f"s3://{self.bucket}/{self.prefix}",
            ) from None
        self.written.append(obj)
        self.generation, self.expires = gen, expires
