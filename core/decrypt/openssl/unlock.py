"""Find the data key: unwrap the secret, then prove it against the data.

The data is the only trustworthy judge of a key: PKCS#1 v1.5 unwraps return
garbage instead of failing (implicit rejection), passphrase semantics and the
KDF are not recorded anywhere. A candidate is accepted only when the first
block decrypts to a known format and, for CBC, the last block has valid
padding (opensslenc.find_params).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...errors import (
    KeyUnavailable,
    Layer,
    MalformedKeyObject,
    TruncatedBackup,
    UsageError,
    WrongKey,
)
from ...keys.base import MAX_WRAPPED_KEY, KeySource, Unwrapped
from ...plumbing.progress import CancelToken
from ...plumbing.streams import BytesReader
from ...storage.source import Source
from ..secrets import Secrets
from .enc import (
    BLOCK,
    CIPHERS,
    CIPHERS_BY_NAME,
    LEAD_BYTES,
    Base64Reader,
    EncHeader,
    EncParams,
    Probe,
    check_candidate,
    find_params,
    parse_header,
    raw_params,
)
from .kdf import Kdf, PasswordForm, kdf_candidates, password_candidates

RSA_SIZES = (128, 256, 384, 512, 768, 1024)  # modulus bytes of RSA-1024 ... RSA-8192


@dataclass
class KeyEvidence:
    method: str  # "rsa", "passphrase", "raw", "gpg", "none"
    key_label: str | None = None
    fingerprint: str | None = None
    padding: str | None = None
    tried: list[str] = field(default_factory=list)


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
        import base64
        import binascii

        try:
            decoded = base64.b64decode(stripped, validate=True)
            if len(decoded) in RSA_SIZES:
                return decoded
        except binascii.Error:
            pass
    return data


def probe_openssl(
    src: Source, head: bytes, *, base64: bool, salted: bool
) -> tuple[EncHeader, Probe]:
    size = src.identity().size
    if base64:
        decoded = Base64Reader(BytesReader(_b64_prefix(head)), obj=src.name).read(LEAD_BYTES + 32)
        header = parse_header(decoded, base64=True, salted=salted, obj=src.name)
        lead = _whole_blocks(decoded[header.body_offset : header.body_offset + LEAD_BYTES])
        if len(lead) < BLOCK:
            raise TruncatedBackup(
                "no ciphertext after the header", obj=src.name, layer=Layer.CIPHER
            )
        return header, Probe(lead[:BLOCK], None, None, None, lead)
    header = parse_header(head, base64=False, salted=salted, obj=src.name)
    body_len = size - header.body_offset
    first = head[header.body_offset : header.body_offset + BLOCK]
    if len(first) < BLOCK:
        raise TruncatedBackup(
            "the object ends inside the first cipher block", obj=src.name, layer=Layer.CIPHER
        )
    lead = _whole_blocks(head[header.body_offset : header.body_offset + LEAD_BYTES])
    lead_is_all = len(lead) == body_len
    if body_len % BLOCK:
        return header, Probe(first, None, None, body_len, lead, lead_is_all)
    tail = src.read_range(size - 2 * BLOCK, 2 * BLOCK) if body_len >= 2 * BLOCK else b""
    if body_len == BLOCK:
        return header, Probe(first, None, first, body_len, lead, lead_is_all)
    return header, Probe(first, tail[:BLOCK], tail[BLOCK:], body_len, lead, lead_is_all)


def _whole_blocks(data: bytes) -> bytes:
    return data[: len(data) - len(data) % BLOCK]


def _b64_prefix(head: bytes) -> bytes:
    # Enough base64 for the header and LEAD_BYTES of ciphertext.
    text = head.translate(None, b" \t\r\n")
    want = (16 + LEAD_BYTES + 2) // 3 * 4 + 4
    return text[: len(text) - len(text) % 4][:want]


def _ciphers(secrets: Secrets) -> Sequence:  # type: ignore[type-arg]
    if secrets.cipher:
        try:
            return (CIPHERS_BY_NAME[secrets.cipher],)
        except KeyError:
            raise UsageError(
                f"unknown cipher {secrets.cipher!r}; known: {', '.join(CIPHERS_BY_NAME)}"
            ) from None
    return CIPHERS


def _kdf_passes(secrets: Secrets) -> list[list[Kdf]]:
    cheap = kdf_candidates(secrets.pbkdf2_iter, exhaustive=False)
    full = [k for k in kdf_candidates(secrets.pbkdf2_iter, exhaustive=True) if k not in cheap]
    return [cheap, full]


def unlock_openssl(
    src: Source,
    header: EncHeader,
    probe: Probe,
    secrets: Secrets,
    wrapped: bytes | None,
    wrapped_name: str | None,
    cancel: CancelToken,
) -> tuple[EncParams, KeyEvidence]:
    ciphers = _ciphers(secrets)
    if secrets.raw_key is not None:
        params = raw_params(ciphers[0], *secrets.raw_key)

        if check_candidate(params.cipher, bytes(params.key), bytes(params.iv), probe) is not None:
            raise WrongKey("the raw key and IV do not decrypt this data", obj=src.name)
        return params, KeyEvidence("raw")
    if wrapped is not None:
        return _unlock_wrapped(src, header, probe, secrets, wrapped, wrapped_name, ciphers, cancel)
    if secrets.passphrase is not None:
        pws = password_candidates(bytes(secrets.passphrase), prefer_file=True)
        if not pws:
            raise KeyUnavailable("the passphrase file is empty")
        for kdfs in _kdf_passes(secrets):
            try:
                params = find_params(
                    pws, header.salt, probe, kdfs, ciphers=ciphers, cancel=cancel, obj=src.name
                )
                return params, KeyEvidence("passphrase", padding=None)
            except WrongKey:
                continue
        raise WrongKey("the passphrase does not open this backup", obj=src.name)
    if secrets.keys:
        raise KeyUnavailable(
            "this backup needs its wrapped-key object (X.key, STEM.key.txt.enc, ...); none was "
            "found beside it: give it with --wrapped-key",
            obj=src.name,
        )
    raise KeyUnavailable(
        "it is encrypted with openssl enc; give --key PEM (with its wrapped key) or "
        "--passphrase-file",
        obj=src.name,
    )


def _unlock_wrapped(
    src: Source,
    header: EncHeader,
    probe: Probe,
    secrets: Secrets,
    wrapped: bytes,
    wrapped_name: str | None,
    ciphers: Sequence,  # type: ignore[type-arg]
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
        for kdfs in _kdf_passes(secrets):
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
