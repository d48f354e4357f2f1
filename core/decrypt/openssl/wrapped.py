"""The RSA-wrapped data key (``openssl rsautl``/``pkeyutl`` of the secret): read the
wrapped-key object, unwrap it with each held key that fits, and try each unwrap on
the data (unlock.find_params) until one opens it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from ...errors import KeyUnavailable, MalformedKeyObject, WrongKey
from ...keys.base import MAX_WRAPPED_KEY, KeySource, Unwrapped
from ...plumbing.progress import CancelToken
from ...storage.source import Source
from ..secrets import Secrets
from .header import CipherSpec, EncHeader, EncParams
from .kdf import PasswordForm, password_candidates
from .unlock import KeyEvidence, Probe, find_params, kdf_passes

RSA_SIZES = (128, 256, 384, 512, 768, 1024)  # modulus bytes of RSA-1024 ... RSA-8192


def read_wrapped_key(src: Source) -> bytes:
    ident = src.identity()
    if ident.size == 0:
        raise MalformedKeyObject("it is empty", obj=src.name)
    if ident.size > MAX_WRAPPED_KEY:
        raise MalformedKeyObject(
            f"it is {ident.size} bytes, too large for a wrapped key", obj=src.name
        )
    data = src.read_range(0, ident.size)
    # An armored (base64) wrapped key is decoded; openssl -a / base64(1) made it.
    # Line breaks do not count: ``openssl base64`` wraps at 64 columns.
    stripped = data.strip().translate(None, b"\r\n")
    if stripped and len(stripped) % 4 == 0 and stripped.isascii():
        try:
            decoded = base64.b64decode(stripped, validate=True)
            if len(decoded) in RSA_SIZES:
                return decoded
        except binascii.Error:
            pass
    return data


def unlock_wrapped(
    src: Source,
    header: EncHeader,
    probe: Probe,
    secrets: Secrets,
    wrapped: bytes,
    wrapped_name: str | None,
    ciphers: Sequence[CipherSpec],
    cancel: CancelToken,
) -> tuple[EncParams, KeyEvidence]:
    if not secrets.keys:
        raise KeyUnavailable(
            f"the data key is RSA-wrapped ({len(wrapped) * 8}-bit) and no key is held: give "
            "the private key with --key, or import it once with 'sealcheck key import'",
            obj=src.name,
        )
    # Software keys first: a token key is tried (and its PIN asked) only when
    # no software key opened the backup.
    fitting = sorted(
        (k for k in secrets.keys if k.modulus_bytes == len(wrapped)),
        key=lambda k: bool(getattr(k, "hardware", False)),
    )
    if not fitting:
        sizes = ", ".join(f"{k.label} is RSA-{k.modulus_bytes * 8}" for k in secrets.keys)
        if len(wrapped) not in RSA_SIZES:
            # Checked before any private-key operation (no PIN prompt, no
            # token round trip for an obviously bad object).
            need = " or ".join(sorted({str(k.modulus_bytes) for k in secrets.keys}))
            raise MalformedKeyObject(
                f"it is {len(wrapped)} bytes, which is no RSA key size; a key wrapped for "
                f"the key(s) given ({sizes}) is exactly {need} bytes: the object is truncated, "
                "padded or damaged",
                obj=wrapped_name,
            )
        raise WrongKey(
            f"the wrapped key needs an RSA-{len(wrapped) * 8} private key, but {sizes}",
            obj=src.name,
        )
    cache: dict[int, list[Unwrapped]] = {}
    tried: list[str] = []
    try:
        for kdfs in kdf_passes(secrets):
            for i, ks in enumerate(fitting):
                if i not in cache:
                    cache[i] = list(ks.unwrap_candidates(wrapped))
                for cand in cache[i]:
                    cancel.check()
                    tried.append(f"{ks.label} {cand.padding}")
                    pws: list[tuple[PasswordForm, bytes]] = password_candidates(bytes(cand.secret))
                    try:
                        params = find_params(
                            pws,
                            header.salt,
                            probe,
                            kdfs,
                            ciphers=ciphers,
                            cancel=cancel,
                            obj=src.name,
                        )
                    except WrongKey:
                        continue
                    return params, KeyEvidence(
                        "rsa", ks.label, ks.fingerprint, cand.padding, tried=sorted(set(tried))
                    )
    finally:
        for cands in cache.values():
            for c in cands:
                for j in range(len(c.secret)):
                    c.secret[j] = 0
    raise _wrapped_mismatch(src.name, wrapped_name, fitting, tried)


def _wrapped_mismatch(
    obj: str, wrapped_name: str | None, fitting: Sequence[KeySource], tried: list[str]
) -> WrongKey:
    """The one error for every unwrap or confirmation failure (no oracle, R4).

    An RSA ciphertext does not record its key, so the message names the keys
    tried. An OAEP unwrap that succeeded is authenticated: the wrapped key was
    made for that private key, so the mismatch is between the wrapped key and
    the data, not the private key.
    """
    name = wrapped_name or "the wrapped key"
    oaep = sorted({t for t in tried if " OAEP" in t})
    if oaep:
        return WrongKey(
            f"{name} unwraps with {', '.join(oaep)} (authenticated: it was made for this "
            "private key), but its secret does not decrypt this data to any known format: the "
            "wrapped key belongs to another backup, the start of the data is damaged, or the "
            "data is not in a format Sealcheck knows",
            obj=obj,
        )
    fps = ", ".join(sorted({f"{k.label} ({k.fingerprint})" for k in fitting}))
    return WrongKey(
        f"{name} does not open this data with {fps}: the backup was made for another key (an "
        "RSA-wrapped key does not record which), the wrapped key belongs to another backup, "
        "or the wrapped key or the start of the data is damaged",
        obj=obj,
    )
