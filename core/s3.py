"""S3 access: one pinned, resumable, self-checking stream per object version.

* Every read is pinned to a VersionId (taken from HEAD when the caller gave
  none), so a new upload during the read can never mix two versions.
* A dropped connection resumes with ``Range: bytes=N-`` from the last byte
  received; a server that ignores Range (200 instead of 206) is detected and
  the already-received prefix is skipped, never appended twice.
* boto3's response checksums are skipped by botocore for third-party stores
  and composite checksums (reliability.md §1.10), so the stream computes its
  own MD5 and compares it with a single-part ETag at the end.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from .errors import (
    AccessDenied,
    ObjectNotFound,
    StorageError,
    TransferCorrupted,
    TransientStorageError,
    UsageError,
)
from .progress import CancelToken
from .sources import MAX_PROBE, SourceIdentity

_SIMPLE_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
MAX_RESUMES = 6


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    connect_timeout: float = 10
    read_timeout: float = 60


def make_client(settings: S3Settings) -> Any:
    """An S3 client from the standard credential chain, fit for third-party stores."""
    try:
        session = boto3.session.Session(profile_name=settings.profile)
    except bex.ProfileNotFound:
        raise UsageError(f"AWS profile {settings.profile!r} is not configured") from None
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # boto3 >= 1.36 sends CRC headers by default; many S3-compatible
        # stores reject them. Our own digest is the real check.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region or session.region_name or "us-east-1",
        config=config,
    )


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_uri(uri: str) -> S3Uri:
    if not uri.startswith("s3://"):
        raise UsageError(f"not an s3:// URI: {uri}")
    rest = uri[5:]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {uri}")
    return S3Uri(bucket, key)


def map_client_error(exc: Exception, obj: str) -> StorageError:
    """Classify boto errors: permanent ones are not retried (restic's rule)."""
    if isinstance(exc, bex.NoCredentialsError):
        return AccessDenied(
            "no AWS credentials found (environment, profile or instance role)", obj=obj
        )
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError):
        return TransientStorageError(f"cannot reach the S3 endpoint ({exc})", obj=obj)
    if isinstance(exc, bex.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404") or status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object or version"
            return ObjectNotFound(f"no such {what}", obj=obj)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch") or (
            status == 403
        ):
            return AccessDenied(f"({code})", obj=obj)
        if code in ("PreconditionFailed", "412") or status == 412:
            return TransferCorrupted("the object changed during the download", obj=obj)
        if code == "InvalidRange":
            return TransferCorrupted("the object is shorter than announced", obj=obj)
        if status and status >= 500:
            return TransientStorageError(f"the server keeps failing ({code})", obj=obj)
        return StorageError(f"S3 error {code}", obj=obj)
    return TransientStorageError(f"transfer failed ({type(exc).__name__}: {exc})", obj=obj)


_TRANSIENT = (
    bex.ResponseStreamingError,
    bex.ReadTimeoutError,
    bex.ConnectionClosedError,
    bex.EndpointConnectionError,
    bex.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)


