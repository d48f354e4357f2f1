"""RSA private keys on PKCS#11 tokens (YubiKey PIV, smart cards, HSMs; SoftHSM2 in tests).

A ``pkcs11:`` URI (RFC 7512) names the token and the key. The key never leaves
the token: the token decrypts the wrapped data key, and the candidates go to
the data for confirmation like any other ``KeySource`` (unlock.py).

Tokens differ in what they decrypt. SoftHSM 2.6.1 refuses OAEP with SHA-256
(``CKR_ARGUMENTS_BAD``); a YubiKey only does raw RSA and its library removes
the padding. So each padding is first asked of the token, and when the token
refuses the mechanism (not when the padding fails to decode), the raw RSA
result (``CKM_RSA_X_509``) is decoded here instead (RFC 8017 §7.1.2, §7.2.2).

PINs: asked of the caller's ``pin_provider`` only when a login is needed, at
most once per key object, never retried after a wrong PIN (tokens lock after a
few), never stored: only the session's login state outlives the call to
C_Login, and it ends with ``close()``. Neither the PIN nor an unwrapped secret
is ever logged or put in an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import sysconfig
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import KeyNotUsable, KeyUnavailable, UsageError
from .keys import Unwrapped, check_wrapped_size, spki_fingerprint

log = logging.getLogger("sealcheck.pkcs11")

PinProvider = Callable[[], bytes | None]

PKCS1V15 = "PKCS#1 v1.5"


# --- RFC 7512 URIs ----------------------------------------------------------------

_PATH_ATTRS = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "object",
        "id",
        "type",
        "slot-id",
        "slot-description",
        "slot-manufacturer",
        "library-manufacturer",
        "library-description",
        "library-version",
    }
)
_QUERY_ATTRS = frozenset({"module-path", "module-name", "pin-source", "pin-value"})
_OBJECT_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of a ``pkcs11:`` URI Sealcheck uses (RFC 7512)."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: Path | None = None

    def describe_key(self) -> str:
        parts = []
        if self.object is not None:
            parts.append(f"label {self.object!r}")
        if self.id is not None:
            parts.append(f"id {self.id.hex()}")
        return " and ".join(parts) if parts else "any RSA key"

    def describe_token(self) -> str:
        parts = []
        if self.token is not None:
            parts.append(f"label {self.token!r}")
        for name, value in (
            ("serial", self.serial),
            ("manufacturer", self.manufacturer),
            ("model", self.model),
            ("slot-id", self.slot_id),
            ("slot-description", self.slot_description),
            ("slot-manufacturer", self.slot_manufacturer),
        ):
            if value is not None:
                parts.append(f"{name} {value!r}")
        return " and ".join(parts) if parts else "any token"


def _decode_component(raw: str, name: str, *, binary: bool = False) -> Any:
    if _BAD_ESCAPE.search(raw):
        raise UsageError(f"malformed pkcs11: URI: bad percent-escape in the {name} attribute")
    data = unquote_to_bytes(raw)
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"malformed pkcs11: URI: the {name} attribute is not UTF-8") from None


def _pin_source_path(value: str) -> Path:
    if value.startswith("file://"):
        rest = value[len("file://") :]
        if rest and not rest.startswith("/"):  # file://host/path: only localhost
            host, _, path = rest.partition("/")
            if host not in ("", "localhost"):
                raise UsageError("pin-source: only local files (file:/path) are supported")
            rest = "/" + path
        return Path(rest)
    if value.startswith("file:"):
        return Path(value[len("file:") :])
    if value.startswith("|"):
        raise UsageError("pin-source: PIN programs (|command) are not supported; use file:/path")
    if not value:
        raise UsageError("malformed pkcs11: URI: empty pin-source")
    return Path(value)


def parse_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI; malformed ones raise ``UsageError``.

    A PIN written in the URI (``pin-value``) is refused: the URI is shown in
    reports and process lists. Use ``pin-source=file:/path`` or ``--pin-file``.
    """
    if not text[:7].lower() == "pkcs11:":
        raise UsageError("not a pkcs11: URI (it must start with 'pkcs11:')")
    body = text[7:]
    if "#" in body:
        raise UsageError("malformed pkcs11: URI: '#' is not allowed (percent-encode it as %23)")
    path, _, query = body.partition("?")
    fields: dict[str, Any] = {}
    for part in path.split(";") if path else []:
        if not part:
            continue  # tolerate a trailing ';'
        name, eq, raw = part.partition("=")
        name = name.lower()
        if not eq:
            raise UsageError(f"malformed pkcs11: URI: {name!r} has no '=value'")
        if name not in _PATH_ATTRS and not name.startswith("x-"):
            raise UsageError(
                f"malformed pkcs11: URI: unknown attribute {name!r} (known: "
                f"{', '.join(sorted(_PATH_ATTRS))})"
            )
        if name in fields:
            raise UsageError(f"malformed pkcs11: URI: {name!r} is given twice")
        fields[name] = _decode_component(raw, name, binary=name == "id")
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, eq, raw = part.partition("=")
        name = name.lower()
        if name == "pin-value":
            # Never echo the value.
            raise UsageError(
                "a PIN inside the pkcs11: URI (pin-value) is refused: it would show in reports "
                "and process lists; use pin-source=file:/path or --pin-file"
            )
        if not eq:
            raise UsageError(f"malformed pkcs11: URI: query attribute {name!r} has no '=value'")
        if name not in _QUERY_ATTRS and not name.startswith("x-"):
            raise UsageError(
                f"malformed pkcs11: URI: unknown query attribute {name!r} (known: module-path, "
                "module-name, pin-source)"
            )
        if name in fields:
            raise UsageError(f"malformed pkcs11: URI: {name!r} is given twice")
        fields[name] = _decode_component(raw, name)

    typ = fields.get("type")
    if typ is not None and typ not in _OBJECT_TYPES:
        raise UsageError(
            f"malformed pkcs11: URI: type={typ!r}; it is one of {', '.join(sorted(_OBJECT_TYPES))}"
        )
    if typ in ("secret-key", "data"):
        raise UsageError(f"type={typ} cannot unwrap an RSA-wrapped data key: use type=private")
    slot_id: int | None = None
    if "slot-id" in fields:
        try:
            slot_id = int(fields["slot-id"], 10)
        except ValueError:
            raise UsageError("malformed pkcs11: URI: slot-id is not a decimal number") from None
    if "id" in fields and not fields["id"]:
        raise UsageError("malformed pkcs11: URI: empty id")
    return Pkcs11Uri(
        token=fields.get("token"),
        manufacturer=fields.get("manufacturer"),
        serial=fields.get("serial"),
        model=fields.get("model"),
        object=fields.get("object"),
        id=fields.get("id"),
        type=typ,
        slot_id=slot_id,
        slot_description=fields.get("slot-description"),
        slot_manufacturer=fields.get("slot-manufacturer"),
        library_manufacturer=fields.get("library-manufacturer"),
        library_description=fields.get("library-description"),
        module_path=fields.get("module-path") or None,
        module_name=fields.get("module-name") or None,
        pin_source=_pin_source_path(fields["pin-source"]) if "pin-source" in fields else None,
    )


