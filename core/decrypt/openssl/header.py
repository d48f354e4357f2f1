"""``openssl enc`` output as it is written: the header, the ciphers it may use, and
the parameters (cipher, KDF, key, IV) once found (formats.md §2).

openssl enc records neither the KDF nor the cipher: the parameters are found by
trial decryption (unlock.py); this module only says what can be found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import Layer, TruncatedBackup
from .kdf import Kdf, PasswordForm

BLOCK = 16
MAGIC = b"Salted__"


@dataclass(frozen=True)
class CipherSpec:
    name: str
    key_len: int
    mode: Literal["cbc", "ctr"]


CIPHERS: tuple[CipherSpec, ...] = (
    CipherSpec("aes-256-cbc", 32, "cbc"),
    CipherSpec("aes-128-cbc", 16, "cbc"),
    CipherSpec("aes-192-cbc", 24, "cbc"),
    CipherSpec("aes-256-ctr", 32, "ctr"),
    CipherSpec("aes-128-ctr", 16, "ctr"),
    CipherSpec("aes-192-ctr", 24, "ctr"),
)
CIPHERS_BY_NAME = {c.name: c for c in CIPHERS}


@dataclass(frozen=True)
class EncHeader:
    base64: bool
    salt: bytes | None
    body_offset: int  # offset of the ciphertext in the (decoded) stream


def parse_header(
    decoded_head: bytes, *, base64: bool, salted: bool = True, obj: str | None = None
) -> EncHeader:
    if not salted:
        return EncHeader(base64, None, 0)
    if not decoded_head.startswith(MAGIC) or len(decoded_head) < 16:
        raise TruncatedBackup(
            f"the openssl enc header (16 bytes: 'Salted__' and the salt) is incomplete: the "
            f"object has {len(decoded_head)} bytes",
            obj=obj,
            layer=Layer.CIPHER,
        )
    return EncHeader(base64, decoded_head[8:16], 16)


@dataclass
class EncParams:
    cipher: CipherSpec
    kdf: Kdf
    form: PasswordForm | None
    key: bytearray
    iv: bytearray

    def wipe(self) -> None:
        # Best effort: Python cannot guarantee no other copy exists.
        for b in (self.key, self.iv):
            for i in range(len(b)):
                b[i] = 0


def raw_params(cipher: CipherSpec, key_hex: str, iv_hex: str) -> EncParams:
    """``-K``/``-iv`` as openssl takes them: hex, short values zero-padded."""
    key = bytes.fromhex(key_hex).ljust(cipher.key_len, b"\0")[: cipher.key_len]
    iv = bytes.fromhex(iv_hex).ljust(BLOCK, b"\0")[:BLOCK]
    return EncParams(cipher, Kdf("raw"), None, bytearray(key), bytearray(iv))


def valid_padding(last: bytes) -> bool:
    """PKCS#7: the last block ends with n bytes of value n (1..16)."""
    n = last[-1]
    return 1 <= n <= BLOCK and last[-n:] == bytes([n]) * n
