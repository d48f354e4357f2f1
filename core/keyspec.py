"""``--key`` values: a PEM file, ``keyring:NAME`` or an RFC 7512 ``pkcs11:`` URI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .keys import KeySource, PemKey

SecretProvider = Callable[[], bytes | None]


@dataclass(frozen=True)
class KeyContext:
    """How to reach secrets a key may need; each provider is asked at most once."""

    pem_passphrase: SecretProvider | None = None
    pin: SecretProvider | None = None
    pkcs11_module: str | None = None


def open_key(spec: str, ctx: KeyContext) -> KeySource:
    if spec.startswith("keyring:"):
        from .custody import KeyringKey

        return KeyringKey(spec[len("keyring:") :])
    if spec.startswith("pkcs11:"):
        from .pkcs11key import open_pkcs11_key

        return open_pkcs11_key(spec, module=ctx.pkcs11_module, pin_provider=ctx.pin)
    return PemKey.from_file(Path(spec), ctx.pem_passphrase)
