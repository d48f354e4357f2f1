"""Finding a token of a loaded PKCS#11 module, and the RSA keys it shows.

A token is matched against the token attributes of a ``pkcs11:`` URI; zero or
several matches are errors that list the tokens present, since guessing which
token an admin meant could send a PIN to the wrong one. A key pair shows as a
private-key object (often hidden until login) and a public-key object; they are
merged by modulus, so one key is one row whichever of the two is visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ...errors import KeyUnavailable
from .errors import err_name, is_pkcs11_error
from .uri import Pkcs11Uri


def token_serial(token: Any) -> str:
    s = token.serial
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    return str(s).strip().rstrip("\x00")


def token_matches(uri: Pkcs11Uri, token: Any) -> bool:
    """Whether ``token`` has every token attribute the URI gives (key attributes are ignored)."""
    slot = token.slot
    checks: tuple[tuple[Any, Callable[[], Any]], ...] = (
        (uri.token, lambda: token.label),
        (uri.serial, lambda: token_serial(token)),
        (uri.manufacturer, lambda: token.manufacturer_id),
        (uri.model, lambda: token.model),
        (uri.slot_id, lambda: slot.slot_id),
        (uri.slot_description, lambda: slot.slot_description),
        (uri.slot_manufacturer, lambda: slot.manufacturer_id),
    )
    return all(want is None or want == get() for want, get in checks)


def present_tokens(lib: Any, module: str) -> list[Any]:
    """The initialised tokens in the module's slots, in slot order."""
    try:
        from pkcs11 import TokenFlag

        tokens = [slot.get_token() for slot in lib.get_slots(token_present=True)]
        # SoftHSM always shows one free, uninitialised token: nothing to use there.
        return [t for t in tokens if t.flags & TokenFlag.TOKEN_INITIALIZED]
    except Exception as exc:
        if is_pkcs11_error(exc):
            raise KeyUnavailable(
                f"the PKCS#11 module {module} cannot list its tokens ({err_name(exc)}); for smart "
                "cards and YubiKeys, is pcscd running?"
            ) from None
        raise


def describe_tokens(tokens: list[Any]) -> str:
    """``'label' (serial …)`` for each token, for messages that say what is present."""
    return ", ".join(f"{t.label!r} (serial {token_serial(t)})" for t in tokens)


def select_token(lib: Any, module: str, uri: Pkcs11Uri) -> Any:
    """The one present token the URI names."""
    tokens = present_tokens(lib, module)
    if not tokens:
        raise KeyUnavailable(
            f"no token is present for the PKCS#11 module {module}: insert the token (for smart "
            "cards and YubiKeys, check that pcscd is running)"
        )
    matching = [t for t in tokens if token_matches(uri, t)]
    if len(matching) == 1:
        return matching[0]
    present = describe_tokens(tokens)
    if not matching:
        raise KeyUnavailable(
            f"no PKCS#11 token with {uri.describe_token()} in {module}; tokens present: {present}"
        )
    raise KeyUnavailable(
        f"several PKCS#11 tokens match {uri.describe_token()}: {present}; add token= or serial= "
        "to the pkcs11: URI"
    )


@dataclass
class KeyInfo:
    """One RSA key pair as a session shows it (mutable: filled in while objects are merged)."""

    label: str | None
    key_id: bytes | None
    modulus: int
    exponent: int
    has_private: bool
    can_decrypt: bool | None

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return rsa.RSAPublicNumbers(self.exponent, self.modulus).public_key()

    def describe(self) -> str:
        bits = self.modulus.bit_length()
        lab = repr(self.label) if self.label else "(no label)"
        ident = f" id {self.key_id.hex()}" if self.key_id else ""
        kind = "" if self.has_private else ", public key only"
        return f"{lab}{ident} (RSA-{bits}{kind})"


def get_attr(obj: Any, attribute: Any, default: Any = None) -> Any:
    """An object's attribute, or ``default`` when the token has none or keeps it secret."""
    import pkcs11

    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive, KeyError):
        return default


def as_int(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(value)


def rsa_keys(session: Any, label: str | None = None, key_id: bytes | None = None) -> list[KeyInfo]:
    """RSA keys visible in this session, a private key and its public key merged (by modulus)."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    found: dict[int, KeyInfo] = {}
    order: list[int] = []
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        attrs: dict[Any, Any] = {Attribute.CLASS: cls, Attribute.KEY_TYPE: KeyType.RSA}
        if label is not None:
            attrs[Attribute.LABEL] = label
        if key_id is not None:
            attrs[Attribute.ID] = key_id
        for obj in session.get_objects(attrs):
            mod = get_attr(obj, Attribute.MODULUS)
            exp = get_attr(obj, Attribute.PUBLIC_EXPONENT)
            if mod is None or exp is None:
                continue
            n = as_int(mod)
            lab = get_attr(obj, Attribute.LABEL) or None
            kid = get_attr(obj, Attribute.ID) or None
            info = found.get(n)
            if info is None:
                info = KeyInfo(lab, bytes(kid) if kid else None, n, as_int(exp), False, None)
                found[n] = info
                order.append(n)
            if cls == ObjectClass.PRIVATE_KEY:
                info.has_private = True
                dec = get_attr(obj, Attribute.DECRYPT)
                info.can_decrypt = None if dec is None else bool(dec)
                if lab:
                    info.label = lab
                if kid:
                    info.key_id = bytes(kid)
    return [found[n] for n in order]