def _q(value: str) -> str:
    return quote(value, safe="")


def build_uri(
    *,
    token: str | None = None,
    serial: str | None = None,
    object_label: str | None = None,
    key_id: bytes | None = None,
    module_path: str | None = None,
) -> str:
    """A ``pkcs11:`` URI for ``--key`` (the type is always ``private``)."""
    parts = []
    if token is not None:
        parts.append(f"token={_q(token)}")
    if serial:
        parts.append(f"serial={_q(serial)}")
    if key_id:
        parts.append("id=" + "".join(f"%{b:02X}" for b in key_id))
    if object_label:
        parts.append(f"object={_q(object_label)}")
    parts.append("type=private")
    uri = "pkcs11:" + ";".join(parts)
    if module_path:
        uri += "?module-path=" + quote(module_path, safe="/:\\")
    return uri


# --- modules --------------------------------------------------------------------

_OPENSC = "opensc-pkcs11"
_YKCS11 = "libykcs11"
_SOFTHSM = "libsofthsm2"


def default_module_paths() -> tuple[str, ...]:
    """Where OpenSC, ykcs11 and SoftHSM2 usually live, in that order of preference."""
    if sys.platform == "win32":
        return (
            r"C:\Windows\System32\opensc-pkcs11.dll",
            r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll",
            r"C:\Program Files\Yubico\Yubico PIV Tool\bin\libykcs11.dll",
            r"C:\Program Files (x86)\Yubico\Yubico PIV Tool\bin\libykcs11.dll",
            r"C:\SoftHSM2\lib\softhsm2-x64.dll",
            r"C:\SoftHSM2\lib\softhsm2.dll",
        )
    if sys.platform == "darwin":
        return (
            "/Library/OpenSC/lib/opensc-pkcs11.so",
            "/opt/homebrew/lib/opensc-pkcs11.so",
            "/usr/local/lib/opensc-pkcs11.so",
            "/opt/homebrew/lib/libykcs11.dylib",
            "/usr/local/lib/libykcs11.dylib",
            "/opt/homebrew/lib/softhsm/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
        )
    arch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    triplets = [str(arch)] + [t for t in ("x86_64-linux-gnu", "aarch64-linux-gnu") if t != arch]
    paths: list[str] = []
    for t in triplets:
        paths += [f"/usr/lib/{t}/opensc-pkcs11.so", f"/usr/lib/{t}/pkcs11/opensc-pkcs11.so"]
    paths += ["/usr/lib64/opensc-pkcs11.so", "/usr/lib64/pkcs11/opensc-pkcs11.so"]
    paths += ["/usr/lib/opensc-pkcs11.so", "/usr/lib/pkcs11/opensc-pkcs11.so"]
    for t in triplets:
        paths.append(f"/usr/lib/{t}/libykcs11.so.2")
    paths += [
        "/usr/lib64/libykcs11.so.2",
        "/usr/lib/libykcs11.so.2",
        "/usr/local/lib/libykcs11.so.2",
    ]
    paths.append("/usr/lib/softhsm/libsofthsm2.so")
    for t in triplets:
        paths.append(f"/usr/lib/{t}/softhsm/libsofthsm2.so")
    paths += ["/usr/lib64/pkcs11/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"]
    return tuple(paths)


