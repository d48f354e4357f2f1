"""Token PINs and logging in: a PIN is asked once, tried once, never retried, never kept.

Tokens lock the user PIN after a few wrong tries (a YubiKey PIV after three),
and unlocking needs the PUK or SO PIN that a restore-test operator may not
have. So a PIN the token rejected is never given to that token again in this
process: neither by the same key object (``PinState``) nor by another one
asked through the same provider (``_REJECTED``). The PIN lives only in local
variables for the C_Login call; afterwards only the session's login state
remains, and it ends when the session is closed. No PIN is logged or put into
an exception message.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import KeyUnavailable
from ..prompt import SecretProvider, read_secret_file
from .errors import err_name, removed_types

PinProvider = SecretProvider


def token_identity(module: str, label: str, serial: str) -> str:
    """How the wrong-PIN memory tells tokens apart: module, serial and label."""
    return f"{module}\x00{serial}\x00{label}"


# A PIN a provider gave that the token rejected is never given to that token again:
# provider -> identities of the tokens that rejected it.
_REJECTED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_REJECTED_LOCK = threading.Lock()


def _rejected_before(provider: Any, token_ident: str) -> bool:
    with _REJECTED_LOCK:
        try:
            return token_ident in _REJECTED.get(provider, set())
        except TypeError:
            return False


def _remember_rejected(provider: Any, token_ident: str) -> None:
    with _REJECTED_LOCK:
        try:
            _REJECTED.setdefault(provider, set()).add(token_ident)
        except TypeError:
            pass  # not weak-referenceable: the key object's own flag still stops retries


def pin_from_file(path: Path) -> PinProvider:
    """A PIN provider reading ``path`` when asked (trailing newlines removed)."""
    return lambda: read_secret_file(path, "PIN file")


@dataclass
class PinState:
    """What happened to one key's (or one listed token's) PIN: a rejected or missing PIN
    is never asked again; ``locked`` lets a caller tell a locked PIN from other failures."""

    rejected: bool = False
    declined: bool = False
    locked: bool = False


def logged_in_session(
    token: Any,
    token_desc: str,
    token_ident: str,
    provider: PinProvider | None,
    what: str,
    state: PinState,
) -> Any:
    """Open a logged-in session, asking ``provider`` once. Never retries."""
    import pkcs11
    from pkcs11 import PROTECTED_AUTH, TokenFlag

    flags = token.flags
    if flags & TokenFlag.USER_PIN_LOCKED:
        state.locked = True
        raise KeyUnavailable(
            f"the user PIN of {token_desc} is locked (too many wrong PINs): unblock it with the "
            "token's PUK or SO PIN, then run again"
        )
    pin_arg: Any
    if flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
        pin_arg = PROTECTED_AUTH  # the PIN pad or the token's own prompt
    else:
        if state.rejected or _rejected_before(provider, token_ident):
            state.rejected = True
            raise KeyUnavailable(
                f"wrong PIN for {token_desc} earlier in this run; it is not tried again (tokens "
                "lock after a few wrong PINs)"
            )
        pin = provider() if provider is not None and not state.declined else None
        if not pin:
            state.declined = True
            raise KeyUnavailable(
                f"{token_desc} needs its PIN to use {what}: give --pin-file (or pin-source= in "
                "the URI), or run interactively to be asked"
            )
        try:
            pin_arg = bytes(pin).decode("utf-8")
        except UnicodeDecodeError:
            raise KeyUnavailable(f"the PIN given for {token_desc} is not UTF-8 text") from None
        finally:
            del pin
    try:
        return token.open(user_pin=pin_arg)
    except pkcs11.PinIncorrect:
        state.rejected = True
        if provider is not None:
            _remember_rejected(provider, token_ident)
        raise KeyUnavailable(
            f"wrong PIN for {token_desc}; it was not retried (tokens lock after a few wrong "
            "PINs): check the PIN and run again"
        ) from None
    except pkcs11.PinLocked:
        state.locked = True
        raise KeyUnavailable(
            f"the user PIN of {token_desc} is locked (too many wrong PINs): unblock it with the "
            "token's PUK or SO PIN, then run again"
        ) from None
    except (pkcs11.PinExpired, pkcs11.PinInvalid, pkcs11.PinLenRange) as exc:
        state.rejected = True
        if provider is not None:
            _remember_rejected(provider, token_ident)
        raise KeyUnavailable(
            f"{token_desc} refused the PIN ({err_name(exc)}); it was not retried"
        ) from None
    except pkcs11.UserAlreadyLoggedIn:
        # Another session of this process logged in: the login is shared.
        return token.open()
    except pkcs11.PKCS11Error as exc:
        if isinstance(exc, removed_types()):
            raise KeyUnavailable(
                f"{token_desc} was removed or stopped responding during login "
                f"({err_name(exc)}); reinsert it and run again"
            ) from None
        raise KeyUnavailable(f"login to {token_desc} failed ({err_name(exc)})") from None
    finally:
        pin_arg = None
