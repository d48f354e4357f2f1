"""``--key`` values: a PEM file, ``keyring:NAME`` or an RFC 7512 ``pkcs11:`` URI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import KeySource
from .custody import KeyringKey
from .pem import PemKey
from .pkcs11.key import open_pkcs11_key
from .prompt import SecretProvider


@dataclass(frozen=True)
class KeyContext:
    """How to reach secrets a key may need; each provider is asked at most once
    (make them with ``prompt.secret_once``)."""

    pem_passphrase: SecretProvider | None = None
    pin: SecretProvider | None = None
    pkcs11_module: str | None = None


def open_key(spec: str, ctx: KeyContext) -> KeySource:
    if spec.startswith("keyring:"):
        return KeyringKey(spec[len("keyring:") :])
    if spec.startswith("pkcs11:"):
        return open_pkcs11_key(spec, module=ctx.pkcs11_module, pin_provider=ctx.pin)
    return PemKey.from_file(Path(spec), ctx.pem_passphrase)
