"""``--key`` values: a PEM file, ``keyring:NAME`` or an RFC 7512 ``pkcs11:`` URI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import KeySource
from .pem import PemKey
from .prompt import SecretProvider


@dataclass(frozen=True)
class KeyContext:
    """How to reach secrets a key may need; each provider is asked at most once
    (make them with ``prompt.secret_once``)."""

    pem_passphrase: SecretProvider | None = None
    pin: SecretProvider | None = None
    pkcs11_module: str | None = None


def open_key(spec: str, ctx: KeyContext) -> KeySource:
    # The keyring's and the tokens' modules load only for their own specs: a PEM file
    # needs neither (issue 17, start-up is part of the job).
    if spec.startswith("keyring:"):
        from .custody import KeyringKey

        return KeyringKey(spec[len("keyring:") :])
    if spec.startswith("pkcs11:"):
        from .pkcs11.key import open_pkcs11_key

        return open_pkcs11_key(spec, module=ctx.pkcs11_module, pin_provider=ctx.pin)
    return PemKey.from_file(Path(spec), ctx.pem_passphrase)