def find_module(
    explicit: str | Path | None = None,
    uri: Pkcs11Uri | None = None,
    candidates: Sequence[str] | None = None,
) -> str:
    """The PKCS#11 module to load: ``explicit`` (``--pkcs11-module``), else the URI's
    ``module-path`` (or ``module-name``), else the first existing usual one."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise KeyUnavailable(f"no PKCS#11 module at {p} (--pkcs11-module)")
        return str(p)
    if uri is not None and uri.module_path:
        p = Path(uri.module_path)
        if not p.is_file():
            raise KeyUnavailable(f"no PKCS#11 module at {p} (module-path in the pkcs11: URI)")
        return str(p)
    usual = tuple(candidates) if candidates is not None else default_module_paths()
    if uri is not None and uri.module_name:
        want = uri.module_name.lower()
        for c in usual:
            stem = Path(c).name.lower().split(".")[0]
            if stem in (want, "lib" + want) and Path(c).is_file():
                return c
        raise KeyUnavailable(
            f"no PKCS#11 module named {uri.module_name!r} in the usual places; give its path "
            "with --pkcs11-module or module-path= in the URI"
        )
    for c in usual:
        if Path(c).is_file():
            return c
    raise KeyUnavailable(
        "no PKCS#11 module found (looked for OpenSC opensc-pkcs11, Yubico libykcs11 and "
        "SoftHSM2 libsofthsm2 in the usual places); install one, or give its path with "
        "--pkcs11-module"
    )


def _load_module(path: str) -> Any:
    import pkcs11

    try:
        lib = pkcs11.lib(path)
    except pkcs11.PKCS11Error as exc:
        raise KeyUnavailable(
            f"cannot load the PKCS#11 module {path}: {_err_name(exc)} (is it a PKCS#11 library "
            "for this platform?)"
        ) from None
    except OSError as exc:
        raise KeyUnavailable(f"cannot load the PKCS#11 module {path}: {exc.strerror}") from None
    return lib


# --- errors -----------------------------------------------------------------------


def _err_name(exc: BaseException) -> str:
    """The error's class (and the PKCS#11 code python-pkcs11 left unmapped): never data."""
    msg = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else ""
    m = re.search(r"0x[0-9a-fA-F]+", msg) if "Unmapped" in msg else None
    if m:
        code = int(m.group(0), 16)
        return _CKR_NAMES.get(code, f"CKR 0x{code:X}")
    return type(exc).__name__


