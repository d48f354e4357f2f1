"""The S3 client, made from the standard credential chain, and how objects are named
(``s3://bucket/key?versionId=V``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import botocore.exceptions as bex

from ...errors import UsageError


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


def object_name(bucket: str, key: str, version_id: str | None = None) -> str:
    """How a report and an error name one object version."""
    return f"s3://{bucket}/{key}" + (f"?versionId={quote(version_id)}" if version_id else "")


def version_param(name: str) -> tuple[str, str | None]:
    """Split ``s3://b/k?versionId=V`` into the URI and the version."""
    if "?versionId=" in name:
        base, _, v = name.partition("?versionId=")
        return base, unquote(v)
    return name, None
