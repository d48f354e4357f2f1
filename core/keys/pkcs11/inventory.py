"""``sealcheck key list`` for tokens: the RSA keys on every token of a module.

Without a PIN, a token shows its public objects; they stand for private keys
hidden until login, which is enough for fingerprints and ``--key`` URIs.

A PIN unlocks ONE token, and this module decides which (the safety rule):

* with ``pin_for`` (``--token``: a label, or a ``pkcs11:`` URI with ``token=``,
  ``serial=``, …), the one present token it names, and no other; naming no
  token, or several, is an error before any login;
* without ``pin_for``, the token only when exactly one token is present;
  with several, the PIN is tried on none of them.

Why not "try it on every token": each wrong PIN counts toward that token's
lockout (a YubiKey PIV locks after three), so a PIN meant for one token tried
on another spends a try the admin never meant to spend, and hands that PIN to
a token it does not belong to. So: at most one C_Login per listing, on one
token. A token that refuses the PIN (``CKR_PIN_INCORRECT``) is not asked again
(pkcs11login.py); it is listed with its public objects only and a note saying
so, and the listing still succeeds. A token whose PIN has one try left
(``CKF_USER_PIN_FINAL_TRY``) is not logged in to at all: an inventory is not
worth locking a token for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import KeyUnavailable
from ..base import spki_fingerprint
from .errors import err_name, removed_types
from .login import PinProvider, PinState, logged_in_session, token_identity
from .modules import find_module, load_module
from .token import describe_tokens, present_tokens, rsa_keys, token_matches, token_serial
from .uri import Pkcs11Uri, build_uri, parse_uri


@dataclass(frozen=True)
class TokenKey:
    """One RSA key on a token, as ``sealcheck key list`` shows it."""

    token_label: str
    token_serial: str
    object_label: str | None
    id_hex: str | None
    key_type: str
    size_bits: int
    fingerprint: str
    can_decrypt: bool | None  # None: unknown (the private key is hidden until login)
    has_private: bool | None  # None: unknown without login
    uri: str


@dataclass(frozen=True)
class TokenListing:
    """One token as the listing saw it: its keys, and why private keys may be missing."""

    label: str
    serial: str
    logged_in: bool
    keys: tuple[TokenKey, ...]
    note: str | None = None  # e.g. the PIN was not accepted: private keys not listed


def list_tokens(
    module: str | Path | None = None,
    pin_provider: PinProvider | None = None,
    *,
    pin_for: str | None = None,
    module_candidates: Sequence[str] | None = None,
) -> list[TokenListing]:
    """Every present token of ``module`` (the usual ones if None) with its RSA keys.

    ``pin_provider`` is asked at most once, and only for the token the PIN is
    for (see the module docstring); ``pin_for`` names that token.
    """
    path = find_module(module, None, module_candidates)
    lib = load_module(path)
    tokens = present_tokens(lib, path)
    target = _pin_target(tokens, path, pin_for)
    out: list[TokenListing] = []
    for token in tokens:
        if pin_provider is None:
            out.append(_list_one(token, path, None, None))
        elif token is target:
            out.append(_list_one(token, path, pin_provider, None))
        else:
            out.append(_list_one(token, path, None, _not_tried(token, target, len(tokens))))
    return out


def list_token_keys(
    module: str | Path | None = None,
    pin_provider: PinProvider | None = None,
    *,
    pin_for: str | None = None,
    module_candidates: Sequence[str] | None = None,
) -> list[TokenKey]:
    """The keys of ``list_tokens``, flattened; its per-token notes are dropped."""
    listings = list_tokens(
        module, pin_provider, pin_for=pin_for, module_candidates=module_candidates
    )
    return [k for t in listings for k in t.keys]


def _pin_target(tokens: list[Any], module: str, pin_for: str | None) -> Any | None:
    """The one token a PIN may be tried on, or None."""
    if pin_for is None:
        return tokens[0] if len(tokens) == 1 else None
    uri = parse_uri(pin_for) if pin_for[:7].lower() == "pkcs11:" else Pkcs11Uri(token=pin_for)
    matching = [t for t in tokens if token_matches(uri, t)]
    if len(matching) == 1:
        return matching[0]
    present = describe_tokens(tokens) or "none"
    if not matching:
        raise KeyUnavailable(
            f"no PKCS#11 token with {uri.describe_token()} in {module} for the PIN (--token); "
            f"tokens present: {present}"
        )
    raise KeyUnavailable(
        f"several PKCS#11 tokens match {uri.describe_token()} (--token): {present}; the PIN is "
        "tried on one token only: name it by a pkcs11: URI with serial="
    )


def _not_tried(token: Any, target: Any | None, count: int) -> str | None:
    """Why the PIN was not tried on ``token`` (None if it needs no login anyway)."""
    from pkcs11 import TokenFlag

    if not token.flags & TokenFlag.LOGIN_REQUIRED:
        return None
    if target is not None:
        reason = f"the PIN was given for token {target.label!r} only"
    else:
        reason = (
            f"{count} tokens are present and the PIN is tried on one only when --token names "
            "it (a wrong PIN counts toward a token's lockout)"
        )
    return f"PIN not tried on token {token.label!r} ({reason}): private keys not listed"


def _refusal_note(label: str, state: PinState) -> str | None:
    """The note for a login that failed on the PIN itself; None for other failures."""
    if state.locked:
        return (
            f"the user PIN of token {label!r} is locked: private keys not listed (unblock it "
            "with the token's PUK or SO PIN)"
        )
    if state.rejected:
        return (
            f"PIN not accepted for token {label!r}: private keys not listed (it was tried once "
            "and not retried: tokens lock after a few wrong PINs)"
        )
    return None


def _list_one(
    token: Any, module: str, pin_provider: PinProvider | None, note: str | None
) -> TokenListing:
    import pkcs11
    from pkcs11 import TokenFlag

    label = token.label
    serial = token_serial(token)
    desc = f"PKCS#11 token {label!r}"
    logged_in = False
    try:
        session: Any = None
        flags = token.flags
        if pin_provider is not None and flags & TokenFlag.LOGIN_REQUIRED:
            if flags & TokenFlag.USER_PIN_FINAL_TRY:
                note = (
                    f"PIN not tried on token {label!r}: one try is left before it locks: "
                    "private keys not listed"
                )
            else:
                state = PinState()
                ident = token_identity(module, label, serial)
                try:
                    session = logged_in_session(token, desc, ident, pin_provider, "its keys", state)
                    logged_in = True
                except KeyUnavailable:
                    note = _refusal_note(label, state)
                    if note is None:
                        raise
        if session is None:
            session = token.open()
        try:
            keys = rsa_keys(session)
        finally:
            try:
                session.close()
            except pkcs11.PKCS11Error:
                pass
    except pkcs11.PKCS11Error as exc:
        if isinstance(exc, removed_types()):
            raise KeyUnavailable(
                f"{desc} was removed or stopped responding while listing its keys ({err_name(exc)})"
            ) from None
        raise KeyUnavailable(f"{desc} failed while listing its keys ({err_name(exc)})") from None
    rows = tuple(
        TokenKey(
            token_label=label,
            token_serial=serial,
            object_label=k.label,
            id_hex=k.key_id.hex() if k.key_id else None,
            key_type="RSA",
            size_bits=k.modulus.bit_length(),
            fingerprint=spki_fingerprint(k.public_key),
            can_decrypt=k.can_decrypt if k.has_private else None,
            has_private=True if k.has_private else (False if logged_in else None),
            uri=build_uri(
                token=label,
                serial=serial or None,
                object_label=k.label,
                key_id=k.key_id,
                module_path=module,
            ),
        )
        for k in keys
    )
    return TokenListing(label, serial, logged_in, rows, note)
