"""Names that key rotation writes beside the backups (issue 13).

A re-wrapped key (and a rotated gpg envelope, rotation/envelope.py: the data object
with one more recipient, under ``X.rewrap/…`` where X is the data's own name) is never
a new version of the producer's ``X.key``: that would
become the newest version, shadow the producer's own key and could pair with the
wrong data version (pairing is by time). It is written once, create-only, under a
name that states what it belongs to::

    X.key.rewrap/<data-version-id>/<new-key-SPKI-SHA-256-hex>

so a reader holding the new key finds it by the data version and the key's
fingerprint alone. Rotation's own control objects (the lock, the store probe) live
under ``PREFIX.sealcheck-rotation/``. Neither is a backup: listings leave both out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SealcheckError
from .s3.errors import map_client_error
from .s3.object import S3Object

REWRAP = ".rewrap/"
CONTROL = ".sealcheck-rotation/"
UNVERSIONED_ID = "null"  # how S3 names the version of an unversioned object
# A rotated envelope written where the store ignores create-only multipart completion
# gets a name that cannot exist yet: the link name and ".<16 random hex>".
_LINK = re.compile(
    r"^(?P<key>.+)\.rewrap/(?P<version>[^/]+)/(?P<fp>[0-9a-f]{64})(?:\.[0-9a-f]{16})?$"
)


@dataclass(frozen=True)
class Link:
    """A re-wrapped key: which wrapped key, data version and new key it is for."""

    name: str
    key_name: str
    data_version: str
    fingerprint: str  # SPKI SHA-256, hex


def link_name(key_name: str, data_version: str | None, fingerprint_hex: str) -> str:
    return f"{key_name}{REWRAP}{data_version or UNVERSIONED_ID}/{fingerprint_hex}"


def parse_link(name: str) -> Link | None:
    m = _LINK.match(name)
    if m is None:
        return None
    return Link(name, m["key"], m["version"], m["fp"])


def is_rotation_object(name: str) -> bool:
    """A link or a control object: never listed as a backup."""
    return CONTROL in name or parse_link(name) is not None


def fingerprint_hex(fingerprint: str) -> str:
    """``SHA256:ab…`` (keys.base.spki_fingerprint) as the hex a link name carries."""
    return fingerprint.removeprefix("SHA256:").lower()


def current_links(versions: Iterable[Any]) -> dict[tuple[str, str], list[str]]:
    """The links among listed object versions (listing.ObjectVersion), by (the name
    they are for, data version id): those that exist now, as a LIST would show them
    (a link whose newest version is a delete marker is gone)."""
    out: dict[tuple[str, str], list[str]] = {}
    for v in versions:
        if v.is_latest and not v.delete_marker and (link := parse_link(v.key)):
            out.setdefault((link.key_name, link.data_version), []).append(link.name)
    return out


def links_for(client: Any, bucket: str, key_name: str, data_version: str | None) -> list[Link]:
    """The re-wrapped keys written for one data version (one LIST request)."""
    prefix = f"{key_name}{REWRAP}{data_version or UNVERSIONED_ID}/"
    try:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=100)
    except Exception as exc:  # noqa: BLE001 - typed below
        err: SealcheckError = map_client_error(exc, f"s3://{bucket}/{prefix}")
        raise err from None
    return [link for o in page.get("Contents", []) if (link := parse_link(str(o["Key"])))]


def _links(
    client: Any, bucket: str, key_name: str, data_version: str | None, known: Sequence[str] | None
) -> list[Link]:
    """The links for one data version: from ``known`` (the link names a full listing of
    the prefix found, issue 14: no request) or, when None, one LIST as ``links_for``.
    Either way only links named for exactly this object and version id count."""
    if known is None:
        return links_for(client, bucket, key_name, data_version)
    version = data_version or UNVERSIONED_ID
    found = (parse_link(n) for n in sorted(known))
    return [x for x in found if x and x.key_name == key_name and x.data_version == version]


def prefer_link(
    data: Any,
    wrapped: Any,
    fingerprints: Callable[[], Iterable[str]],
    known: Sequence[str] | None = None,
) -> Any:
    """The re-wrapped key of this data version for a key the caller holds, else ``wrapped``.

    ``data`` and ``wrapped`` are S3Objects (anything else is returned as is); the
    fingerprints (``SHA256:hex``) are asked only when a link exists. The unlock step
    still proves the link against the data, as it does the producer's own key.
    ``known``: the links a listing found (``_links``); None: listed here."""
    if not isinstance(data, S3Object) or not isinstance(wrapped, S3Object):
        return wrapped
    client = wrapped._c  # the same store, the same client
    try:
        links = _links(client, data.bucket, wrapped.key, data.version_id, known)
    except SealcheckError:
        return wrapped  # may not list: the producer's key as before
    if not links:
        return wrapped
    held = {fingerprint_hex(fp) for fp in fingerprints()}
    for link in links:
        if link.fingerprint in held:
            return S3Object(client, data.bucket, link.name, None)
    return wrapped


def prefer_rotated(
    data: Any,
    wrapped: Any,
    fingerprints: Callable[[], Iterable[str]],
    known: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """The (data, wrapped key) to open: a key re-wrapped for a held key instead of the
    producer's (prefer_link); for data without a wrapped key (gpg, whose recipients sit
    inside the object) the rotated object made for a held key instead of the original.

    The rotated envelope is the original plus a recipient, so it opens with every key
    the original did; the producer's sidecars describe the original's bytes, not it.
    Nothing is listed when no key is held (a passphrase opens no link), nor when the
    caller's listing already found the links (``known``, ListedVersion.links)."""
    if wrapped is not None:
        return data, prefer_link(data, wrapped, fingerprints, known)
    if not isinstance(data, S3Object):
        return data, wrapped
    held = {fingerprint_hex(fp) for fp in fingerprints()}
    if not held:
        return data, wrapped
    client = data._c
    try:
        links = _links(client, data.bucket, data.key, data.version_id, known)
    except SealcheckError:
        return data, wrapped  # may not list: the original as before
    for link in links:
        if link.fingerprint in held:
            return S3Object(client, data.bucket, link.name, None, cancel=data._cancel), wrapped
    return data, wrapped
