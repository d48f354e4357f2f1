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

import botocore.exceptions as bex

from ..errors import (
    AccessDenied,
    ObjectNotFound,
    SealcheckError,
    StorageError,
    TransferCorrupted,
    TransientStorageError,
    UsageError,
)
from ..plumbing.progress import CancelToken
from ..records.identity import SourceIdentity
from .source import MAX_PROBE

_SIMPLE_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
# Drops in a row, without real progress in between, before a stream gives up.
MAX_RESUMES = 6
# A drop after at least this many new bytes starts the count again: a long
# download over a flaky link must not fail on its seventh drop in ten hours.
RESUME_PROGRESS = 1 << 20
# A server that ignores Range resends the prefix we already have; it is
# dropped in bounded reads so memory does not grow with the resume offset.
SKIP_CHUNK = 1 << 20
DEFAULT_CHUNK = 1 << 20
DELETED = (
    "it was deleted (its version is a delete marker); an older version may still "
    "exist: see `sealcheck list` and --version-id"
)
_EXPIRED = ("ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken")
_DENIED = (
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
)
_WRONG_REGION = (
    "PermanentRedirect",
    "301",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
)


class BucketNotFound(ObjectNotFound):
    """Bucket not found: check the bucket name."""


class EndpointUnreachable(TransientStorageError):
    """Cannot reach the endpoint."""


class WrongRegion(StorageError):
    """Wrong region: the bucket is in another region."""


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    connect_timeout: float = 10
    read_timeout: float = 60


def make_client(settings: S3Settings) -> Any:
    """An S3 client from the standard credential chain, fit for third-party stores."""
    # boto3 and botocore's config cost ~0.2 s to import: only S3 work pays it,
    # not a verify of a local file.
    import boto3
    from botocore.config import Config

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


def map_client_error(exc: Exception, obj: str) -> SealcheckError:
    """Classify boto errors: permanent ones are not retried (restic's rule)."""
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return AccessDenied(
            "no AWS credentials found (environment, profile or instance role)", obj=obj
        )
    if isinstance(exc, bex.ParamValidationError):
        # botocore refused the request before sending it: a bad bucket name or key.
        return UsageError(" ".join(str(exc).split()), obj=obj)
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError):
        return EndpointUnreachable(_unreachable(exc), obj=obj)
    if isinstance(exc, bex.ClientError):
        return _map_response_error(exc.response, obj)
    return TransientStorageError(f"transfer failed ({type(exc).__name__}: {exc})", obj=obj)


