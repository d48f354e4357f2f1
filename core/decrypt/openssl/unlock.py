"""Unlock ``openssl enc`` data: the trial decryption, in one place.

formats.md §2. openssl enc has no MAC and records neither the KDF nor the
cipher, so the parameters are found by trial: derive a key and IV for each
candidate, decrypt the first block and check that it starts a format a backup
pipeline produces, and for CBC also decrypt the last block and check its
PKCS#7 padding. Only the first and last blocks are needed (read before the
download: probe_openssl), so this costs a few microseconds per candidate
(PBKDF2 iterations aside) and no full pass.

The data is the only trustworthy judge of a key: PKCS#1 v1.5 unwraps return
garbage instead of failing (implicit rejection), and passphrase semantics and
the KDF are recorded nowhere. A secret is accepted only when the trial here
accepts it; which secrets are tried is the caller's (opener.py, wrapped.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...errors import IntegrityError, KeyUnavailable, Layer, TruncatedBackup, UsageError, WrongKey
from ...formats import Fmt, binary_magic, looks_like_text, sniff
from ...plumbing.progress import CancelToken
from ...plumbing.streams import BytesReader
from ...storage.source import Source
from ..secrets import Secrets
from .header import (
    BLOCK,
    CIPHERS,
    CIPHERS_BY_NAME,
    CipherSpec,
    EncHeader,
    EncParams,
    parse_header,
    raw_params,
    valid_padding,
)
from .kdf import Kdf, PasswordForm, derive, kdf_candidates, password_candidates
from .stream import Base64Reader


@dataclass
class KeyEvidence:
    method: str  # "rsa", "passphrase", "raw"
    key_label: str | None = None
    fingerprint: str | None = None
    padding: str | None = None
    tried: list[str] = field(default_factory=list)


# How many leading blocks must read as text when no binary magic matched.
# One random block passes looks_like_text about 3e-5 of the time and a key
# search makes ~10^3 trials, so one block is not enough: CTR has no padding
# to check at the end and needs more text than CBC.
TEXT_BLOCKS = {"cbc": 2, "ctr": 4}
# A tar (pg_dump -Ft piped into openssl enc) shows its magic only at byte 257:
# the lead covers the whole first tar header.
TAR_HEAD = 512
LEAD_BYTES = max(max(TEXT_BLOCKS.values()) * BLOCK, TAR_HEAD)
# The start of a tar header: a member name (printable), padded with NULs.
_TAR_NAME = re.compile(rb"[\x21-\x7e][\x20-\x7e]*\x00*")


@dataclass(frozen=True)
class Probe:
    """The blocks the trial decryption needs; fetched with two small reads."""

    first: bytes  # first ciphertext block (16 bytes)
    prev_last: bytes | None  # block before the last, or None when the last is the first
    last: bytes | None  # last ciphertext block; None when unknown (base64 streams)
    body_len: int | None
    # The first LEAD_BYTES of ciphertext (whole blocks; fewer for tiny
    # objects), and whether they are the whole ciphertext.
    lead: bytes = b""
    lead_is_all: bool = False


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


def _decrypt_block(key: bytes, iv: bytes, mode: str, block: bytes) -> bytes:
    m = modes.CBC(iv) if mode == "cbc" else modes.CTR(iv)
    d = Cipher(algorithms.AES(key), m).decryptor()
    return d.update(block)


def check_candidate(cipher: CipherSpec, key: bytes, iv: bytes, probe: Probe) -> str | None:
    """Return why this candidate is rejected, or None when it fits.

    The start must be a known binary magic, or text over TEXT_BLOCKS blocks;
    for CBC the last block must also carry valid PKCS#7 padding.
    """
    p1 = _decrypt_block(key, iv, cipher.mode, probe.first)
    if (
        binary_magic(p1) is None
        and not _lead_is_text(cipher, key, iv, probe, p1)
        and not _lead_is_tar(cipher, key, iv, probe, p1)
    ):
        return "first block"
    if cipher.mode == "cbc" and probe.last is not None:
        prev = probe.prev_last if probe.prev_last is not None else iv
        plast = _decrypt_block(key, prev, "cbc", probe.last)
        if not valid_padding(plast):
            return "padding"
    return None


def _lead_is_text(cipher: CipherSpec, key: bytes, iv: bytes, probe: Probe, p1: bytes) -> bool:
    one_block = probe.lead_is_all and len(probe.lead) == BLOCK  # p1 holds the padding too
    if not one_block and not looks_like_text(p1):
        return False  # cheap rejection of nearly every wrong candidate
    lead = (probe.lead or probe.first)[: TEXT_BLOCKS[cipher.mode] * BLOCK]
    if cipher.mode == "cbc":
        lead = lead[: len(lead) - len(lead) % BLOCK]
    text = _decrypt_block(key, iv, cipher.mode, lead)
    ends_body = probe.lead_is_all and len(lead) == len(probe.lead)
    if ends_body and cipher.mode == "cbc" and text and valid_padding(text[-BLOCK:]):
        text = text[: -text[-1]]  # a tiny object: its padding is in the lead
    return looks_like_text(text) or (not text and probe.lead_is_all)


def _lead_is_tar(cipher: CipherSpec, key: bytes, iv: bytes, probe: Probe, p1: bytes) -> bool:
    """A tar header: its name field first (cheap: random blocks almost never pass),
    then the "ustar" magic at byte 257 of the decrypted lead."""
    if not _TAR_NAME.fullmatch(p1) or len(probe.lead) < TAR_HEAD:
        return False
    return sniff(_decrypt_block(key, iv, cipher.mode, probe.lead[:TAR_HEAD])) is Fmt.TAR


def find_params(
    passwords: Sequence[tuple[PasswordForm, bytes]],
    salt: bytes | None,
    probe: Probe,
    kdfs: Iterable[Kdf],
    *,
    ciphers: Sequence[CipherSpec] = CIPHERS,
    cancel: CancelToken | None = None,
    obj: str | None = None,
) -> EncParams:
    if probe.body_len is not None and probe.body_len < BLOCK:
        raise TruncatedBackup("no ciphertext after the header", obj=obj, layer=Layer.CIPHER)
    if probe.body_len is not None and any(c.mode == "cbc" for c in ciphers):
        if probe.body_len % BLOCK and all(c.mode == "cbc" for c in ciphers):
            raise TruncatedBackup(
                f"the ciphertext length ({probe.body_len}) is not a multiple of the AES block",
                obj=obj,
                layer=Layer.CIPHER,
            )
    padding_only_failure = False
    misaligned_fit: CipherSpec | None = None
    need = max(c.key_len for c in ciphers) + BLOCK
    for kdf in kdfs:
        for form, pw in passwords:
            if cancel:
                cancel.check()
            material = derive(kdf, pw, salt or b"", need, 0)
            for cipher in ciphers:
                key = material[: cipher.key_len]
                iv = material[cipher.key_len : cipher.key_len + BLOCK]
                if cipher.mode == "cbc" and probe.body_len and probe.body_len % BLOCK:
                    # CBC cannot produce this length, but if the start still
                    # decrypts, the key is right and the length is wrong.
                    if misaligned_fit is None and _start_fits(cipher, key, iv, probe):
                        misaligned_fit = cipher
                    continue
                why = check_candidate(cipher, key, iv, probe)
                if why is None:
                    return EncParams(cipher, kdf, form, bytearray(key), bytearray(iv))
                if why == "padding":
                    padding_only_failure = True
    if misaligned_fit is not None:
        assert probe.body_len is not None
        extra = probe.body_len % BLOCK
        raise TruncatedBackup(
            f"the secret opens the start of the data ({misaligned_fit.name}), but the "
            f"ciphertext is {probe.body_len} bytes, which is not a whole number of 16-byte "
            f"AES blocks: {_n_bytes(BLOCK - extra)} missing at the end, or "
            f"{_n_bytes(extra)} appended",
            obj=obj,
            layer=Layer.CIPHER,
        )
    if padding_only_failure:
        # The start decrypted to a known format but the last block did not:
        # the right key on a damaged or truncated object.
        raise IntegrityError(
            "the last cipher block has invalid padding: the object is truncated or damaged",
            obj=obj,
            layer=Layer.CIPHER,
        )
    raise WrongKey(
        "no key derivation (EVP_BytesToKey MD5/SHA-256/SHA-1, PBKDF2) or AES variant "
        "turns the data into a known format with this secret",
        obj=obj,
    )


def _n_bytes(n: int) -> str:
    return f"{n} byte{'s' if n != 1 else ''}"


def _start_fits(cipher: CipherSpec, key: bytes, iv: bytes, probe: Probe) -> bool:
    p1 = _decrypt_block(key, iv, cipher.mode, probe.first)
    return (
        binary_magic(p1) is not None
        or _lead_is_text(cipher, key, iv, probe, p1)
        or _lead_is_tar(cipher, key, iv, probe, p1)
    )


def ciphers_for(secrets: Secrets) -> Sequence[CipherSpec]:
    if secrets.cipher:
        try:
            return (CIPHERS_BY_NAME[secrets.cipher],)
        except KeyError:
            raise UsageError(
                f"unknown cipher {secrets.cipher!r}; known: {', '.join(CIPHERS_BY_NAME)}"
            ) from None
    return CIPHERS


def kdf_passes(secrets: Secrets) -> list[list[Kdf]]:
    cheap = kdf_candidates(secrets.pbkdf2_iter, exhaustive=False)
    full = [k for k in kdf_candidates(secrets.pbkdf2_iter, exhaustive=True) if k not in cheap]
    return [cheap, full]


def unlock_raw(
    src: Source, probe: Probe, secrets: Secrets, ciphers: Sequence[CipherSpec]
) -> tuple[EncParams, KeyEvidence]:
    """-K/-iv as the user gave them, accepted only when the data confirms them."""
    assert secrets.raw_key is not None
    params = raw_params(ciphers[0], *secrets.raw_key)
    if check_candidate(params.cipher, bytes(params.key), bytes(params.iv), probe) is not None:
        raise WrongKey("the raw key and IV do not decrypt this data", obj=src.name)
    return params, KeyEvidence("raw")


def unlock_passphrase(
    src: Source,
    header: EncHeader,
    probe: Probe,
    secrets: Secrets,
    ciphers: Sequence[CipherSpec],
    cancel: CancelToken,
) -> tuple[EncParams, KeyEvidence]:
    """-pass file:K or pass:$(…): every reading of the passphrase, every KDF."""
    assert secrets.passphrase is not None
    pws = password_candidates(bytes(secrets.passphrase), prefer_file=True)
    if not pws:
        raise KeyUnavailable("the passphrase file is empty")
    for kdfs in kdf_passes(secrets):
        try:
            params = find_params(
                pws, header.salt, probe, kdfs, ciphers=ciphers, cancel=cancel, obj=src.name
            )
            return params, KeyEvidence("passphrase", padding=None)
        except WrongKey:
            continue
    raise WrongKey("the passphrase does not open this backup", obj=src.name)
