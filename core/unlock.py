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

from .errors import (
    KeyUnavailable,
    Layer,
    MalformedKeyObject,
    TruncatedBackup,
    UnsupportedFormat,
    UsageError,
    WrongKey,
)
from .gpg import GpgOptions
from .kdf import Kdf, PasswordForm, kdf_candidates, password_candidates
from .keys import MAX_WRAPPED_KEY, KeySource, Unwrapped
from .opensslenc import (
    BLOCK,
    CIPHERS,
    CIPHERS_BY_NAME,
    Base64Reader,
    EncHeader,
    EncParams,
    Probe,
    find_params,
    parse_header,
    raw_params,
)
from .progress import CancelToken
from .sources import Source
from .streams import BytesReader


@dataclass
class Secrets:
    """What the user gave to open backups. Never logged, never serialised."""

    keys: Sequence[KeySource] = ()
    passphrase: bytearray | None = None  # symmetric backups (-pass file:K)
    gpg: GpgOptions | None = None
    raw_key: tuple[str, str] | None = None  # (-K hex, -iv hex)
    pbkdf2_iter: int | None = None
    cipher: str | None = None

    def wipe(self) -> None:
        if self.passphrase is not None:
            for i in range(len(self.passphrase)):
                self.passphrase[i] = 0


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
        raise MalformedKeyObject(f"it is {ident.size} bytes, too large for a wrapped key", obj=src.name)
    data = src.read_range(0, ident.size)
    # An armored (base64) wrapped key is decoded; openssl -a / base64(1) made it.
    stripped = data.strip()
    if stripped and len(stripped) % 4 == 0 and stripped.translate(None, b"\r\n").isascii():
        import base64
        import binascii

        try:
            decoded = base64.b64decode(stripped.translate(None, b"\r\n"), validate=True)
            if len(decoded) in (128, 256, 384, 512, 768, 1024):
                return decoded
        except binascii.Error:
            pass
    return data


def probe_openssl(src: Source, head: bytes, *, base64: bool, salted: bool) -> tuple[EncHeader, Probe]:
    size = src.identity().size
    if base64:
        decoded = Base64Reader(BytesReader(_b64_prefix(head))).read(64)
        header = parse_header(decoded, base64=True, salted=salted)
        first = decoded[header.body_offset : header.body_offset + BLOCK]
        if len(first) < BLOCK:
            raise TruncatedBackup("no ciphertext after the header", obj=src.name, layer=Layer.CIPHER)
        return header, Probe(first, None, None, None)
    header = parse_header(head, base64=False, salted=salted)
    body_len = size - header.body_offset
    first = head[header.body_offset : header.body_offset + BLOCK]
    if len(first) < BLOCK:
        raise TruncatedBackup(
            "the object ends inside the first cipher block", obj=src.name, layer=Layer.CIPHER
        )
    if body_len % BLOCK:
        return header, Probe(first, None, None, body_len)
    tail = src.read_range(size - 2 * BLOCK, 2 * BLOCK) if body_len >= 2 * BLOCK else b""
    if body_len == BLOCK:
        return header, Probe(first, None, first, body_len)
    return header, Probe(first, tail[:BLOCK], tail[BLOCK:], body_len)


def _b64_prefix(head: bytes) -> bytes:
    text = head.translate(None, b" \t\r\n")
    return text[: len(text) - len(text) % 4][:88]


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
        from .opensslenc import check_candidate

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
            f"the data key is RSA-wrapped ({len(wrapped) * 8}-bit); give the private key with --key",
            obj=src.name,
        )
    fitting = [k for k in secrets.keys if k.modulus_bytes == len(wrapped)]
    if not fitting:
        sizes = ", ".join(f"{k.label} is RSA-{k.modulus_bytes * 8}" for k in secrets.keys)
        if len(wrapped) not in (128, 256, 384, 512, 768, 1024):
            raise MalformedKeyObject(
                f"it is {len(wrapped)} bytes, which is no RSA key size", obj=wrapped_name
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
                            pws, header.salt, probe, kdfs, ciphers=ciphers, cancel=cancel,
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
    fps = ", ".join(sorted({k.fingerprint for k in fitting}))
    raise WrongKey(
        f"the wrapped key {wrapped_name or ''} does not open this data with {fps} "
        "(another key's backup, a wrapped key from another backup, or a damaged wrapped key)",
        obj=src.name,
    )


def unsupported(fmt_name: str, obj: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"{fmt_name} backups are not supported yet", obj=obj)