def _unreachable(exc: Exception) -> str:
    """Which endpoint did not answer, without the request's path and query."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    parts = url.split("/", 3)
    where = "/".join(parts[:3]) if url.startswith(("http://", "https://")) else url
    why = "no answer in time" if isinstance(exc, bex.ConnectTimeoutError) else "nothing answers"
    return (
        f"{where or 'the S3 endpoint'} ({why}): check the endpoint URL, the network, and that "
        "the store is running"
    )


def _wrong_region(code: str, headers: Any) -> str:
    """Which region to use: S3 names it in x-amz-bucket-region."""
    region = headers.get("x-amz-bucket-region")
    where = (
        f"It is in {region}: set the region to {region}"
        if region
        else ("Set the region to the bucket's")
    )
    return f"{where} (--region, or Region in the source) ({code})"


def _map_response_error(response: Any, obj: str) -> SealcheckError:
    code = str(response.get("Error", {}).get("Code", ""))
    meta = response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    headers = meta.get("HTTPHeaders", {})
    if headers.get("x-amz-delete-marker") == "true" or code in ("MethodNotAllowed", "405"):
        # HEAD/GET of a deleted object (404) or of a delete marker's own version (405).
        return ObjectNotFound(DELETED, obj=obj)
    if code == "NoSuchBucket":
        return BucketNotFound(obj=obj)
    if code in ("NoSuchKey", "NoSuchVersion", "404") or status == 404:
        return ObjectNotFound("no such object or version", obj=obj)
    if code in _EXPIRED:
        return AccessDenied(f"the credentials have expired ({code}); renew them", obj=obj)
    if code == "RequestTimeTooSkewed":
        return StorageError("this computer's clock is wrong; S3 refuses the request", obj=obj)
    if code in _WRONG_REGION or status == 301:
        return WrongRegion(_wrong_region(code, headers), obj=obj)
    if code in _DENIED or status == 403:
        return AccessDenied(f"({code})", obj=obj)
    if code in ("PreconditionFailed", "412") or status == 412:
        return TransferCorrupted("the object changed during the download", obj=obj)
    if code == "InvalidRange":
        return TransferCorrupted("the object is shorter than announced", obj=obj)
    if status and status >= 500:
        return TransientStorageError(f"the server keeps failing ({code})", obj=obj)
    return StorageError(f"S3 error {code}", obj=obj)


_TRANSIENT = (
    bex.ResponseStreamingError,
    bex.ReadTimeoutError,
    bex.ConnectionClosedError,
    bex.EndpointConnectionError,
    bex.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)


def object_name(bucket: str, key: str, version_id: str | None = None) -> str:
    """How a report and an error name one object version."""
    return f"s3://{bucket}/{key}" + (f"?versionId={quote(version_id)}" if version_id else "")


class S3Object:
    """One object version as a Source.

    ``version_id`` None means "the current version": HEAD picks it and the
    object is then pinned to it. ``"null"`` is a real version (written before
    versioning was enabled) and is addressed explicitly.
    """

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
        self.retries = 0  # requests botocore retried (5xx, throttling, connection errors)
        self.name = object_name(bucket, key, version_id)
        try:
            kw: dict[str, str] = {"Bucket": bucket, "Key": key}
            if version_id:
                kw["VersionId"] = version_id
            head = client.head_object(**kw)
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise map_client_error(exc, self.name) from None
        self._count_retries(head)
        self.size = int(head["ContentLength"])
        self.etag: str | None = head.get("ETag")
        # Pin to the exact version HEAD saw, even when the caller asked for "latest".
        self.version_id: str | None = version_id or head.get("VersionId")
        if self.version_id == "null" and not version_id:
            # An unversioned bucket: some stores reject ?versionId=null there, and
            # If-Match pins the bytes just as well.
            self.version_id = None
        self.last_modified = head.get("LastModified")
        if self.version_id and not version_id:
            self.name = object_name(bucket, key, self.version_id)

    def identity(self) -> SourceIdentity:
        lm = self.last_modified.isoformat() if self.last_modified else None
        return SourceIdentity(self.name, self.size, self.version_id, self.etag, lm)

    def _count_retries(self, resp: dict[str, Any]) -> None:
        self.retries += int(resp.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)

    def _get(self, rng: str | None) -> dict[str, Any]:
        kw: dict[str, str] = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            kw["VersionId"] = self.version_id
        if self.etag:
            kw["IfMatch"] = self.etag
        if rng:
            kw["Range"] = rng
        result: dict[str, Any] = self._c.get_object(**kw)
        self._count_retries(result)
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
                data = self._ranged(start, end)
                if data is not None:
                    return data
            except _TRANSIENT:
                pass
            except SealcheckError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise map_client_error(exc, self.name) from None
            self._backoff(attempt)
        raise TransientStorageError("ranged reads keep failing", obj=self.name)

    def _ranged(self, start: int, end: int) -> bytes | None:
        """Bytes start..end (inclusive), or None when the body came back short."""
        resp = self._get(f"bytes={start}-{end}")
        body = resp["Body"]
        try:
            if _status(resp) == 200:
                # Range ignored: the whole object is coming. Read only what we
                # need and drop the connection instead of downloading it all.
                data = _read_upto(body, end + 1)[start:]
            else:
                crange = resp.get("ContentRange") or ""
                if not crange.startswith(f"bytes {start}-"):
                    raise TransferCorrupted(
                        f"asked for bytes {start}-{end}, the server sent {crange!r}", obj=self.name
                    )
                data = _read_upto(body, end - start + 1)
        finally:
            _close_quietly(body)
        return data if len(data) == end - start + 1 else None

    def _backoff(self, attempt: int) -> None:
        deadline = time.monotonic() + min(0.2 * 2**attempt, 5.0)
        while time.monotonic() < deadline:
            self._cancel.check()
            time.sleep(0.05)

    def open(self) -> S3Stream:
        return S3Stream(self)


def _status(resp: dict[str, Any]) -> int | None:
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _read_upto(body: Any, n: int) -> bytes:
    """Up to n bytes, looping over short reads; shorter only at EOF."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        b: bytes = body.read(min(left, SKIP_CHUNK))
        if not b:
            break
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def _close_quietly(body: Any) -> None:
    try:
        body.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken connection
        pass


