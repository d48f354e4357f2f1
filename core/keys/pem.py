"""RSA private keys in PEM (or DER) files: the software ``KeySource`` (base.py).

A key source yields *candidates*: the secret as each RSA padding would decode
it. With OAEP a wrong padding raises, but PKCS#1 v1.5 under OpenSSL >= 3.2
"implicit rejection" returns deterministic garbage instead of an error
(formats.md §3.1), so no candidate is trusted until the data itself decrypts
to a recognised format with it. The caller does that confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import (
    KeyUnavailable,
    NotAPrivateKey,
    PassphraseNeeded,
    UsageError,
    WrongPassphrase,
)
from .base import Unwrapped, check_wrapped_size, spki_fingerprint

OAEP_VARIANTS: tuple[tuple[str, padding.OAEP], ...] = (
    ("OAEP-SHA256", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)),
    ("OAEP-SHA1", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)),  # noqa: S303
    (
        "OAEP-SHA256/MGF1-SHA1",
        padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA256(), None),  # noqa: S303
    ),
)


class PemKey:
    """An RSA private key loaded from a PEM (or DER) file, optionally encrypted."""

    def __init__(self, key: rsa.RSAPrivateKey, label: str) -> None:
        self._key = key
        self.label = label

    @classmethod
    def from_file(cls, path: Path, passphrase: Callable[[], bytes | None] | None = None) -> PemKey:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyUnavailable(f"no such key file: {path}") from None
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the key file {path}: {exc.strerror}") from None
        return cls.from_bytes(data, f"PEM file {path}", passphrase)

    @classmethod
    def from_bytes(
        cls, data: bytes, label: str, passphrase: Callable[[], bytes | None] | None = None
    ) -> PemKey:
        loader = (
            serialization.load_pem_private_key
            if b"-----BEGIN" in data
            else serialization.load_der_private_key
        )
        try:
            key = loader(data, password=None)
        except TypeError:
            # Encrypted: ask for the passphrase only now that we know it is needed.
            pw = passphrase() if passphrase else None
            if not pw:
                raise PassphraseNeeded(
                    f"{label} is encrypted; give its passphrase (--key-passphrase-file or the "
                    "prompt)"
                ) from None
            try:
                key = loader(data, password=pw)
            except ValueError:
                raise WrongPassphrase(f"wrong passphrase for {label}") from None
        except (ValueError, UnsupportedAlgorithm):
            raise NotAPrivateKey(
                f"{label} is not a readable private key (PEM or DER, PKCS#1 or PKCS#8)"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UsageError(f"{label} is not an RSA private key")
        return cls(key, label)

    @property
    def modulus_bytes(self) -> int:
        return (self._key.key_size + 7) // 8

    @property
    def fingerprint(self) -> str:
        return spki_fingerprint(self._key.public_key())

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def private_bytes_encrypted(self, passphrase: bytes) -> bytes:
        """PKCS#8, encrypted: the only form in which Sealcheck writes a private key."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    def unwrap_as(self, wrapped: bytes, padding_name: str) -> Unwrapped | None:
        """The secret under one named padding, or None when that padding fails.

        For callers that already know the padding (a rotation re-reading what it wrote,
        the next version of a series): one private-key operation instead of up to four.
        A PKCS#1 v1.5 result is as untrusted here as in ``unwrap_candidates``."""
        check_wrapped_size(wrapped, self.modulus_bytes, None)
        pads = dict(OAEP_VARIANTS)
        pad = padding.PKCS1v15() if padding_name == "PKCS#1 v1.5" else pads.get(padding_name)
        if pad is None:
            return None
        try:
            return Unwrapped(padding_name, bytearray(self._key.decrypt(wrapped, pad)))
        except ValueError:
            return None

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]:
        check_wrapped_size(wrapped, self.modulus_bytes, None)
        oaep_ok = False
        for name, pad in OAEP_VARIANTS:
            try:
                secret = bytearray(self._key.decrypt(wrapped, pad))
            except ValueError:
                continue
            oaep_ok = True
            yield Unwrapped(name, secret)
        if oaep_ok:
            # OAEP decoding is authenticated: the block was OAEP-wrapped for
            # this key, so a PKCS#1 v1.5 decode of it can only be implicit-
            # rejection noise. Trying that noise would double the key search.
            return
        try:
            yield Unwrapped(
                "PKCS#1 v1.5", bytearray(self._key.decrypt(wrapped, padding.PKCS1v15()))
            )
        except ValueError:
            return
