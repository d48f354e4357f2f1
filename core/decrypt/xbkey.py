"""The xbcrypt key: where it comes from, and what its bytes are (issue 16).

XtraBackup uses the raw bytes of ``--encrypt-key`` or of the whole
``--encrypt-key-file`` (no decoding, newline included), and their length picks
AES-128/192/256. ApsaraDB RDS derives that string from its KMS: ``Decrypt``
returns a base64 plaintext, and the key is the lowercase hex of the decoded
bytes (the seed's ``binascii.b2a_hex(base64.b64decode(plaintext))``).

Key bytes live in a bytearray that :meth:`XbcryptKey.wipe` zeroes; they never
appear in a message, a log or a subprocess.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import KeyUnavailable
from .xbcrypt import AES_BY_LEN

_LENGTHS = "16, 24 or 32 bytes (AES-128, AES-192, AES-256)"


class XbcryptKeyInvalid(KeyUnavailable):
    """This xbcrypt key cannot be an XtraBackup key: it must be 16, 24 or 32 bytes."""


class XbcryptKeyNeeded(KeyUnavailable):
    """The backup is encrypted by XtraBackup (xbcrypt): its key is needed."""


HOW_TO_GIVE = (
    "give it with --xbcrypt-key-file F (the --encrypt-key-file), --kms-plaintext-file F "
    "(ApsaraDB: the KMS Decrypt plaintext) or --kms-ciphertext-file F (AWS KMS)"
)


class KmsDecryptFailed(KeyUnavailable):
    """KMS did not decrypt the data key."""


@dataclass
class XbcryptKey:
    """The key bytes and, for the report, where they came from (never the bytes)."""

    key: bytearray
    origin: str  # "key file K", "KMS plaintext (ApsaraDB: hex of the data key)", ...

    @property
    def cipher(self) -> str:
        return AES_BY_LEN[len(self.key)] + "-CTR"

    def wipe(self) -> None:
        for i in range(len(self.key)):
            self.key[i] = 0


def _checked(key: bytearray, origin: str) -> XbcryptKey:
    if len(key) not in AES_BY_LEN:
        n = len(key)
        for i in range(n):
            key[i] = 0
        raise XbcryptKeyInvalid(f"{origin} gives {n} bytes; an xbcrypt key is {_LENGTHS}")
    return XbcryptKey(key, origin)


def key_from_file(path: Path) -> XbcryptKey:
    """``--xbcrypt-key-file``: the whole file, as ``--encrypt-key-file`` reads it."""
    try:
        raw = bytearray(path.read_bytes())
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the xbcrypt key file {path}: {exc.strerror}") from None
    n = len(raw)
    if n not in AES_BY_LEN and raw.endswith(b"\n") and n - 1 in AES_BY_LEN:
        for i in range(n):
            raw[i] = 0
        # Not "corrupt": the file is one newline too long, as XtraBackup itself says.
        raise XbcryptKeyInvalid(
            f"the key file {path} ends with a newline: XtraBackup reads the whole file, "
            f"newline included, so it holds {n} bytes and not the {n - 1} of an "
            f"{AES_BY_LEN[n - 1]} key (XtraBackup refuses it too). Write it without the "
            "newline (printf '%s' KEY > FILE, or echo -n)"
        )
    return _checked(raw, f"key file {path}")


def key_from_kms_plaintext(b64: bytes | bytearray) -> XbcryptKey:
    """ApsaraDB: the base64 ``Plaintext`` of KMS ``Decrypt`` → lowercase hex → key."""
    text = bytes(b64).strip()
    try:
        raw = bytearray(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise XbcryptKeyInvalid(
            "the KMS plaintext is not base64 (KMS Decrypt returns its Plaintext in base64)"
        ) from None
    return _hex_of(raw, "KMS plaintext (ApsaraDB recipe: lowercase hex of the decoded bytes)")


def _hex_of(raw: bytearray, origin: str) -> XbcryptKey:
    hexed = bytearray(binascii.hexlify(raw))
    for i in range(len(raw)):
        raw[i] = 0
    return _checked(hexed, origin)


def key_from_kms_plaintext_file(path: Path) -> XbcryptKey:
    try:
        text = bytearray(path.read_bytes())
    except OSError as exc:
        raise KeyUnavailable(f"cannot read the KMS plaintext file {path}: {exc.strerror}") from None
    try:
        return key_from_kms_plaintext(text)
    finally:
        for i in range(len(text)):
            text[i] = 0


def key_from_aws_kms(
    ciphertext_file: Path,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
) -> XbcryptKey:
    """``--kms-ciphertext-file``: AWS KMS ``Decrypt`` of an encrypted data key.

    The data key is turned into the key string as ApsaraDB's recipe does (its
    lowercase hex); a data key whose hex is no key length but whose bytes are
    (a 32-byte ``GenerateDataKey``) is used as raw bytes. Only one of the two
    forms is ever a valid length, so this is no guess.
    """
    try:
        blob = ciphertext_file.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(
            f"cannot read the KMS ciphertext file {ciphertext_file}: {exc.strerror}"
        ) from None
    blob = _maybe_base64(blob)
    plain = bytearray(_kms_decrypt(blob, region, endpoint_url, profile))
    if len(plain) * 2 in AES_BY_LEN:
        return _hex_of(plain, "AWS KMS data key (lowercase hex, as ApsaraDB's recipe)")
    return _checked(plain, "AWS KMS data key (raw bytes)")


def _maybe_base64(blob: bytes) -> bytes:
    """The CLI's ``--output text`` writes the blob in base64; the API gives bytes."""
    text = blob.strip()
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return blob
    return decoded if decoded else blob


def _kms_decrypt(
    blob: bytes, region: str | None, endpoint_url: str | None, profile: str | None
) -> bytes:
    import boto3  # loaded only for this key source
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        client: Any = session.client("kms", endpoint_url=endpoint_url)
        resp = client.decrypt(CiphertextBlob=blob)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise KmsDecryptFailed(
            f"KMS Decrypt refused the data key: {err.get('Code', '?')}: "
            f"{err.get('Message', '')}".rstrip(": ")
        ) from None
    except BotoCoreError as exc:
        raise KmsDecryptFailed(f"KMS could not be reached: {exc}") from None
    plain = resp.get("Plaintext")
    if not isinstance(plain, bytes | bytearray):
        raise KmsDecryptFailed("KMS Decrypt returned no plaintext")
    return bytes(plain)
