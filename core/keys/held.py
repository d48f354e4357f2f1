"""A data key already unwrapped elsewhere: the ``KeySource`` a campaign's worker holds.

Issue 15: the private key, its passphrase and a token's PIN stay on the coordinator.
The coordinator unwraps each backup's wrapped data key there (``unwrapped_from``) and
the worker is given only the result: the candidates of that one wrapped key, with the
label and SPKI fingerprint of the key that produced them, so the worker's record names
the key and where it was held exactly as a run on the coordinator would. The worker
proves a candidate on the data as for any key (decrypt/openssl/wrapped.py); nothing
else changes there.

A ``HeldSecret`` answers only the wrapped key it was made from (its SHA-256): given
another backup's wrapped key it yields nothing, as a private key that does not fit
would. Its ``repr`` never shows a secret: Dask prints a failed task's arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from .base import KeySource, Unwrapped

# OAEP decoding is authenticated (pem.py): a candidate under one of these proves the
# wrapped key was made for that private key, so no other key need be tried.
_AUTHENTICATED = "OAEP"


class HeldSecret:
    """The unwrapped candidates of one wrapped key, in the name of the key that unwrapped
    them (``label``: where it is held; ``fingerprint``: its SPKI SHA-256)."""

    def __init__(
        self,
        label: str,
        fingerprint: str,
        modulus_bytes: int,
        wrapped: bytes,
        candidates: Sequence[Unwrapped],
        *,
        hardware: bool = False,
        partial: bool = False,
        key_identifier: bytes | None = None,
    ) -> None:
        self.label = label
        self._fingerprint = fingerprint
        self._modulus_bytes = modulus_bytes
        self._wrapped_sha256 = hashlib.sha256(wrapped).digest()
        self._candidates = [(c.padding, bytearray(c.secret)) for c in candidates]
        self.hardware = hardware  # keeps the order a run would try keys in (wrapped.py)
        # Only the hinted PKCS#1 v1.5 was tried, not OAEP: when the data does not confirm
        # it, the item is run again where every padding can be tried (the coordinator).
        self.partial = partial
        # The key's SHA-1 key identifier (public), which a CMS recipient's is checked
        # against (decrypt/cms/key.py): a worker has no public key to compute it from.
        self.key_identifier = key_identifier

    def __repr__(self) -> str:
        return f"HeldSecret({self.label!r}, {self._fingerprint})"

    @property
    def modulus_bytes(self) -> int:
        return self._modulus_bytes

    @property
    def paddings(self) -> list[str]:
        return [p for p, _s in self._candidates]

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]:
        if hashlib.sha256(wrapped).digest() != self._wrapped_sha256:
            return  # another wrapped key: this secret is not its
        for padding, secret in self._candidates:
            # A fresh copy each time: the caller wipes what it was given.
            yield Unwrapped(padding, bytearray(secret))

    def wipe(self) -> None:
        for _padding, secret in self._candidates:
            secret[:] = bytes(len(secret))
        self._candidates = []


def unwrapped_from(
    keys: Sequence[KeySource], wrapped: bytes, hint: str | None = None
) -> list[HeldSecret]:
    """Unwrap ``wrapped`` with every held key of its size, software keys first, as a run
    tries them, until one gives an authenticated (OAEP) unwrap: then only that key's. A
    token key is used only when no software key gave one (its PIN is asked then).

    PKCS#1 v1.5 unwraps cannot be judged without the data (implicit rejection returns
    noise for a wrong key), so every fitting key's candidates are kept for the worker's
    trial, each in the name of its own key.

    ``hint``: the padding the previous backup of the same series had (``padding_of``),
    tried alone first by a key that can (a PEM key: one RSA operation instead of four
    for a PKCS#1 v1.5 one). An OAEP one that decodes is authenticated: nothing else is
    needed. A PKCS#1 v1.5 one is kept alone, ``partial``: OAEP was not ruled out, so if
    the data does not confirm it the item is run again trying every padding. A hinted
    padding that does not decode: every padding, as without a hint."""
    fitting = sorted(
        (k for k in keys if k.modulus_bytes == len(wrapped)),
        key=lambda k: bool(getattr(k, "hardware", False)),
    )
    out: list[HeldSecret] = []
    for k in fitting:
        cands, partial = _candidates(k, wrapped, hint)
        if not cands:
            continue
        try:
            out.append(
                HeldSecret(
                    k.label,  # read after the unwrap: a lazy token key names itself then
                    k.fingerprint,
                    k.modulus_bytes,
                    wrapped,
                    cands,
                    hardware=bool(getattr(k, "hardware", False)),
                    partial=partial,
                )
            )
        finally:
            for c in cands:
                c.secret[:] = bytes(len(c.secret))
        if any(p.startswith(_AUTHENTICATED) for p in out[-1].paddings):
            # Made for this key: the other keys' PKCS#1 v1.5 noise cannot open it.
            for h in out[:-1]:
                h.wipe()
            return out[-1:]
    return out


def _candidates(k: KeySource, wrapped: bytes, hint: str | None) -> tuple[list[Unwrapped], bool]:
    """The key's candidates, and whether they are the hinted PKCS#1 v1.5 one alone."""
    unwrap_as = getattr(k, "unwrap_as", None)
    if hint is not None and unwrap_as is not None:
        one = unwrap_as(wrapped, hint)
        if one is not None:
            return [one], not hint.startswith(_AUTHENTICATED)
    return list(k.unwrap_candidates(wrapped)), False


def padding_of(held: Sequence[HeldSecret]) -> str | None:
    """The padding these unwraps say their wrapped key has, as a hint for the next of
    its series: the OAEP one that decoded (authenticated), or PKCS#1 v1.5 when only
    that decoded (the data will say whether it opens)."""
    paddings = {p for h in held for p in h.paddings}
    return paddings.pop() if len(paddings) == 1 else None
