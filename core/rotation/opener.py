"""Proof before any write: the old key's secret must open its data version.

The wrapped key is unwrapped with each held key that fits, every padding in turn,
and a candidate secret is accepted only when it opens the data version the way
``verify`` checks it (unlock.py): the first block decrypts to a known format and,
for CBC, the last block carries valid padding. PKCS#1 v1.5 with implicit rejection
returns garbage for a wrong key instead of failing; that garbage never opens the data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..decrypt.openssl.kdf import kdf_candidates, password_candidates
from ..decrypt.openssl.unlock import find_params, probe_openssl
from ..decrypt.openssl.wrapped import read_wrapped_key
from ..decrypt.secrets import GpgOptions
from ..errors import BackupFailed, SealcheckError, WrongKey
from ..formats import Fmt, sniff
from ..keys.base import KeySource, Unwrapped
from ..plumbing.progress import CancelToken
from ..plumbing.streams import BytesReader
from ..records.identity import SourceIdentity
from ..storage.rewrap import UNVERSIONED_ID
from ..storage.s3.errors import map_client_error
from . import envelope
from .cmsenvelope import CmsEnvelope, open_cms, open_cms_text
from .cmstext import NotReproducible, split
from .compose import WHOLE_MAX
from .envelope import GpgEnvelope, open_gpg
from .journal import Item
from .store import get_version
from .wire import WireFormat, detect

HEAD_BYTES = 4096  # as the pipeline's first read


class CannotOpen(SealcheckError):
    """This version cannot be rotated."""


@dataclass
class Opened:
    """What the old key proved for one version. ``secret`` is wiped by ``wipe``."""

    key: KeySource
    padding: str
    secret: bytearray
    raw: bytes  # the wrapped-key object as stored
    wire: WireFormat

    def wipe(self) -> None:
        self.secret[:] = bytes(len(self.secret))


class _Fetched:
    """A wrapped-key version read whole with one GET, as a Source for read_wrapped_key."""

    def __init__(self, client: Any, bucket: str, key: str, version: str | None) -> None:
        stored = get_version(client, bucket, key, version)
        self.raw = stored.body
        self.name = f"s3://{bucket}/{key}" + (f"?versionId={version}" if version else "")
        self._ident = SourceIdentity(self.name, len(self.raw), stored.version_id)

    def identity(self) -> SourceIdentity:
        return self._ident

    def read_range(self, start: int, length: int) -> bytes:
        return self.raw[start : start + length]

    def open(self) -> BytesReader:
        return BytesReader(self.raw)


class DataProbe:
    """A data version as the proof reads it: its first bytes and its size from one ranged
    GET (no HEAD: a request less per version), then its last blocks; pinned to the
    version and, from the first answer on, to its ETag."""

    def __init__(self, client: Any, bucket: str, key: str, version: str | None) -> None:
        self._c, self._bucket, self._key, self._version = client, bucket, key, version
        self.name = f"s3://{bucket}/{key}" + (f"?versionId={quote(version)}" if version else "")
        self._etag: str | None = None
        try:
            r = self._get(f"bytes=0-{HEAD_BYTES - 1}")
        except _Empty:
            self.head, self.size = b"", 0
            return
        self.head = r["Body"].read()
        total = str(r.get("ContentRange") or "").rpartition("/")[2]
        self.size = int(total) if total.isdigit() else len(self.head)
        self._etag = r.get("ETag")

    def _get(self, rng: str) -> Any:
        kw: dict[str, str] = {"Bucket": self._bucket, "Key": self._key, "Range": rng}
        if self._version:
            kw["VersionId"] = self._version
        if self._etag:
            kw["IfMatch"] = self._etag
        try:
            return self._c.get_object(**kw)
        except Exception as exc:  # noqa: BLE001 - typed below
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "InvalidRange" and self._etag is None:
                raise _Empty from None  # a 0-byte object has no byte 0
            raise map_client_error(exc, self.name) from None

    def identity(self) -> SourceIdentity:
        return SourceIdentity(self.name, self.size, self._version, self._etag)

    def read_range(self, start: int, length: int) -> bytes:
        if start < 0:
            start = max(0, self.size + start)
        end = min(self.size, start + length)
        if end <= len(self.head):
            return self.head[start:end]
        if end <= start:
            return b""
        data: bytes = self._get(f"bytes={start}-{end - 1}")["Body"].read()
        return data

    def open(self) -> BytesReader:
        return BytesReader(self.read_range(0, self.size))


class _Empty(Exception):
    pass


def _version(v: str | None) -> str | None:
    return None if v in (None, UNVERSIONED_ID) else v


def candidates(key: KeySource, wrapped: bytes, hint: str | None) -> Iterator[Unwrapped]:
    """The key's candidates, the hinted padding first when the key can do just that one
    (a PEM key): versions of one producer share a padding, so usually one RSA operation."""
    unwrap_as = getattr(key, "unwrap_as", None)
    if hint is not None and unwrap_as is not None:
        first = unwrap_as(wrapped, hint)
        if first is not None:
            yield first
        yield from (c for c in key.unwrap_candidates(wrapped) if c.padding != hint)
        return
    yield from key.unwrap_candidates(wrapped)


def open_version(
    client: Any,
    bucket: str,
    item: Item,
    keys: Sequence[KeySource],
    cancel: CancelToken,
    hint: str | None = None,
    gpg: GpgOptions | None = None,
) -> Opened | GpgEnvelope | CmsEnvelope:
    """Unwrap the item's key version with a held key and prove the secret on the data;
    for an envelope whose recipients sit inside the data (gpg), recover its session key."""
    data = DataProbe(client, bucket, item.data_key, _version(item.data_version))
    head = data.head
    fmt = sniff(head)
    if item.key_name is None and fmt in (Fmt.PGP_BINARY, Fmt.CMS_DER):
        first = data.read_range(0, envelope.HEAD)
        try:
            if fmt is Fmt.PGP_BINARY:
                opened: GpgEnvelope | CmsEnvelope = open_gpg(first, keys, gpg, cancel)
            else:
                opened = open_cms(data, first, keys, cancel)
        except envelope.EnvelopeError as exc:
            raise CannotOpen(str(exc), obj=data.name) from None
        item.envelope, item.data_size = opened.kind, data.size
        return opened
    if item.key_name is None and fmt is Fmt.PGP_ARMORED and data.size <= WHOLE_MAX:
        try:
            armor, binary = split(data.read_range(0, data.size))
            armored = open_gpg(binary[: envelope.HEAD], keys, gpg, cancel)
        except envelope.EnvelopeError as exc:
            raise CannotOpen(str(exc), obj=data.name) from None
        except NotReproducible as exc:
            raise CannotOpen(
                f"an ASCII-armored gpg backup that could not be rewritten byte for byte "
                f"({exc}): not rotated",
                obj=data.name,
            ) from None
        armored.armor, armored.binary = armor, binary
        item.envelope, item.data_size = armored.kind, data.size
        return armored
    if item.key_name is None and fmt in (Fmt.CMS_PEM, Fmt.SMIME) and data.size <= WHOLE_MAX:
        try:
            text_env = open_cms_text(data.name, data.read_range(0, data.size), fmt, keys, cancel)
        except envelope.EnvelopeError as exc:
            raise CannotOpen(str(exc), obj=data.name) from None
        item.envelope, item.data_size = text_env.kind, data.size
        return text_env
    if item.key_name is None:
        raise CannotOpen(_no_wrapped_key(fmt, item), obj=data.name)
    if fmt not in (Fmt.OPENSSL_SALTED, Fmt.OPENSSL_SALTED_B64):
        raise CannotOpen(
            f"it is not openssl enc output ({fmt.value if fmt else 'unknown format'}); "
            "only RSA-wrapped openssl enc keys are rotated",
            obj=data.name,
        )
    # One GET of the whole key version (it is small), decoded as verify decodes it.
    key_obj = _Fetched(client, bucket, item.key_name, _version(item.key_version))
    raw = key_obj.raw
    ciphertext = read_wrapped_key(key_obj)
    wire = detect(raw, ciphertext)
    if wire is None:
        raise CannotOpen(
            "its wrapped key is base64 laid out in a way a rewrite could not reproduce "
            "byte for byte",
            obj=key_obj.name,
        )
    header, probe = probe_openssl(data, head, base64=fmt is Fmt.OPENSSL_SALTED_B64, salted=True)
    fitting = sorted(
        (k for k in keys if k.modulus_bytes == len(ciphertext)),
        key=lambda k: bool(getattr(k, "hardware", False)),
    )
    if not fitting:
        raise CannotOpen(
            f"no held key fits its RSA-{len(ciphertext) * 8} wrapped key", obj=key_obj.name
        )
    for kdfs in (kdf_candidates(exhaustive=False), kdf_candidates(exhaustive=True)):
        for ks in fitting:
            for cand in candidates(ks, ciphertext, hint):
                cancel.check()
                if _opens(cand, header.salt, probe, kdfs, data.name):
                    return Opened(ks, cand.padding, cand.secret, raw, wire)
                cand.secret[:] = bytes(len(cand.secret))
    labels = ", ".join(sorted({k.label for k in fitting}))
    raise CannotOpen(
        f"no held key ({labels}) unwraps a secret that opens the data version: the backup "
        "was made for another key, or the wrapped key or the data is damaged",
        obj=data.name,
    )


def _opens(cand: Unwrapped, salt: bytes | None, probe: Any, kdfs: Any, obj: str) -> bool:
    try:
        params = find_params(password_candidates(bytes(cand.secret)), salt, probe, kdfs, obj=obj)
    except WrongKey:
        return False
    except BackupFailed as exc:
        # The start decrypted but the end did not: the right secret on damaged data.
        raise CannotOpen(f"the data version is damaged ({exc.detail})", obj=obj) from None
    params.wipe()
    return True


def _no_wrapped_key(fmt: Fmt | None, item: Item) -> str:
    if fmt in (Fmt.CMS_PEM, Fmt.SMIME):
        return (
            f"a CMS envelope in {fmt.value} form larger than {WHOLE_MAX // (1024 * 1024)} MiB: "
            "a recipient added shifts every base64 character after it, so it would pass whole "
            "through this machine (not rotated; the DER form is, at any size)"
        )
    if fmt is Fmt.PGP_ARMORED:
        return (
            f"an ASCII-armored gpg backup larger than {WHOLE_MAX // (1024 * 1024)} MiB: a "
            "recipient added in front shifts every base64 character after it, so it would "
            "pass whole through this machine (not rotated; the binary form is, at any size)"
        )
    if fmt in (Fmt.OPENSSL_SALTED, Fmt.OPENSSL_SALTED_B64):
        if item.reason:
            return f"missing key version: {item.reason}"
        return "a symmetric backup (openssl enc -pass file:): it has no wrapped key to rotate"
    return "no wrapped key beside it"
