"""The ``KeySource`` contract: what a private key offers the decrypt layer.

A key source yields *candidates*: the secret as each RSA padding would decode
it. With OAEP a wrong padding raises, but PKCS#1 v1.5 under OpenSSL >= 3.2
"implicit rejection" returns deterministic garbage instead of an error
(formats.md §3.1), so no candidate is trusted until the data itself decrypts
to a recognised format with it. The caller does that confirmation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import MalformedKeyObject

MAX_WRAPPED_KEY = 64 * 1024


@dataclass(frozen=True)
class Unwrapped:
    padding: str
    secret: bytearray


class KeySource(Protocol):
    label: str

    @property
    def modulus_bytes(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]: ...


def close_key(key: object) -> None:
    """End what a key holds open: a token key's session, and with it the token's login.

    Keys that hold nothing open (a PEM, a keyring key) have no ``close()``. A closed
    token key may still be used by whoever holds it: it logs in anew."""
    close = getattr(key, "close", None)
    if callable(close):
        close()


def spki_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo: the same wherever the key is held."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def check_wrapped_size(wrapped: bytes, modulus_bytes: int, obj: str | None) -> None:
    """Reject an obviously malformed wrapped key before any private-key operation."""
    if len(wrapped) != modulus_bytes:
        raise MalformedKeyObject(
            f"it is {len(wrapped)} bytes, but an RSA-{modulus_bytes * 8} wrapped key is "
            f"exactly {modulus_bytes} bytes (a different key size, or a damaged object)",
            obj=obj,
        )
