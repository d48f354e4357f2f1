"""boto's errors as Sealcheck's typed errors: permanent ones are not retried
(restic's rule), and each says what to check."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bex

from ...errors import (
    AccessDenied,
    ObjectNotFound,
    SealcheckError,
    StorageError,
    TransferCorrupted,
    TransientStorageError,
    UsageError,
)

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
