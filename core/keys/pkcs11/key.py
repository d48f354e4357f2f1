"""RSA private keys on PKCS#11 tokens (YubiKey PIV, smart cards, HSMs; SoftHSM2 in tests).

A ``pkcs11:`` URI (RFC 7512) names the token and the key. The key never leaves
the token: the token decrypts the wrapped data key, and the candidates go to
the data for confirmation like any other ``KeySource`` (unlock.py).

Tokens differ in what they decrypt. SoftHSM 2.6.1 refuses OAEP with SHA-256
(``CKR_ARGUMENTS_BAD``); a YubiKey only does raw RSA and its library removes
the padding. So each padding is first asked of the token, and when the token
refuses the mechanism (not when the padding fails to decode), the raw RSA
result (``CKM_RSA_X_509``) is decoded in software instead (pkcs11unwrap.py).

PINs: asked of the caller's ``pin_provider`` only when a login is needed, at
most once per key object, never retried after a wrong PIN (pkcs11login.py).
The session, and with it the login, ends with ``close()``.

This module owns the key object: its session, its lookup and the errors it
raises. The parts live beside it: URIs (pkcs11uri), finding and loading the
module (pkcs11modules), the token and its objects (pkcs11token), PINs and login
(pkcs11login), error classification (pkcs11errors), the mechanism order and
fallback (pkcs11unwrap), padding removal (rsapad) and ``key list`` (pkcs11list).
Their public names are re-exported here (``__all__``) so that code outside core
(the GUI, tests) keeps importing them from ``sealcheck.core.pkcs11key``; core
itself imports each from the module that defines it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ...errors import KeyNotUsable, KeyUnavailable
from ..base import Unwrapped, check_wrapped_size, spki_fingerprint
from .errors import err_name, is_pkcs11_error, not_permitted, removed_types
from .inventory import TokenKey, TokenListing, list_token_keys, list_tokens
from .login import PinProvider, PinState, logged_in_session, pin_from_file, token_identity
from .modules import default_module_paths, find_module, load_module
from .rsapad import eme_oaep_decode, eme_pkcs1_v15_decode
from .token import KeyInfo, as_int, get_attr, rsa_keys, select_token, token_serial
from .unwrap import PKCS1V15, TokenUnwrapped, unwrap_candidates
from .uri import Pkcs11Uri, build_uri, parse_uri

__all__ = [
    "PKCS1V15",
    "PinProvider",
    "Pkcs11Key",
    "Pkcs11Uri",
    "TokenKey",
    "TokenListing",
    "TokenUnwrapped",
    "build_uri",
    "default_module_paths",
    "eme_oaep_decode",
    "eme_pkcs1_v15_decode",
    "find_module",
    "list_token_keys",
    "list_tokens",
    "open_pkcs11_key",
    "parse_uri",
    "pin_from_file",
]

log = logging.getLogger("sealcheck.pkcs11")


class _SessionBox:
    """Holds the open session so that a finaliser can close it without holding the key."""

    def __init__(self) -> None:
        self.session: Any = None
        self.logged_in = False

    def close(self) -> None:
        s, self.session, self.logged_in = self.session, None, False
        if s is not None:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead session must not fail
                log.debug("closing the PKCS#11 session failed: %s", type(exc).__name__)


class Pkcs11Key:
    """An RSA private key on a PKCS#11 token (the ``KeySource`` interface).

    The key is looked up when the object is made (a login happens then only if
    the token shows no public key without one). Call ``close()`` (or use it as a
    context manager) when the operation or batch ends: the session, and with it
    the login, ends there.
    """

    def __init__(
        self,
        uri: str | Pkcs11Uri,
        *,
        module: str | Path | None = None,
        pin_provider: PinProvider | None = None,
        raw_rsa_fallback: bool = True,
        module_candidates: Sequence[str] | None = None,
    ) -> None:
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        if self.uri.pin_source is not None:
            pin_provider = pin_from_file(self.uri.pin_source)
        self._pin_provider = pin_provider
        self._raw_rsa_fallback = raw_rsa_fallback
        self.module = find_module(module, self.uri, module_candidates)
        self._lib = load_module(self.module)
        self._lock = threading.RLock()
        self._box = _SessionBox()
        self._finalizer = weakref.finalize(self, self._box.close)
        self._pin = PinState()
        self.mechanisms: dict[str, str] = {}  # padding -> how the last unwrap got (or skipped) it
        with self._guard("opening the token"):
            self._token = select_token(self._lib, self.module, self.uri)
            self.token_label: str = self._token.label
            self.token_serial: str = token_serial(self._token)
        self._token_ident = token_identity(self.module, self.token_label, self.token_serial)
        self._token_desc = f"PKCS#11 token {self.token_label!r}"
        self.label = f"{self._token_desc} key {self.uri.describe_key()}"
        try:
            self._info = self._resolve()
        except BaseException:
            self._box.close()
            raise
        if self._info.label:
            self.label = f"{self._token_desc} key {self._info.label!r}"
        elif self._info.key_id:
            self.label = f"{self._token_desc} key id {self._info.key_id.hex()}"

    # -- context management

    def close(self) -> None:
        """End the session (and so the login). The object can be used again: it logs in anew."""
        with self._lock:
            self._box.close()

    def __enter__(self) -> Pkcs11Key:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- KeySource

    @property
    def modulus_bytes(self) -> int:
        return (self._info.modulus.bit_length() + 7) // 8

    @property
    def fingerprint(self) -> str:
        return spki_fingerprint(self._info.public_key)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._info.public_key

    @property
    def key_uri(self) -> str:
        """A canonical URI for this key (token label and serial, id, label; no PIN)."""
        return build_uri(
            token=self.token_label,
            serial=self.token_serial or None,
            object_label=self._info.label,
            key_id=self._info.key_id,
            module_path=self.uri.module_path,
        )

    def unwrap_candidates(self, wrapped: bytes) -> Iterator[Unwrapped]:
        check_wrapped_size(wrapped, self.modulus_bytes, None)
        # Computed at once under the lock (unlock.py lists them all anyway), so that
        # no session state is held across a suspended generator.
        with self._lock:
            cands = self._unwrap_all(bytes(wrapped))
        try:
            yield from cands
        finally:
            del cands

    # -- internals

    def _guard(self, what: str) -> _Guard:
        return _Guard(self, what)

    def _drop_session(self) -> None:
        self._box.close()

    def _session(self, *, login: bool) -> Any:
        box = self._box
        if box.session is not None and (box.logged_in or not login):
            return box.session
        if login:
            box.close()
            box.session = logged_in_session(
                self._token,
                self._token_desc,
                self._token_ident,
                self._pin_provider,
                self.label,
                self._pin,
            )
            box.logged_in = True
            return box.session
        box.session = self._token.open()
        box.logged_in = False
        return box.session

    def _login_possible(self, *, to_look: bool = False) -> bool:
        """Whether a login could show more. ``to_look``: only if a PIN can be had, since a
        lookup that fails without a login should list what is visible, not ask for a PIN."""
        from pkcs11 import TokenFlag

        flags = self._token.flags
        if not flags & TokenFlag.LOGIN_REQUIRED or self._box.logged_in:
            return False
        if to_look:
            return self._pin_provider is not None or bool(
                flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH
            )
        return True

    def _resolve(self) -> KeyInfo:
        """Find the key pair; log in only if nothing matching is visible without it."""
        u = self.uri
        with self._guard("looking up the key"):
            keys = rsa_keys(self._session(login=False), u.object, u.id)
            if not keys and self._login_possible(to_look=True):
                keys = rsa_keys(self._session(login=True), u.object, u.id)
            if len(keys) == 1:
                return keys[0]
            everything = rsa_keys(self._session(login=False))
        seen = ", ".join(k.describe() for k in everything) or "none"
        hidden = (
            "" if self._box.logged_in else " (private keys may be hidden until login: give the PIN)"
        )
        if not keys:
            raise KeyUnavailable(
                f"no RSA key with {u.describe_key()} on {self._token_desc}; RSA keys visible: "
                f"{seen}{hidden}"
            )
        raise KeyUnavailable(
            f"several RSA keys on {self._token_desc} match {u.describe_key()}: "
            f"{', '.join(k.describe() for k in keys)}; add object= or id= to the pkcs11: URI"
        )

    def _find_private(self, session: Any) -> Any | None:
        from pkcs11 import Attribute, KeyType, ObjectClass

        attrs: dict[Any, Any] = {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
        }
        if self._info.key_id is not None:
            attrs[Attribute.ID] = self._info.key_id
        elif self._info.label is not None:
            attrs[Attribute.LABEL] = self._info.label
        for obj in session.get_objects(attrs):
            mod = get_attr(obj, Attribute.MODULUS)
            if mod is None or as_int(mod) == self._info.modulus:
                return obj
        return None

    def _private_key(self) -> Any:
        from pkcs11 import Attribute

        key = self._find_private(self._session(login=False))
        if key is None and self._login_possible():
            key = self._find_private(self._session(login=True))
        if key is None:
            raise KeyNotUsable(
                f"{self._token_desc} holds only the public key of {self.label}"
                + ("" if self._box.logged_in else " (or its private key needs a login)")
            )
        if get_attr(key, Attribute.DECRYPT, True) is False:
            raise KeyNotUsable(
                f"{self.label} is not allowed to decrypt (CKA_DECRYPT is false, e.g. a signing "
                "key): it cannot unwrap a data key; use the token's decryption (key management) "
                "key"
            )
        return key

    def _decrypt(self, key: Any, data: bytes, mechanism: Any, param: Any = None) -> bytes:
        """One C_Decrypt (a seam for fault-injection tests)."""
        if param is None:
            return bytes(key.decrypt(data, mechanism=mechanism))
        return bytes(key.decrypt(data, mechanism=mechanism, mechanism_param=param))

    def _unwrap_all(self, wrapped: bytes) -> list[Unwrapped]:
        notes: dict[str, str] = {}
        self.mechanisms = notes
        with self._guard("unwrapping the data key"):
            key = self._private_key()
            out = unwrap_candidates(
                lambda mechanism, param: self._decrypt(key, wrapped, mechanism, param),
                self.modulus_bytes,
                raw_rsa_fallback=self._raw_rsa_fallback,
                notes=notes,
            )
        for name, note in notes.items():
            log.debug("%s %s: %s", self.label, name, note)
        return out


class _Guard:
    """Turns PKCS#11 failures into typed errors; a lost token drops the session."""

    def __init__(self, key: Pkcs11Key, what: str) -> None:
        self._key = key
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None or not is_pkcs11_error(exc):
            return
        desc = getattr(self._key, "_token_desc", "the PKCS#11 token")
        if isinstance(exc, removed_types()):
            self._key._drop_session()
            raise KeyUnavailable(
                f"{desc} was removed or stopped responding while {self._what} "
                f"({err_name(exc)}); reinsert it and run again"
            ) from None
        if not_permitted(exc):
            raise KeyNotUsable(
                f"{getattr(self._key, 'label', desc)} is not allowed to decrypt "
                "(CKR_KEY_FUNCTION_NOT_PERMITTED): use the token's decryption key"
            ) from None
        import pkcs11

        if isinstance(exc, pkcs11.UserNotLoggedIn):
            self._key._drop_session()
            raise KeyUnavailable(
                f"{desc} logged out while {self._what} (another program or key closed the "
                "login); run again"
            ) from None
        raise KeyUnavailable(f"{desc} failed while {self._what} ({err_name(exc)})") from None


def open_pkcs11_key(
    uri: str,
    *,
    module: str | Path | None = None,
    pin_provider: PinProvider | None = None,
    raw_rsa_fallback: bool = True,
) -> Pkcs11Key:
    """``--key pkcs11:…``: the key source for an RFC 7512 URI.

    ``module`` is ``--pkcs11-module`` (it wins over the URI's module-path);
    ``pin_provider`` is asked only if a login is needed, at most once; the URI's
    ``pin-source=file:`` wins over it.
    """
    return Pkcs11Key(
        uri, module=module, pin_provider=pin_provider, raw_rsa_fallback=raw_rsa_fallback
    )
