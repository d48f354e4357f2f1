"""A new object made of a small new header and the unchanged rest of an original version.

For an envelope whose recipients sit inside the object (gpg, CMS: envelope.py), the
rotated object is ``prefix + original[copy_from:]``. The encrypted body never passes
through this machine when the object is large: a multipart upload whose first part is
the prefix plus the first ``FIRST_PART`` bytes of the body (S3 wants every part but the
last to be at least 5 MiB) and whose other parts are ``UploadPartCopy`` ranges of the
original, pinned by its version id. Small objects are read and written whole with one
create-only PUT.

The completion is create-only (``CompleteMultipartUpload`` with ``If-None-Match: *``,
honoured by AWS and moto); a store that ignores it is found by a probe (two uploads
completed under one scratch name: the second must answer 412) and then gets a name that
cannot exist yet instead (``LINK.<random>``, envelope.py's ``fresh``). An upload that
does not complete is aborted, so no part lingers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import StorageError
from ..storage.s3.errors import map_client_error
from .store import META_PREFIX, AlreadyExists, _status, control_prefix, put_create_only

MIB = 1024 * 1024
FIRST_PART = 5 * MIB  # S3's minimum for every part but the last
WHOLE_MAX = FIRST_PART  # a body up to this size: one GET, one PUT (else a copy part)
COPY_PART = 1024 * MIB  # an UploadPartCopy range (S3 allows up to 5 GiB)


@dataclass(frozen=True)
class Source:
    """The original version the body is copied from."""

    bucket: str
    key: str
    version: str | None
    size: int


@dataclass(frozen=True)
class Written:
    version_id: str | None
    parts: int  # 0: a single PUT
    copied: int  # body bytes copied inside the store (UploadPartCopy)


def read_range(client: Any, src: Source, start: int, end: int) -> bytes:
    """Bytes ``start``..``end - 1`` of the source version."""
    if end <= start:
        return b""
    kw: dict[str, str] = {"Bucket": src.bucket, "Key": src.key, "Range": f"bytes={start}-{end - 1}"}
    if src.version:
        kw["VersionId"] = src.version
    try:
        data: bytes = client.get_object(**kw)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - typed below
        raise map_client_error(exc, f"s3://{src.bucket}/{src.key}") from None
    if len(data) != end - start:
        raise StorageError(
            f"asked for bytes {start}-{end - 1}, got {len(data)} bytes",
            obj=f"s3://{src.bucket}/{src.key}",
        )
    return data


def read_head(client: Any, src: Source, n: int) -> tuple[bytes, int]:
    """The first ``n`` bytes of a version and its whole size (one ranged GET)."""
    kw: dict[str, str] = {"Bucket": src.bucket, "Key": src.key, "Range": f"bytes=0-{n - 1}"}
    if src.version:
        kw["VersionId"] = src.version
    try:
        r = client.get_object(**kw)
        data: bytes = r["Body"].read()
    except Exception as exc:  # noqa: BLE001 - typed below
        raise map_client_error(exc, f"s3://{src.bucket}/{src.key}") from None
    total = str(r.get("ContentRange") or "").rpartition("/")[2]
    return data, int(total) if total.isdigit() else len(data)


def compose(
    client: Any,
    src: Source,
    prefix: bytes,
    copy_from: int,
    dest: str,
    metadata: dict[str, str],
    crash: Callable[[str], None] = lambda _point: None,
) -> Written:
    """Write ``prefix + src[copy_from:]`` create-only as ``dest`` in ``src.bucket``.

    ``crash``: the kill-point hook (journal.crash_hook), reached as ``parts`` once every
    part is in and the upload not yet completed. A process killed there leaves that
    upload incomplete (nothing is visible under ``dest``; the store's lifecycle rule for
    incomplete uploads, or ``aws s3api abort-multipart-upload``, removes its parts); the
    resumed run starts a new one."""
    rest = src.size - copy_from
    if rest <= WHOLE_MAX:
        body = prefix + read_range(client, src, copy_from, src.size)
        return Written(put_create_only(client, src.bucket, dest, body, metadata), 0, 0)
    first_end = copy_from + FIRST_PART
    first = prefix + read_range(client, src, copy_from, first_end)
    meta = {META_PREFIX + k: v for k, v in metadata.items()}
    name = f"s3://{src.bucket}/{dest}"
    try:
        upload = client.create_multipart_upload(Bucket=src.bucket, Key=dest, Metadata=meta)[
            "UploadId"
        ]
    except Exception as exc:  # noqa: BLE001 - typed below
        raise map_client_error(exc, name) from None
    try:
        parts = [_part(client, src.bucket, dest, upload, 1, first)]
        copy_src: dict[str, str] = {"Bucket": src.bucket, "Key": src.key}
        if src.version:
            copy_src["VersionId"] = src.version
        at = first_end
        while at < src.size:
            end = min(src.size, at + COPY_PART)
            r = client.upload_part_copy(
                Bucket=src.bucket,
                Key=dest,
                UploadId=upload,
                PartNumber=len(parts) + 1,
                CopySource=copy_src,
                CopySourceRange=f"bytes={at}-{end - 1}",
            )
            parts.append({"PartNumber": len(parts) + 1, "ETag": r["CopyPartResult"]["ETag"]})
            at = end
        crash("parts")
        r = client.complete_multipart_upload(
            Bucket=src.bucket,
            Key=dest,
            UploadId=upload,
            IfNoneMatch="*",
            MultipartUpload={"Parts": parts},
        )
    except BaseException as exc:
        _abort(client, src.bucket, dest, upload)
        if isinstance(exc, Exception) and _status(exc) in (409, 412):
            raise AlreadyExists(obj=name) from None
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            raise
        raise map_client_error(exc, name) from None
    vid = r.get("VersionId")
    return Written(str(vid) if vid else None, len(parts), src.size - first_end)


def _part(client: Any, bucket: str, key: str, upload: str, n: int, body: bytes) -> dict[str, Any]:
    r = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body)
    return {"PartNumber": n, "ETag": r["ETag"]}


def _abort(client: Any, bucket: str, key: str, upload: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    except Exception:  # noqa: BLE001, S110 - best effort: the failure itself is reported
        pass


def probe_multipart_conditions(client: Any, bucket: str, prefix: str) -> bool:
    """Whether the store honours If-None-Match on CompleteMultipartUpload: one small
    upload completed twice under a scratch name (the second must answer 412)."""
    key = f"{control_prefix(prefix)}probe/multipart-{secrets.token_hex(8)}"
    for n in (1, 2):
        try:
            upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        except Exception as exc:  # noqa: BLE001 - typed below
            raise map_client_error(exc, f"s3://{bucket}/{key}") from None
        try:
            part = _part(client, bucket, key, upload, 1, b"create-only multipart probe\n")
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                IfNoneMatch="*",
                MultipartUpload={"Parts": [part]},
            )
        except Exception as exc:  # noqa: BLE001 - typed below
            _abort(client, bucket, key, upload)
            if n == 2 and _status(exc) in (409, 412):
                return True
            if _status(exc) in (400, 501):  # the condition is not supported at all
                return False
            raise map_client_error(exc, f"s3://{bucket}/{key}") from None
    return False
