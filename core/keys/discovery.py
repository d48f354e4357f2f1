"""Which held key opens a backup, when the user names none.

Candidates come from custody (keyring-held keys) and, when a PKCS#11 module
is given, from the token's public objects, listed without a PIN. unlock.py
keeps only keys whose modulus fits the wrapped key and tries software keys
before tokens, so a PIN is asked only when a token key could match and every
software key failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ..errors import KeyNotUsable
from .base import KeySource, Unwrapped
from .custody import KeyringKey, KeyStore
from .pkcs11.inventory import list_token_keys
from .pkcs11.key import open_pkcs11_key
from .spec import KeyContext

_OPENING = threading.Lock()


class LazyTokenKey:
    """A token key known from its public object; it logs in on first use."""

    hardware = True

    def __init__(self, uri: str, bits: int, fingerprint: str, ctx: KeyContext) -> None:
        self.label = uri
        self._uri = uri  # what opens it: the label becomes the key's own words once used
        self._bits = bits
        self._fingerprint = fingerprint
        self._ctx = ctx

    @property
    def modulus_bytes(self) -> int:
        return (self._bits + 7) // 8

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]:
        # One at a time: a rotation's workers unwrap at once, and opening a module's
        # tokens from several threads together fails (GeneralError listing them). All
        # candidates are computed under the lock, so none is held across a yield.
        with _OPENING:
            try:
                key = open_pkcs11_key(
                    self._uri, module=self._ctx.pkcs11_module, pin_provider=self._ctx.pin
                )
            except KeyNotUsable:
                return  # e.g. a signing key found by the search: not a candidate
            try:
                self.label = key.label
                cands = list(key.unwrap_candidates(wrapped))
            except KeyNotUsable:
                return
            finally:
                key.close()
        yield from cands


def held_keys(ctx: KeyContext, store: KeyStore | None = None) -> list[KeySource]:
    """Every key Sealcheck holds or can reach without a secret, software first."""
    store = store or KeyStore()
    found: list[KeySource] = [KeyringKey(h.name, store) for h in store.list()]
    if ctx.pkcs11_module:
        for t in list_token_keys(ctx.pkcs11_module):
            if t.key_type.upper().startswith("RSA") and t.can_decrypt is not False:
                found.append(LazyTokenKey(t.uri, t.size_bits, t.fingerprint, ctx))
    return found
