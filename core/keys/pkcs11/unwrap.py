"""Which decryption mechanisms a token is asked for, in which order, and the raw-RSA fallback.

A wrapped data key does not say its padding, so every padding Sealcheck knows
is tried and each result goes to the data for confirmation (unlock.py). Each
padding is first asked of the token (``CKM_RSA_PKCS_OAEP``, ``CKM_RSA_PKCS``).
Only when the token *refuses* the mechanism (SoftHSM 2.6.1 refuses OAEP with
SHA-256; a YubiKey does raw RSA only) is the raw result (``CKM_RSA_X_509``)
asked for, once, and decoded in software (rsapad.py). A padding that merely
fails to decode is not a refusal: it is recorded and the next one is tried.

Every candidate secret and the raw RSA block are overwritten if anything fails
half-way, and the raw block also when all went well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base import Unwrapped
from .errors import err_name, refused_types, undecodable_types
from .rsapad import eme_oaep_decode, eme_pkcs1_v15_decode

PKCS1V15 = "PKCS#1 v1.5"

# One C_Decrypt of the wrapped key with (mechanism, mechanism parameter or None).
Decrypt = Callable[[Any, Any], bytes]


@dataclass(frozen=True)
class TokenUnwrapped(Unwrapped):
    """A candidate from a token, with how the token produced it."""

    mechanism: str = ""


@dataclass(frozen=True)
class _Oaep:
    name: str  # as in keys.OAEP_VARIANTS
    hash_name: str
    mgf_hash_name: str


_OAEP = (
    _Oaep("OAEP-SHA256", "sha256", "sha256"),
    _Oaep("OAEP-SHA1", "sha1", "sha1"),
    _Oaep("OAEP-SHA256/MGF1-SHA1", "sha256", "sha1"),
)


def _oaep_param(spec: _Oaep) -> tuple[Any, Any, None]:
    from pkcs11 import MGF, Mechanism

    ck_hash = {"sha256": Mechanism.SHA256, "sha1": Mechanism.SHA_1}[spec.hash_name]
    ck_mgf = {"sha256": MGF.SHA256, "sha1": MGF.SHA1}[spec.mgf_hash_name]
    return (ck_hash, ck_mgf, None)


def unwrap_candidates(
    decrypt: Decrypt, k: int, *, raw_rsa_fallback: bool, notes: dict[str, str]
) -> list[Unwrapped]:
    """Every padding's candidate for the wrapped key ``decrypt`` works on (``k``: the
    modulus length in bytes). ``notes`` gets, per padding, how it was got or why not.

    PKCS#11 errors other than "refused" and "does not decode" (a removed token, a
    logout) propagate, for the caller to turn into a typed error.
    """
    from pkcs11 import Mechanism

    out: list[Unwrapped] = []
    raw: bytearray | None = None
    raw_refusal: str | None = None
    refused = refused_types()
    undecodable = undecodable_types()

    def get_raw() -> bytearray | None:
        nonlocal raw, raw_refusal
        if raw is None and raw_refusal is None:
            try:
                raw = bytearray(decrypt(Mechanism.RSA_X_509, None))
            except refused + undecodable as exc:
                raw_refusal = err_name(exc)
        return raw

    try:
        for spec in _OAEP:
            why: str
            try:
                res = decrypt(Mechanism.RSA_PKCS_OAEP, _oaep_param(spec))
            except refused as exc:
                why = f"the token refused CKM_RSA_PKCS_OAEP with these parameters ({err_name(exc)})"
            except undecodable:
                notes[spec.name] = "CKM_RSA_PKCS_OAEP: does not decode"
                continue
            else:
                notes[spec.name] = "CKM_RSA_PKCS_OAEP"
                out.append(TokenUnwrapped(spec.name, bytearray(res), "CKM_RSA_PKCS_OAEP"))
                continue
            if not raw_rsa_fallback:
                notes[spec.name] = f"skipped: {why}; the raw-RSA fallback is off"
                continue
            em = get_raw()
            if em is None:
                notes[spec.name] = f"skipped: {why}, and CKM_RSA_X_509 too ({raw_refusal})"
                continue
            secret = eme_oaep_decode(em, k, spec.hash_name, spec.mgf_hash_name)
            how = f"CKM_RSA_X_509 + software EME-OAEP ({why})"
            if secret is None:
                notes[spec.name] = how + ": does not decode"
                continue
            notes[spec.name] = how
            out.append(TokenUnwrapped(spec.name, secret, how))
        try:
            res = decrypt(Mechanism.RSA_PKCS, None)
        except refused as exc:
            why = f"the token refused CKM_RSA_PKCS ({err_name(exc)})"
            em = get_raw() if raw_rsa_fallback else None
            if em is None:
                notes[PKCS1V15] = f"skipped: {why}" + (
                    f", and CKM_RSA_X_509 too ({raw_refusal})" if raw_refusal else ""
                )
            else:
                how = f"CKM_RSA_X_509 + software EME-PKCS1-v1_5 ({why})"
                secret = eme_pkcs1_v15_decode(em, k)
                notes[PKCS1V15] = how if secret is not None else how + ": does not decode"
                if secret is not None:
                    out.append(TokenUnwrapped(PKCS1V15, secret, how))
        except undecodable:
            notes[PKCS1V15] = "CKM_RSA_PKCS: does not decode"
        else:
            notes[PKCS1V15] = "CKM_RSA_PKCS"
            out.append(TokenUnwrapped(PKCS1V15, bytearray(res), "CKM_RSA_PKCS"))
    except BaseException:
        for c in out:
            c.secret[:] = bytes(len(c.secret))
        raise
    finally:
        if raw is not None:
            raw[:] = bytes(len(raw))
    return out