class S3Object:
    """One object version as a Source."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> None:
        self._c = client
        self.bucket = bucket
        self.key = key
        self._cancel = cancel or CancelToken()
        base = f"s3://{bucket}/{key}"
        self.name = base + (f"?versionId={quote(version_id)}" if version_id else "")
        try:
            kw: dict[str, str] = {"Bucket": bucket, "Key": key}
            if version_id:
                kw["VersionId"] = version_id
            head = client.head_object(**kw)
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise map_client_error(exc, self.name) from None
        self.size = int(head["ContentLength"])
        self.etag: str | None = head.get("ETag")
        # Pin to the exact version HEAD saw, even when the caller asked for "latest".
        self.version_id: str | None = version_id or head.get("VersionId")
        if self.version_id == "null":
            self.version_id = None  # unversioned bucket: rely on If-Match instead
        self.last_modified = head.get("LastModified")
        if self.version_id and not version_id:
            self.name = base + f"?versionId={quote(self.version_id)}"

    def identity(self) -> SourceIdentity:
        lm = self.last_modified.isoformat() if self.last_modified else None
        return SourceIdentity(self.name, self.size, self.version_id, self.etag, lm)

    def _get(self, rng: str | None) -> dict[str, Any]:
        kw: dict[str, str] = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            kw["VersionId"] = self.version_id
        if self.etag:
            kw["IfMatch"] = self.etag
        if rng:
            kw["Range"] = rng
        result: dict[str, Any] = self._c.get_object(**kw)
        return result

    def read_range(self, start: int, length: int) -> bytes:
        length = min(length, MAX_PROBE)
        if self.size == 0 or length <= 0:
            return b""
        if start < 0:
            start = max(0, self.size + start)
        end = min(self.size, start + length) - 1
        if end < start:
            return b""
        for attempt in range(MAX_RESUMES):
            try:
                resp = self._get(f"bytes={start}-{end}")
                data: bytes = resp["Body"].read()
                if resp.get("ResponseMetadata", {}).get("HTTPStatusCode") == 200:
                    # Range ignored: the whole object came back.
                    data = data[start : end + 1]
                if len(data) == end - start + 1:
                    return data
            except _TRANSIENT:
                pass
            except Exception as exc:  # noqa: BLE001
                raise map_client_error(exc, self.name) from None
            self._backoff(attempt)
        raise TransientStorageError("ranged reads keep failing", obj=self.name)

    def _backoff(self, attempt: int) -> None:
        deadline = time.monotonic() + min(0.2 * 2**attempt, 5.0)
        while time.monotonic() < deadline:
            self._cancel.check()
            time.sleep(0.05)

    def open(self) -> S3Stream:
        return S3Stream(self)


class S3Stream:
    """Sequential reader of one object version with resume and an MD5 check."""

    def __init__(self, obj: S3Object) -> None:
        self._o = obj
        self._pos = 0
        self._body: Any = None
        self._skip = 0
        self._resumes = 0
        m = _SIMPLE_ETAG.match(obj.etag or "")
        # Single-part ETags are the MD5 of the object: a real end-to-end check.
        self._want_md5 = m.group(1) if m else None
        self._md5 = hashlib.md5(usedforsecurity=False) if self._want_md5 else None
        self.resumes = 0
        self.digest_checked = False

    def _open_body(self) -> None:
        rng = f"bytes={self._pos}-" if self._pos else None
        try:
            resp = self._o._get(rng)
        except _TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001
            raise map_client_error(exc, self._o.name) from None
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        self._skip = 0
        if self._pos:
            crange = resp.get("ContentRange") or ""
            if status == 200 or not crange:
                self._skip = self._pos  # Range ignored: drop the prefix we already have
            elif not crange.startswith(f"bytes {self._pos}-"):
                raise TransferCorrupted(
                    f"the server answered a resume at byte {self._pos} with {crange!r}",
                    obj=self._o.name,
                )
        self._body = resp["Body"]

    def read(self, n: int = -1, /) -> bytes:
        want = n if n > 0 else 1 << 20
        while True:
            self._o._cancel.check()
            if self._pos >= self._o.size:
                return self._finish()
            try:
                if self._body is None:
                    self._open_body()
                data = self._body.read(want + self._skip if self._skip else want)
                if self._skip:
                    drop = min(self._skip, len(data))
                    data = data[drop:]
                    self._skip -= drop
                    if not data and self._skip:
                        continue
                if not data:
                    raise bex.IncompleteReadError(actual_bytes=self._pos, expected_bytes=self._o.size)
            except _TRANSIENT:
                self._close_body()
                if self._resumes >= MAX_RESUMES:
                    raise TransientStorageError(
                        f"the connection dropped {self._resumes + 1} times; stopped at byte "
                        f"{self._pos} of {self._o.size}",
                        obj=self._o.name,
                    ) from None
                self._o._backoff(self._resumes)
                self._resumes += 1
                self.resumes = self._resumes
                continue
            if self._pos + len(data) > self._o.size:
                raise TransferCorrupted(
                    f"the server sent more than the {self._o.size} bytes announced",
                    obj=self._o.name,
                )
            self._pos += len(data)
            if self._md5 is not None:
                self._md5.update(data)
            return data

    def _finish(self) -> bytes:
        self._close_body()
        if self._md5 is not None and not self.digest_checked:
            if self._md5.hexdigest() != self._want_md5:
                raise TransferCorrupted(
                    "the MD5 of the bytes received does not match the object's ETag",
                    obj=self._o.name,
                )
            self.digest_checked = True
        return b""

    def _close_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass
            self._body = None


def version_param(name: str) -> tuple[str, str | None]:
    """Split ``s3://b/k?versionId=V`` into the URI and the version."""
    if "?versionId=" in name:
        base, _, v = name.partition("?versionId=")
        return base, unquote(v)
    return name, None