_CKR_NAMES = {
    0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED",
    0x1B8: "CKR_OPERATION_CANCEL_FAILED",
}


def _removed_types() -> tuple[type[BaseException], ...]:
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


def _refused_types() -> tuple[type[BaseException], ...]:
    """Errors meaning "this token does not do this mechanism/parameters"."""
    import pkcs11

    return (
        pkcs11.MechanismInvalid,
        pkcs11.MechanismParamInvalid,
        pkcs11.ArgumentsBad,
        pkcs11.FunctionNotSupported,
        pkcs11.KeyTypeInconsistent,
    )


def _undecodable_types() -> tuple[type[BaseException], ...]:
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


def _not_permitted(exc: BaseException) -> bool:
    return _err_name(exc) == "CKR_KEY_FUNCTION_NOT_PERMITTED"


# --- RFC 8017 decoding of raw RSA output ---------------------------------------------------


def _mgf1(seed: bytes | bytearray, length: int, hash_name: str) -> bytearray:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.new(hash_name, bytes(seed) + counter.to_bytes(4, "big")).digest()
        counter += 1
    del out[length:]
    return out


def eme_oaep_decode(
    em: bytes | bytearray, k: int, hash_name: str, mgf_hash_name: str, label: bytes = b""
) -> bytearray | None:
    """RFC 8017 §7.1.2 step 3: the message inside the raw RSA output ``em``, or None.

    ``em`` is left-padded with zero bytes to ``k`` (tokens may strip them). Not
    constant-time: acceptable for an offline restore tool, not for an oracle.
    """
    if len(em) > k:
        return None
    h_len = hashlib.new(hash_name).digest_size
    if k < 2 * h_len + 2:
        return None
    buf = bytearray(k - len(em)) + bytearray(em)
    seed = bytearray()
    db = bytearray()
    try:
        y = buf[0]
        masked_seed = buf[1 : 1 + h_len]
        masked_db = buf[1 + h_len :]
        seed_mask = _mgf1(masked_db, h_len, mgf_hash_name)
        seed = bytearray(a ^ b for a, b in zip(masked_seed, seed_mask, strict=True))
        db_mask = _mgf1(seed, k - h_len - 1, mgf_hash_name)
        db = bytearray(a ^ b for a, b in zip(masked_db, db_mask, strict=True))
        l_hash = hashlib.new(hash_name, label).digest()
        if y != 0 or bytes(db[:h_len]) != l_hash:
            return None
        i = h_len
        while i < len(db) and db[i] == 0:
            i += 1
        if i >= len(db) or db[i] != 1:
            return None
        return bytearray(db[i + 1 :])
    finally:
        for b in (buf, seed, db):
            b[:] = bytes(len(b))


def eme_pkcs1_v15_decode(em: bytes | bytearray, k: int) -> bytearray | None:
    """RFC 8017 §7.2.2 step 3: ``00 02 PS(>= 8 non-zero) 00 M`` -> M, or None."""
    if len(em) > k or k < 11:
        return None
    buf = bytearray(k - len(em)) + bytearray(em)
    try:
        if buf[0] != 0 or buf[1] != 2:
            return None
        sep = buf.find(0, 2)
        if sep < 10:  # also -1: no separator
            return None
        return bytearray(buf[sep + 1 :])
    finally:
        buf[:] = bytes(len(buf))


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


@dataclass(frozen=True)
class TokenUnwrapped(Unwrapped):
    """A candidate from a token, with how the token produced it."""

    mechanism: str = ""