class S3Stream:
    """Sequential reader of one object version with resume and an MD5 check."""

    def __init__(self, obj: S3Object) -> None:
        self._o = obj
        self._pos = 0
        self._body: Any = None
        self._skip = 0
        self._drops = 0  # drops in a row without RESUME_PROGRESS bytes in between
        self._pos_at_drop = 0
        m = _SIMPLE_ETAG.match(obj.etag or "")
        # Single-part ETags are the MD5 of the object: a real end-to-end check.
        self._want_md5 = m.group(1) if m else None
        self._md5 = hashlib.md5(usedforsecurity=False) if self._want_md5 else None
        self.resumes = 0
        self.digest_checked = False

    @property
    def retries(self) -> int:
        """Requests for this object that botocore retried (not counting resumes)."""
        return self._o.retries

    def _open_body(self) -> None:
        rng = f"bytes={self._pos}-" if self._pos else None
        try:
            resp = self._o._get(rng)
        except _TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001
            raise map_client_error(exc, self._o.name) from None
        self._skip = 0
        left = self._o.size - self._pos
        if self._pos:
            crange = resp.get("ContentRange") or ""
            if _status(resp) == 200 or not crange:
                self._skip = self._pos  # Range ignored: drop the prefix we already have
                left = self._o.size
            elif not crange.startswith(f"bytes {self._pos}-"):
                _close_quietly(resp["Body"])
                raise TransferCorrupted(
                    f"the server answered a resume at byte {self._pos} with {crange!r}",
                    obj=self._o.name,
                )
        announced = resp.get("ContentLength")
        if announced is not None and int(announced) != left:
            # Pinned by VersionId/If-Match, the length cannot change: a proxy or
            # the store is sending something else.
            _close_quietly(resp["Body"])
            raise TransferCorrupted(
                f"the server announced {announced} bytes where {left} were expected",
                obj=self._o.name,
            )
        self._body = resp["Body"]

    def read(self, n: int = -1, /) -> bytes:
        if n == 0:
            return b""
        want = n if n > 0 else DEFAULT_CHUNK
        while True:
            self._o._cancel.check()
            if self._pos >= self._o.size:
                return self._finish()
            try:
                data = self._read_body(want)
            except _TRANSIENT:
                self._dropped()
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

    def _read_body(self, want: int) -> bytes:
        if self._body is None:
            self._open_body()
        while self._skip:
            dropped = self._body.read(min(self._skip, SKIP_CHUNK))
            if not dropped:
                raise bex.IncompleteReadError(actual_bytes=0, expected_bytes=self._skip)
            self._skip -= len(dropped)
        data: bytes = self._body.read(min(want, self._o.size - self._pos))
        if not data:
            raise bex.IncompleteReadError(actual_bytes=self._pos, expected_bytes=self._o.size)
        return data

    def _dropped(self) -> None:
        """The connection broke: back off, then the next read resumes at ``_pos``."""
        self._close_body()
        if self._pos - self._pos_at_drop >= RESUME_PROGRESS:
            self._drops = 0
        self._pos_at_drop = self._pos
        if self._drops >= MAX_RESUMES:
            raise TransientStorageError(
                f"the connection dropped {self._drops + 1} times in a row; stopped at byte "
                f"{self._pos} of {self._o.size}",
                obj=self._o.name,
            )
        self._o._backoff(self._drops)
        self._drops += 1
        self.resumes += 1

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
            _close_quietly(self._body)
            self._body = None


def version_param(name: str) -> tuple[str, str | None]:
    """Split ``s3://b/k?versionId=V`` into the URI and the version."""
    if "?versionId=" in name:
        base, _, v = name.partition("?versionId=")
        return base, unquote(v)
    return name, None
