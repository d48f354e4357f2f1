"""How python-pkcs11's exceptions are sorted into what Sealcheck does about them.

One place decides which PKCS#11 errors mean "the token is gone", "the token
does not do this mechanism" (so the raw-RSA fallback may be tried) and "the
ciphertext does not decode with this padding" (so the next padding is tried).
Mixing up the last two would either hide a working fallback or mistake a wrong
key for a refusal, so the lists live together here.

``err_name`` is the only text taken from an exception for a message: the class
name or the CKR code, never ``str(exc)``, which a module could fill with data.
python-pkcs11 is imported inside the functions: it is an optional dependency
and loading it is not free.
"""

from __future__ import annotations

import re

_CKR_NAMES = {
    0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED",
    0x1B8: "CKR_OPERATION_CANCEL_FAILED",
}


def err_name(exc: BaseException) -> str:
    """The error's class (and the PKCS#11 code python-pkcs11 left unmapped): never data."""
    msg = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else ""
    m = re.search(r"0x[0-9a-fA-F]+", msg) if "Unmapped" in msg else None
    if m:
        code = int(m.group(0), 16)
        return _CKR_NAMES.get(code, f"CKR 0x{code:X}")
    return type(exc).__name__


def is_pkcs11_error(exc: BaseException) -> bool:
    import pkcs11

    return isinstance(exc, pkcs11.PKCS11Error)


def removed_types() -> tuple[type[BaseException], ...]:
    """Errors meaning "the token was unplugged or stopped answering"."""
    import pkcs11

    return (
        pkcs11.DeviceRemoved,
        pkcs11.TokenNotPresent,
        pkcs11.SessionClosed,
        pkcs11.SessionHandleInvalid,
        pkcs11.DeviceError,
        pkcs11.TokenNotRecognised,
        pkcs11.ObjectHandleInvalid,
        pkcs11.KeyHandleInvalid,
    )


def refused_types() -> tuple[type[BaseException], ...]:
    """Errors meaning "this token does not do this mechanism/parameters"."""
    import pkcs11

    return (
        pkcs11.MechanismInvalid,
        pkcs11.MechanismParamInvalid,
        pkcs11.ArgumentsBad,
        pkcs11.FunctionNotSupported,
        pkcs11.KeyTypeInconsistent,
    )


def undecodable_types() -> tuple[type[BaseException], ...]:
    """Errors meaning "the ciphertext does not decode with this padding"."""
    import pkcs11

    return (
        pkcs11.EncryptedDataInvalid,
        pkcs11.EncryptedDataLenRange,
        pkcs11.DataInvalid,
        pkcs11.DataLenRange,
        pkcs11.GeneralError,
        pkcs11.FunctionFailed,
    )


def not_permitted(exc: BaseException) -> bool:
    return err_name(exc) == "CKR_KEY_FUNCTION_NOT_PERMITTED"