# --- token and object lookup -----------------------------------------------------------------


def _token_serial(token: Any) -> str:
    s = token.serial
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    return str(s).strip().rstrip("\x00")


def _token_matches(uri: Pkcs11Uri, token: Any) -> bool:
    slot = token.slot
    checks: tuple[tuple[Any, Callable[[], Any]], ...] = (
        (uri.token, lambda: token.label),
        (uri.serial, lambda: _token_serial(token)),
        (uri.manufacturer, lambda: token.manufacturer_id),
        (uri.model, lambda: token.model),
        (uri.slot_id, lambda: slot.slot_id),
        (uri.slot_description, lambda: slot.slot_description),
        (uri.slot_manufacturer, lambda: slot.manufacturer_id),
    )
    return all(want is None or want == get() for want, get in checks)


def _present_tokens(lib: Any, module: str) -> list[Any]:
    try:
        from pkcs11 import TokenFlag

        tokens = [slot.get_token() for slot in lib.get_slots(token_present=True)]
        # SoftHSM always shows one free, uninitialised token: nothing to use there.
        return [t for t in tokens if t.flags & TokenFlag.TOKEN_INITIALIZED]
    except Exception as exc:
        if _is_pkcs11_error(exc):
            raise KeyUnavailable(
                f"the PKCS#11 module {module} cannot list its tokens ({_err_name(exc)}); for smart "
                "cards and YubiKeys, is pcscd running?"
            ) from None
        raise


def _is_pkcs11_error(exc: BaseException) -> bool:
    import pkcs11

    return isinstance(exc, pkcs11.PKCS11Error)


def _select_token(lib: Any, module: str, uri: Pkcs11Uri) -> Any:
    tokens = _present_tokens(lib, module)
    if not tokens:
        raise KeyUnavailable(
            f"no token is present for the PKCS#11 module {module}: insert the token (for smart "
            "cards and YubiKeys, check that pcscd is running)"
        )
    matching = [t for t in tokens if _token_matches(uri, t)]
    if len(matching) == 1:
        return matching[0]
    present = ", ".join(f"{t.label!r} (serial {_token_serial(t)})" for t in tokens)
    if not matching:
        raise KeyUnavailable(
            f"no PKCS#11 token with {uri.describe_token()} in {module}; tokens present: {present}"
        )
    raise KeyUnavailable(
        f"several PKCS#11 tokens match {uri.describe_token()}: {present}; add token= or serial= "
        "to the pkcs11: URI"
    )


@dataclass
class _KeyInfo:
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


def _attr(obj: Any, attribute: Any, default: Any = None) -> Any:
    import pkcs11

    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive, KeyError):
        return default


