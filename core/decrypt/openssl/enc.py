"""``openssl enc`` (AES-CBC/CTR): header, parameter discovery and streaming decryption.

formats.md §2. openssl enc has no MAC and records neither the KDF nor the
cipher, so the parameters are found by trial: derive a key and IV for each
candidate, decrypt the first block and check that it starts a format a backup
pipeline produces, and for CBC also decrypt the last block and check its
PKCS#7 padding. Only the first and last blocks are needed, so this costs a few
microseconds per candidate (PBKDF2 iterations aside) and no full pass.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...errors import IntegrityError, Layer, TruncatedBackup, WrongKey
from ...formats import Fmt, binary_magic, looks_like_text, sniff
from ...plumbing.progress import CancelToken
from ...plumbing.streams import Reader
from .kdf import Kdf, PasswordForm, derive

BLOCK = 16
MAGIC = b"Salted__"


@dataclass(frozen=True)
class CipherSpec:
    name: str
    key_len: int
    mode: Literal["cbc", "ctr"]


CIPHERS: tuple[CipherSpec, ...] = (
    CipherSpec("aes-256-cbc", 32, "cbc"),
    CipherSpec("aes-128-cbc", 16, "cbc"),
    CipherSpec("aes-192-cbc", 24, "cbc"),
    CipherSpec("aes-256-ctr", 32, "ctr"),
    CipherSpec("aes-128-ctr", 16, "ctr"),
    CipherSpec("aes-192-ctr", 24, "ctr"),
)
CIPHERS_BY_NAME = {c.name: c for c in CIPHERS}


@dataclass(frozen=True)
class EncHeader:
    base64: bool
    salt: bytes | None
    body_offset: int  # offset of the ciphertext in the (decoded) stream


def parse_header(
    decoded_head: bytes, *, base64: bool, salted: bool = True, obj: str | None = None
) -> EncHeader:
    if not salted:
        return EncHeader(base64, None, 0)
    if not decoded_head.startswith(MAGIC) or len(decoded_head) < 16:
        raise TruncatedBackup(
            f"the openssl enc header (16 bytes: 'Salted__' and the salt) is incomplete: the "
            f"object has {len(decoded_head)} bytes",
            obj=obj,
            layer=Layer.CIPHER,
        )
    return EncHeader(base64, decoded_head[8:16], 16)


@dataclass
class EncParams:
    cipher: CipherSpec
    kdf: Kdf
    form: PasswordForm | None
    key: bytearray
    iv: bytearray

    def wipe(self) -> None:
        # Best effort: Python cannot guarantee no other copy exists.
        for b in (self.key, self.iv):
            for i in range(len(b)):
                b[i] = 0


def _decrypt_block(key: bytes, iv: bytes, mode: str, block: bytes) -> bytes:
    m = modes.CBC(iv) if mode == "cbc" else modes.CTR(iv)
    d = Cipher(algorithms.AES(key), m).decryptor()
    return d.update(block)


def _valid_padding(last: bytes) -> bool:
    n = last[-1]
    return 1 <= n <= BLOCK and last[-n:] == bytes([n]) * n


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
        if not _valid_padding(plast):
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
    if ends_body and cipher.mode == "cbc" and text and _valid_padding(text[-BLOCK:]):
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


def raw_params(cipher: CipherSpec, key_hex: str, iv_hex: str) -> EncParams:
    """``-K``/``-iv`` as openssl takes them: hex, short values zero-padded."""
    key = bytes.fromhex(key_hex).ljust(cipher.key_len, b"\0")[: cipher.key_len]
    iv = bytes.fromhex(iv_hex).ljust(BLOCK, b"\0")[:BLOCK]
    return EncParams(cipher, Kdf("raw"), None, bytearray(key), bytearray(iv))


class Base64Reader:
    """Decode ``openssl enc -a`` output, with or without line breaks (§2.3).

    Line ends may be LF or CRLF (a file that passed through a Windows tool or
    an FTP text transfer): ``openssl enc -d -a`` decodes both, so all ASCII
    whitespace is dropped before decoding.
    """

    _WS = b" \t\r\n"

    def __init__(self, upstream: Reader, *, obj: str | None = None) -> None:
        self._up = upstream
        self._rest = b""  # base64 text of an incomplete 4-character group
        self._out = b""  # decoded bytes not yet returned, from _pos on
        self._pos = 0
        self._obj = obj

    def read(self, n: int = -1, /) -> bytes:
        # At most n bytes, as every reader here: a caller that reads the
        # 16-byte header with read_exact must not lose the ciphertext that
        # was decoded along with it.
        if self._pos >= len(self._out):
            self._out, self._pos = self._decode_more(n), 0
        if n < 0 or self._pos + n >= len(self._out):
            out = self._out[self._pos :] if self._pos else self._out
            self._out, self._pos = b"", 0
            return out
        out = self._out[self._pos : self._pos + n]
        self._pos += n
        return out

    def _decode_more(self, n: int) -> bytes:
        while True:
            chunk = self._up.read(max(n, 1 << 16) if n > 0 else 1 << 20)
            data = self._rest + chunk.translate(None, self._WS)
            if not chunk:
                self._rest = b""
                if len(data) % 4:
                    raise TruncatedBackup(
                        "the base64 text ends mid-group", obj=self._obj, layer=Layer.CIPHER
                    )
                return self._decode(data)
            cut = len(data) - len(data) % 4
            self._rest = data[cut:]
            if cut:
                return self._decode(data[:cut])

    def _decode(self, data: bytes) -> bytes:
        try:
            return binascii.a2b_base64(data, strict_mode=True)
        except binascii.Error as exc:
            raise IntegrityError(
                f"invalid base64 text ({exc})", obj=self._obj, layer=Layer.CIPHER
            ) from None


class DecryptReader:
    """Stream-decrypt AES-CBC (PKCS#7) or AES-CTR ciphertext."""

    def __init__(
        self,
        upstream: Reader,
        params: EncParams,
        *,
        obj: str | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._cancel = cancel or CancelToken()
        mode = (
            modes.CBC(bytes(params.iv))
            if params.cipher.mode == "cbc"
            else modes.CTR(bytes(params.iv))
        )
        self._dec = Cipher(algorithms.AES(bytes(params.key)), mode).decryptor()
        self._cbc = params.cipher.mode == "cbc"
        self._up = upstream
        self._held = b""
        self._eof = False
        self._obj = obj
        self.ciphertext_bytes = 0
        self.padding_ok: bool | None = None

    def read(self, n: int = -1, /) -> bytes:
        while not self._eof:
            self._cancel.check()
            chunk = self._up.read(n if n > 0 else 1 << 20)
            if not chunk:
                self._eof = True
                return self._finish()
            self.ciphertext_bytes += len(chunk)
            pt = self._dec.update(chunk)
            if not self._cbc:
                return pt
            # Hold back the last plaintext block: it carries the padding,
            # which can only be checked once the stream has ended.
            buf = self._held + pt if self._held else pt
            if len(buf) <= BLOCK:
                self._held = buf
                continue
            self._held = buf[-BLOCK:]
            return buf[:-BLOCK]
        return b""

    def _finish(self) -> bytes:
        try:
            tail = self._dec.finalize()
        except ValueError:
            raise TruncatedBackup(
                f"the ciphertext ({self.ciphertext_bytes} bytes) is not a whole number of "
                "AES blocks",
                obj=self._obj,
                layer=Layer.CIPHER,
            ) from None
        if not self._cbc:
            return tail
        last = self._held + tail
        if len(last) != BLOCK or not _valid_padding(last):
            self.padding_ok = False
            raise IntegrityError(
                "the last cipher block has invalid PKCS#7 padding: truncated or damaged",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        self.padding_ok = True
        return last[: BLOCK - last[-1]]


def first_format(first_plain_block: bytes) -> str:
    fmt = sniff(first_plain_block)
    return fmt.value if fmt else "text"
