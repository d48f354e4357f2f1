"""One object version as a Source, and its resumable, self-checking stream."""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from typing import Any, Protocol

import botocore.exceptions as bex

from ...errors import SealcheckError, TransferCorrupted, TransientStorageError
from ...plumbing.progress import CancelToken
from ...records.identity import SourceIdentity
from ..source import MAX_PROBE
from .client import object_name
from .errors import map_client_error
from .retry import (
    MAX_RESUMES,
    RESUME_PROGRESS,
    SKIP_CHUNK,
    TRANSIENT,
    backoff,
    close_quietly,
    read_upto,
    status,
)

_RANGE_TOTAL = re.compile(r"/(\d+)$")
_SIMPLE_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
DEFAULT_CHUNK = 1 << 20


class Listed(Protocol):
    """What a listing knows of a version (listing.ObjectVersion)."""

    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def last_modified(self) -> _dt.datetime: ...


class S3Object:
    """One object version as a Source.

    ``version_id`` None means "the current version": HEAD picks it and the
    object is then pinned to it. ``"null"`` is a real version (written before
    versioning was enabled) and is addressed explicitly. ``listed``: what a listing
    said of that version (no HEAD is made then).
    """

    size: int
    etag: str | None
    version_id: str | None
    last_modified: _dt.datetime | None

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        cancel: CancelToken | None = None,
        listed: Listed | None = None,
    ) -> None:
        self._c = client
        self.bucket = bucket
        self.key = key
        self._cancel = cancel or CancelToken()
        self.retries = 0  # requests botocore retried (5xx, throttling, connection errors)
        self.name = object_name(bucket, key, version_id)
        if listed is not None:
            # A listing already said what HEAD would: size, ETag, LastModified. The
            # version is pinned by its id, and every GET still checks its answer's
            # ETag and length against these (and sends If-Match), so a version that
            # changed since the listing is caught at the first byte.
            self.size = listed.size
            self.etag = listed.etag
            self.version_id = version_id
            self.last_modified = listed.last_modified.replace(microsecond=0)
            return
        try:
            kw: dict[str, str] = {"Bucket": bucket, "Key": key}
            if version_id:
                kw["VersionId"] = version_id
            head = client.head_object(**kw)
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise map_client_error(exc, self.name) from None
        self._count_retries(head)
        self.size = int(head["ContentLength"])
        self.etag = head.get("ETag")
        # Pin to the exact version HEAD saw, even when the caller asked for "latest".
        self.version_id = version_id or head.get("VersionId")
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
        self._check_answer(result)
        return result

    def _check_answer(self, resp: dict[str, Any]) -> None:
        """The answer is the object this Source stands for: its ETag and its total
        length (``Content-Range: bytes a-b/TOTAL``, or the length of a whole body)."""
        etag = resp.get("ETag")
        total: int | None = None
        m = _RANGE_TOTAL.search(resp.get("ContentRange") or "")
        if m:
            total = int(m.group(1))
        elif status(resp) == 200 and resp.get("ContentLength") is not None:
            total = int(resp["ContentLength"])
        if (self.etag and etag and etag != self.etag) or (total is not None and total != self.size):
            close_quietly(resp["Body"])
            raise TransferCorrupted(
                f"the server sent ETag {etag} of {total} bytes where {self.etag} of "
                f"{self.size} bytes was expected: the object changed",
                obj=self.name,
            )

    def read_range(self, start: int, length: int) -> bytes:
        length = min(length, MAX_PROBE)
        if self.size == 0 or length <= 0:
            return b""
        if start < 0:
            start = max(0, self.size + start)
        end = min(self.size, start + length) - 1
        if end < start:
            return b""
        last: Exception | None = None
        for attempt in range(MAX_RESUMES):
            try:
                data = self._ranged(start, end)
                if data is not None:
                    return data
            except TRANSIENT as exc:
                last = exc
            except SealcheckError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise map_client_error(exc, self.name) from None
            self._backoff(attempt)
        raise gave_up(last, self.name, "ranged reads keep failing")

    def _ranged(self, start: int, end: int) -> bytes | None:
        """Bytes start..end (inclusive), or None when the body came back short."""
        resp = self._get(f"bytes={start}-{end}")
        body = resp["Body"]
        try:
            if status(resp) == 200:
                # Range ignored: the whole object is coming. Read only what we
                # need and drop the connection instead of downloading it all.
                data = read_upto(body, end + 1)[start:]
            else:
                crange = resp.get("ContentRange") or ""
                if not crange.startswith(f"bytes {start}-"):
                    raise TransferCorrupted(
                        f"asked for bytes {start}-{end}, the server sent {crange!r}", obj=self.name
                    )
                data = read_upto(body, end - start + 1)
        finally:
            close_quietly(body)
        return data if len(data) == end - start + 1 else None

    def _backoff(self, attempt: int) -> None:
        backoff(attempt, self._cancel)

    def open(self) -> S3Stream:
        return S3Stream(self)


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
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001
            raise map_client_error(exc, self._o.name) from None
        self._skip = 0
        left = self._o.size - self._pos
        if self._pos:
            crange = resp.get("ContentRange") or ""
            if status(resp) == 200 or not crange:
                self._skip = self._pos  # Range ignored: drop the prefix we already have
                left = self._o.size
            elif not crange.startswith(f"bytes {self._pos}-"):
                close_quietly(resp["Body"])
                raise TransferCorrupted(
                    f"the server answered a resume at byte {self._pos} with {crange!r}",
                    obj=self._o.name,
                )
        announced = resp.get("ContentLength")
        if announced is not None and int(announced) != left:
            # Pinned by VersionId/If-Match, the length cannot change: a proxy or
            # the store is sending something else.
            close_quietly(resp["Body"])
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
            except TRANSIENT as exc:
                self._dropped(exc)
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

    def _dropped(self, exc: Exception) -> None:
        """The connection broke: back off, then the next read resumes at ``_pos``."""
        self._close_body()
        if self._pos - self._pos_at_drop >= RESUME_PROGRESS:
            self._drops = 0
        self._pos_at_drop = self._pos
        if self._drops >= MAX_RESUMES:
            raise gave_up(
                exc,
                self._o.name,
                f"the connection dropped {self._drops + 1} times in a row; stopped at byte "
                f"{self._pos} of {self._o.size}",
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
            close_quietly(self._body)
            self._body = None


def gave_up(last: Exception | None, obj: str, what: str) -> TransientStorageError:
    """The error after the last retry: an endpoint that never answered is said as such
    (EndpointUnreachable, a setup problem with its own advice), as the HEAD that a
    listed version no longer needs would have said it; anything else kept failing."""
    if isinstance(last, bex.EndpointConnectionError | bex.ConnectTimeoutError):
        err = map_client_error(last, obj)
        assert isinstance(err, TransientStorageError)
        return err
    return TransientStorageError(what, obj=obj)