def _int(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(value)


def _rsa_keys(
    session: Any, label: str | None = None, key_id: bytes | None = None
) -> list[_KeyInfo]:
    """RSA keys visible in this session, a private key and its public key merged (by modulus)."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    found: dict[int, _KeyInfo] = {}
    order: list[int] = []
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        attrs: dict[Any, Any] = {Attribute.CLASS: cls, Attribute.KEY_TYPE: KeyType.RSA}
        if label is not None:
            attrs[Attribute.LABEL] = label
        if key_id is not None:
            attrs[Attribute.ID] = key_id
        for obj in session.get_objects(attrs):
            mod = _attr(obj, Attribute.MODULUS)
            exp = _attr(obj, Attribute.PUBLIC_EXPONENT)
            if mod is None or exp is None:
                continue
            n = _int(mod)
            lab = _attr(obj, Attribute.LABEL) or None
            kid = _attr(obj, Attribute.ID) or None
            info = found.get(n)
            if info is None:
                info = _KeyInfo(lab, bytes(kid) if kid else None, n, _int(exp), False, None)
                found[n] = info
                order.append(n)
            if cls == ObjectClass.PRIVATE_KEY:
                info.has_private = True
                dec = _attr(obj, Attribute.DECRYPT)
                info.can_decrypt = None if dec is None else bool(dec)
                if lab:
                    info.label = lab
                if kid:
                    info.key_id = bytes(kid)
    return [found[n] for n in order]


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
    """A PIN provider reading ``path`` when asked (one trailing newline is removed)."""

    def get() -> bytes | None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the PIN file {path}: {exc.strerror}") from None
        return data.rstrip(b"\r\n")

    return get


@dataclass
class _PinState:
    """What happened to this key's PIN: a rejected or missing PIN is never asked again."""

    rejected: bool = False
    declined: bool = False


def _login(
    token: Any,
    token_desc: str,
    token_ident: str,
    provider: PinProvider | None,
    what: str,
    state: _PinState,
) -> Any:
    """Open a logged-in session, asking ``provider`` once. Never retries."""
    import pkcs11
    from pkcs11 import PROTECTED_AUTH, TokenFlag

    flags = token.flags
    if flags & TokenFlag.USER_PIN_LOCKED:
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
        raise KeyUnavailable(
            f"the user PIN of {token_desc} is locked (too many wrong PINs): unblock it with the "
            "token's PUK or SO PIN, then run again"
        ) from None
    except (pkcs11.PinExpired, pkcs11.PinInvalid, pkcs11.PinLenRange) as exc:
        state.rejected = True
        if provider is not None:
            _remember_rejected(provider, token_ident)
        raise KeyUnavailable(
            f"{token_desc} refused the PIN ({_err_name(exc)}); it was not retried"
        ) from None
    except pkcs11.UserAlreadyLoggedIn:
        # Another session of this process logged in: the login is shared.
        return token.open()
    except pkcs11.PKCS11Error as exc:
        if isinstance(exc, _removed_types()):
            raise KeyUnavailable(
                f"{token_desc} was removed or stopped responding during login "
                f"({_err_name(exc)}); reinsert it and run again"
            ) from None
        raise KeyUnavailable(f"login to {token_desc} failed ({_err_name(exc)})") from None
    finally:
        pin_arg = None


# --- the key source ------------------------------------------------------------------------


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
        self._lib = _load_module(self.module)
        self._lock = threading.RLock()
        self._box = _SessionBox()
        self._finalizer = weakref.finalize(self, self._box.close)
        self._pin = _PinState()
        self.mechanisms: dict[str, str] = {}  # padding -> how the last unwrap got (or skipped) it
        with self._guard("opening the token"):
            self._token = _select_token(self._lib, self.module, self.uri)
            self.token_label: str = self._token.label
            self.token_serial: str = _token_serial(self._token)
        self._token_ident = f"{self.module}\x00{self.token_serial}\x00{self.token_label}"
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
            box.session = _login(
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

    def _resolve(self) -> _KeyInfo:
        """Find the key pair; log in only if nothing matching is visible without it."""
        u = self.uri
        with self._guard("looking up the key"):
            keys = _rsa_keys(self._session(login=False), u.object, u.id)
            if not keys and self._login_possible(to_look=True):
                keys = _rsa_keys(self._session(login=True), u.object, u.id)
            if len(keys) == 1:
                return keys[0]
            everything = _rsa_keys(self._session(login=False))
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
            mod = _attr(obj, Attribute.MODULUS)
            if mod is None or _int(mod) == self._info.modulus:
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
        if _attr(key, Attribute.DECRYPT, True) is False:
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
        from pkcs11 import Mechanism

        k = self.modulus_bytes
        notes: dict[str, str] = {}
        self.mechanisms = notes
        out: list[Unwrapped] = []
        raw: bytearray | None = None
        raw_refusal: str | None = None
        refused = _refused_types()
        undecodable = _undecodable_types()

        def get_raw(key: Any) -> bytearray | None:
            nonlocal raw, raw_refusal
            if raw is None and raw_refusal is None:
                try:
                    raw = bytearray(self._decrypt(key, wrapped, Mechanism.RSA_X_509))
                except refused + undecodable as exc:
                    raw_refusal = _err_name(exc)
            return raw

        try:
            with self._guard("unwrapping the data key"):
                key = self._private_key()
                for spec in _OAEP:
                    why: str
                    try:
                        res = self._decrypt(
                            key, wrapped, Mechanism.RSA_PKCS_OAEP, _oaep_param(spec)
                        )
                    except refused as exc:
                        why = (
                            "the token refused CKM_RSA_PKCS_OAEP with these parameters "
                            f"({_err_name(exc)})"
                        )
                    except undecodable:
                        notes[spec.name] = "CKM_RSA_PKCS_OAEP: does not decode"
                        continue
                    else:
                        notes[spec.name] = "CKM_RSA_PKCS_OAEP"
                        out.append(TokenUnwrapped(spec.name, bytearray(res), "CKM_RSA_PKCS_OAEP"))
                        continue
                    if not self._raw_rsa_fallback:
                        notes[spec.name] = f"skipped: {why}; the raw-RSA fallback is off"
                        continue
                    em = get_raw(key)
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
                    res = self._decrypt(key, wrapped, Mechanism.RSA_PKCS)
                except refused as exc:
                    why = f"the token refused CKM_RSA_PKCS ({_err_name(exc)})"
                    em = get_raw(key) if self._raw_rsa_fallback else None
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
        if exc is None or not _is_pkcs11_error(exc):
            return
        desc = getattr(self._key, "_token_desc", "the PKCS#11 token")
        if isinstance(exc, _removed_types()):
            self._key._drop_session()
            raise KeyUnavailable(
                f"{desc} was removed or stopped responding while {self._what} "
                f"({_err_name(exc)}); reinsert it and run again"
            ) from None
        if _not_permitted(exc):
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
        raise KeyUnavailable(f"{desc} failed while {self._what} ({_err_name(exc)})") from None


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


# --- inventory -----------------------------------------------------------------------


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


def list_token_keys(
    module: str | Path | None = None,
    pin_provider: PinProvider | None = None,
    *,
    module_candidates: Sequence[str] | None = None,
) -> list[TokenKey]:
    """Every RSA key on every present token of ``module`` (the usual ones if None).

    Without a PIN, public-key objects stand for private keys hidden until login.
    With ``pin_provider``, it is asked once (only if a token needs a login) and
    the PIN is used for each such token; a wrong PIN raises, without a retry.
    """
    import pkcs11
    from pkcs11 import TokenFlag

    path = find_module(module, None, module_candidates)
    lib = _load_module(path)
    pin_cache: list[bytes | None] = []

    def once() -> bytes | None:
        if not pin_cache and pin_provider is not None:
            pin_cache.append(pin_provider())
        return pin_cache[0] if pin_cache else None

    rows: list[TokenKey] = []
    try:
        for token in _present_tokens(lib, path):
            label = token.label
            serial = _token_serial(token)
            desc = f"PKCS#11 token {label!r}"
            login = bool(pin_provider) and bool(token.flags & TokenFlag.LOGIN_REQUIRED)
            try:
                if login:
                    session = _login(
                        token, desc, f"{path}\x00{serial}\x00{label}", once, "its keys", _PinState()
                    )
                else:
                    session = token.open()
                try:
                    keys = _rsa_keys(session)
                finally:
                    try:
                        session.close()
                    except pkcs11.PKCS11Error:
                        pass
            except pkcs11.PKCS11Error as exc:
                if isinstance(exc, _removed_types()):
                    raise KeyUnavailable(
                        f"{desc} was removed or stopped responding while listing its keys "
                        f"({_err_name(exc)})"
                    ) from None
                raise KeyUnavailable(
                    f"{desc} failed while listing its keys ({_err_name(exc)})"
                ) from None
            for k in keys:
                rows.append(
                    TokenKey(
                        token_label=label,
                        token_serial=serial,
                        object_label=k.label,
                        id_hex=k.key_id.hex() if k.key_id else None,
                        key_type="RSA",
                        size_bits=k.modulus.bit_length(),
                        fingerprint=spki_fingerprint(k.public_key),
                        can_decrypt=k.can_decrypt if k.has_private else None,
                        has_private=True if k.has_private else (False if login else None),
                        uri=build_uri(
                            token=label,
                            serial=serial or None,
                            object_label=k.label,
                            key_id=k.key_id,
                            module_path=path,
                        ),
                    )
                )
    finally:
        pin_cache.clear()
    return rows
