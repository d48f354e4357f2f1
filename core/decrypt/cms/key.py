"""Open a CMS envelope: read its header, find the content key, decrypt the content.

The key step runs on the first bytes of the object (and, for CBC in DER,
its last two blocks), before the download: every recipient whose RSA size
fits a held key is unwrapped with the existing key machinery (keys.py:
PEM, keyring, PKCS#11), with the padding the recipient info names. An
RSAES-OAEP unwrap is authenticated; a PKCS#1 v1.5 unwrap returns noise for
a wrong key (implicit rejection), so its content key is trusted only once
the data confirms it: the first blocks decrypt to a known format and, where
the last blocks were read, the CBC padding is valid.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)

from ...errors import IntegrityError, KeyUnavailable, Layer, TruncatedBackup, WrongKey
from ...formats import Fmt, binary_magic, looks_like_text, sniff
from ...keys.base import KeySource, Unwrapped
from ...plumbing.progress import CancelToken
from ...plumbing.streams import CHUNK, BytesReader, Reader
from ...storage.source import Source
from .armor import ArmorReader
from .ber import BerError, BerReader, BerTruncated
from .envelope import (
    ContentCipher,
    ContentReader,
    EnvelopeHeader,
    EnvelopeParser,
    Recipient,
    cms_error,
    unsupported,
)

LEAD = 512  # content bytes the key check decrypts (a whole tar header)
TEXT_BYTES = {"cbc": 32, "gcm": 64}  # as openssl/unlock.TEXT_BLOCKS: GCM has no padding to check
_FIRST_READ = 64 * 1024
_MAX_HEADER = 4 * 1024 * 1024


@dataclass(frozen=True)
class CmsProbe:
    """What the key step needs, from two small reads of the object."""

    header: EnvelopeHeader
    lead: bytes  # the first content bytes (up to LEAD)
    lead_is_all: bool  # the content ends within the lead
    tail: bytes | None  # CBC in DER: the last two cipher blocks


def _der_stream(raw: Reader, fmt: Fmt, obj: str | None, *, prefix: bool = False) -> Reader:
    return raw if fmt is Fmt.CMS_DER else ArmorReader(raw, fmt, obj=obj, prefix=prefix)


def probe_cms(src: Source, fmt: Fmt, head: bytes) -> CmsProbe:
    """Parse the header and read the first content bytes from the object's start."""
    size = src.identity().size
    want = min(max(len(head), _FIRST_READ), size)
    while True:
        raw = head[:want] if len(head) >= want else src.read_range(0, want)
        whole = len(raw) >= size
        try:
            probe = _probe_prefix(raw, fmt, whole, src.name)
        except BerTruncated as exc:
            if whole:
                raise cms_error(exc, src.name, "its header") from None
            if want >= _MAX_HEADER:
                raise IntegrityError(
                    f"the CMS header does not end within the first {_MAX_HEADER} bytes",
                    obj=src.name,
                    layer=Layer.CIPHER,
                ) from None
            want = min(want * 8, size)
            continue
        except BerError as exc:
            raise cms_error(exc, src.name, "its header") from None
        _check_size(probe.header, fmt, size, src.name)
        return _with_tail(probe, fmt, src)


def _probe_prefix(raw: bytes, fmt: Fmt, whole: bool, obj: str | None) -> CmsProbe:
    r = BerReader(_der_stream(BytesReader(raw), fmt, obj, prefix=not whole))
    header = EnvelopeParser(r, obj).parse()
    content = ContentReader(r, header, obj)
    lead = b""
    while len(lead) < LEAD:
        piece = content.read_raw(LEAD - len(lead))
        if not piece:
            return CmsProbe(header, lead, True, None)
        lead += piece
    return CmsProbe(header, lead, False, None)


def _check_size(header: EnvelopeHeader, fmt: Fmt, size: int, obj: str | None) -> None:
    """A definite-length DER structure says how long the object must be."""
    total = header.total_length
    if fmt is not Fmt.CMS_DER or total is None or total == size:
        return
    if size < total:
        raise TruncatedBackup(
            f"the object is {size} bytes, but its CMS structure is {total}: it is cut short",
            obj=obj,
            layer=Layer.CIPHER,
        )
    raise IntegrityError(
        f"{size - total} bytes follow the end of the CMS structure ({total} bytes)",
        obj=obj,
        layer=Layer.CIPHER,
    )


def _with_tail(probe: CmsProbe, fmt: Fmt, src: Source) -> CmsProbe:
    content, spec = probe.header.content, probe.header.cipher.spec
    if spec.mode != "cbc" or content.constructed or content.length is None:
        return probe
    if content.length < spec.block or content.length % spec.block:
        raise IntegrityError(
            f"the encrypted content is {content.length} bytes, not a whole number of "
            f"{spec.block}-byte {spec.name} blocks",
            obj=src.name,
            layer=Layer.CIPHER,
        )
    if fmt is not Fmt.CMS_DER or probe.lead_is_all:
        return probe
    n = 2 * spec.block
    tail = src.read_range(content.value_offset + content.length - n, n)
    return CmsProbe(probe.header, probe.lead, False, tail)


# --- the content key ---------------------------------------------------------


@dataclass
class CmsKey:
    """The content key and how it was found. ``wipe`` once the decryptor has it."""

    cek: bytearray
    recipient: Recipient
    key: KeySource
    padding: str
    confirmed_by: str
    ski_matches: bool | None  # the recipient's key identifier vs the key; None: not checkable
    tried: list[str] = field(default_factory=list)
    tag_only: bool = False  # a PKCS#1 v1.5 key that only the GCM tag will confirm

    def wipe(self) -> None:
        for i in range(len(self.cek)):
            self.cek[i] = 0


def key_ski(key: KeySource) -> bytes | None:
    """The key's SHA-1 key identifier (RFC 5280 §4.2.1.2 method 1), when its public key is
    known (or, for a key unwrapped elsewhere, keys/held.py, the identifier it carries)."""
    known = getattr(key, "key_identifier", None)
    if isinstance(known, bytes):
        return known
    public = getattr(key, "public_key", None)
    if public is None:
        return None
    try:
        return x509.SubjectKeyIdentifier.from_public_key(public()).digest
    except Exception:  # noqa: BLE001 - a key that cannot say: no identifier
        return None


def unlock_cms(
    probe: CmsProbe, keys: Sequence[KeySource], cancel: CancelToken, obj: str | None
) -> CmsKey:
    header = probe.header
    usable = [r for r in header.recipients if r.padding is not None]
    if not usable:
        raise unsupported(
            "no recipient uses RSA key transport that Sealcheck can unwrap: "
            + header.recipients_text(),
            obj,
        )
    if not keys:
        raise KeyUnavailable(
            f"it is a CMS envelope (openssl smime/cms) for {header.recipients_text()}: give the "
            "recipient's private key with --key (a PEM file, keyring:NAME or a pkcs11: URI), or "
            "import it once with 'sealcheck key import'",
            obj=obj,
        )
    pairs = _pairs(usable, keys)
    if not pairs:
        sizes = ", ".join(f"{k.label} is RSA-{k.modulus_bytes * 8}" for k in keys)
        needs = ", ".join(f"#{r.index} RSA-{len(r.encrypted_key) * 8}" for r in usable)
        raise WrongKey(
            f"no key given fits a recipient of this envelope ({needs}): {sizes}", obj=obj
        )
    tried: list[str] = []
    fallback: list[CmsKey] = []
    for rec, key, ski in pairs:
        for cand in _candidates(key, rec):
            cancel.check()
            tried.append(f"{key.label} for recipient #{rec.index} ({cand.padding})")
            found = _judge(probe, rec, key, cand, ski, obj)
            if found is None:
                _wipe(cand)
                continue
            if found.tag_only:
                fallback.append(found)
                continue
            found.tried = tried
            return found
    if len(fallback) == 1:
        fallback[0].tried = tried
        return fallback[0]
    for f in fallback:
        f.wipe()
    raise _no_key_opens(header, [k for _, k, _ in pairs], obj)


def _pairs(
    usable: list[Recipient], keys: Sequence[KeySource]
) -> list[tuple[Recipient, KeySource, bool | None]]:
    """(recipient, key, does the key identifier match) to try, likeliest first:
    a matching key identifier first, software keys before tokens (a PIN is
    asked only when no software key opened the envelope)."""
    out = []
    for rec in usable:
        for key in keys:
            if key.modulus_bytes != len(rec.encrypted_key):
                continue
            ski = key_ski(key) if rec.ski is not None else None
            match = None if ski is None or rec.ski is None else ski == rec.ski
            out.append((rec, key, match))
    return sorted(
        out, key=lambda p: (p[2] is False, bool(getattr(p[1], "hardware", False)), p[0].index)
    )


def _candidates(key: KeySource, rec: Recipient) -> Iterator[Unwrapped]:
    for cand in key.unwrap_candidates(rec.encrypted_key):
        if cand.padding == rec.padding:
            yield cand
        else:
            _wipe(cand)


def _wipe(cand: Unwrapped) -> None:
    for i in range(len(cand.secret)):
        cand.secret[i] = 0


def _judge(
    probe: CmsProbe,
    rec: Recipient,
    key: KeySource,
    cand: Unwrapped,
    ski: bool | None,
    obj: str | None,
) -> CmsKey | None:
    """A CmsKey when this candidate is the content key, else None."""
    cipher = probe.header.cipher
    oaep = cand.padding != "PKCS#1 v1.5"
    if len(cand.secret) != cipher.spec.key_len:
        if oaep:  # authenticated: the key is right, the header's cipher is not
            raise IntegrityError(
                f"recipient #{rec.index}'s content key is {len(cand.secret)} bytes, but the "
                f"header names {cipher.spec.name} ({cipher.spec.key_len}-byte keys): the "
                "header is damaged",
                obj=obj,
                layer=Layer.CIPHER,
            )
        return None  # PKCS#1 v1.5 noise from a key this recipient is not for
    fmt, padding_ok = confirm(probe, bytes(cand.secret))
    if fmt is not None and padding_ok is False:
        raise IntegrityError(
            f"the content key opens the start of the content ({fmt}), but the last "
            f"{cipher.spec.name} block has invalid padding: the object is truncated or damaged",
            obj=obj,
            layer=Layer.CIPHER,
        )
    if oaep and fmt is None and cipher.spec.mode == "cbc":
        # The key is right, but CBC has no MAC: a damaged IV or first block would
        # pass unseen if the start were not judged, so an unknown start fails.
        raise IntegrityError(
            f"the content key unwrapped with {key.label} (RSAES-OAEP: authenticated, so it "
            "is this envelope's key), but the content does not start as any format Sealcheck "
            f"knows: the {cipher.spec.name} IV in the header or the first block is damaged "
            "(EnvelopedData has no MAC to tell), or the backup holds a format Sealcheck cannot "
            "check",
            obj=obj,
            layer=Layer.CIPHER,
        )
    if oaep:
        how = "RSAES-OAEP (authenticated)"
        how += f"; the content starts as {fmt}" if fmt else ""
        return CmsKey(cand.secret, rec, key, cand.padding, how, ski)
    if fmt is not None:
        how = f"the data: the content starts as {fmt}"
        if padding_ok:
            how += " and its last block has valid padding"
        return CmsKey(cand.secret, rec, key, cand.padding, how, ski)
    if cipher.spec.mode == "gcm":
        how = "only the GCM tag at the end (the content starts as no format Sealcheck knows)"
        return CmsKey(cand.secret, rec, key, cand.padding, how, ski, tag_only=True)
    return None


def confirm(probe: CmsProbe, cek: bytes) -> tuple[str | None, bool | None]:
    """(the format the content starts as, or None; is the last CBC block's padding valid)."""
    cipher = probe.header.cipher
    spec = cipher.spec
    plain = _lead_plaintext(cipher, cek, probe.lead)
    padding_ok: bool | None = None
    if spec.mode == "cbc" and probe.tail is not None:
        last = _decryptor(cipher, cek, iv=probe.tail[: spec.block]).update(probe.tail[spec.block :])
        padding_ok = _valid_padding(last, spec.block)
    if spec.mode == "cbc" and probe.lead_is_all:
        padding_ok = bool(plain) and _valid_padding(plain[-spec.block :], spec.block)
        plain = plain[: -plain[-1]] if padding_ok else plain
    return _format_of(plain, probe.lead_is_all, TEXT_BYTES[spec.mode]), padding_ok


def _format_of(plain: bytes, is_all: bool, text_bytes: int) -> str | None:
    fmt = binary_magic(plain)
    if fmt is not None:
        return fmt.value
    if sniff(plain) is Fmt.TAR:
        return "tar"
    if len(plain) >= text_bytes or is_all:
        return "text" if looks_like_text(plain[:text_bytes]) else None
    return None


def _valid_padding(last: bytes, block: int) -> bool:
    n = last[-1] if last else 0
    return len(last) == block and 1 <= n <= block and last[-n:] == bytes([n]) * n


def _lead_plaintext(cipher: ContentCipher, cek: bytes, lead: bytes) -> bytes:
    if cipher.spec.mode == "gcm":
        # GCM is CTR from the counter block after J0 = nonce || 1: the start of
        # the plaintext without the tag, which only comes at the end.
        ctr = Cipher(algorithms.AES(cek), modes.CTR(cipher.iv + b"\x00\x00\x00\x02"))
        return ctr.decryptor().update(lead)
    whole = lead[: len(lead) - len(lead) % cipher.spec.block]
    return _decryptor(cipher, cek).update(whole)


def _decryptor(cipher: ContentCipher, cek: bytes, iv: bytes | None = None) -> CipherContext:
    alg = algorithms.AES(cek) if cipher.spec.algorithm == "aes" else TripleDES(cek)
    return Cipher(alg, modes.CBC(iv or cipher.iv)).decryptor()


def _no_key_opens(header: EnvelopeHeader, keys: list[KeySource], obj: str | None) -> WrongKey:
    """One message for every unwrap or confirmation failure: it names the keys."""
    names = ", ".join(sorted({f"{k.label} ({k.fingerprint})" for k in keys}))
    return WrongKey(
        f"{names} does not open this CMS envelope, which is for {header.recipients_text()}: "
        "it was made for another key (or the recipient info holding the wrapped content key "
        "is damaged)",
        obj=obj,
    )


# --- the content ---------------------------------------------------------------


class CmsDecryptReader:
    """The plaintext of the envelope, as a Reader; the end is checked.

    CBC: the last block's PKCS#7 padding. GCM: the tag, which proves every
    content byte (and the nonce) is as encrypted. The structure around the
    content is checked by ContentReader before the end is reported.
    """

    def __init__(
        self,
        content: ContentReader,
        cipher: ContentCipher,
        cek: bytes,
        *,
        obj: str | None,
        tag_only_key: bool = False,
        cancel: CancelToken | None = None,
    ) -> None:
        self._content = content
        self._cancel = cancel or CancelToken()
        self._cipher = cipher
        self._obj = obj
        self._tag_only_key = tag_only_key
        self._gcm = cipher.spec.mode == "gcm"
        self._block = cipher.spec.block
        self._aead: AEADDecryptionContext | None = None
        self._dec: CipherContext
        if self._gcm:
            mode = modes.GCM(cipher.iv, min_tag_length=cipher.tag_len)
            self._dec = self._aead = Cipher(algorithms.AES(cek), mode).decryptor()
        else:
            self._dec = _decryptor(cipher, cek)
        self._held = b""
        self._eof = False
        self.ciphertext_bytes = 0
        self.padding_ok: bool | None = None
        self.tag_ok: bool | None = None

    def read(self, n: int = -1, /) -> bytes:
        while not self._eof:
            self._cancel.check()
            chunk = self._content.read(n if n > 0 else CHUNK)
            if not chunk:
                self._eof = True
                return self._finish()
            self.ciphertext_bytes += len(chunk)
            pt = self._dec.update(chunk)
            if self._gcm:
                return pt
            # The last block carries the padding: held back until the end.
            buf = self._held + pt
            if len(buf) <= self._block:
                self._held = buf
                continue
            self._held = buf[-self._block :]
            return buf[: -self._block]
        return b""

    def _finish(self) -> bytes:
        if self._gcm:
            return self._check_tag()
        if self.ciphertext_bytes % self._block or not self.ciphertext_bytes:
            raise TruncatedBackup(
                f"the encrypted content ({self.ciphertext_bytes} bytes) is not a whole number "
                f"of {self._block}-byte blocks",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        last = self._held + self._dec.finalize()
        self.padding_ok = _valid_padding(last, self._block)
        if not self.padding_ok:
            raise IntegrityError(
                f"the last {self._cipher.spec.name} block has invalid PKCS#7 padding: "
                "truncated or damaged",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        return last[: self._block - last[-1]]

    def _check_tag(self) -> bytes:
        tag = self._content.mac or b""
        why = None
        if len(tag) != self._cipher.tag_len:
            why = f"the GCM tag is {len(tag)} bytes, the header says {self._cipher.tag_len}"
        else:
            try:
                assert self._aead is not None
                tail = self._aead.finalize_with_tag(tag)
            except InvalidTag:
                why = "the AES-GCM authentication tag does not match"
            else:
                self.tag_ok = True
                return tail
        self.tag_ok = False
        maybe_key = (
            "; or the key is not this envelope's (its PKCS#1 v1.5 unwrap could only be "
            "confirmed by this tag)"
            if self._tag_only_key
            else ""
        )
        raise IntegrityError(
            f"{why}: the content, its nonce or the tag was changed after encryption{maybe_key}",
            obj=self._obj,
            layer=Layer.CIPHER,
        )


def open_cms_stream(
    raw: Reader,
    fmt: Fmt,
    probe: CmsProbe,
    key: CmsKey,
    obj: str | None,
    cancel: CancelToken | None = None,
) -> tuple[CmsDecryptReader, ContentReader]:
    """Parse the downloaded object's header again (it must be the one the key
    was found with) and return the plaintext reader over its content."""
    r = BerReader(_der_stream(raw, fmt, obj))
    try:
        header = EnvelopeParser(r, obj).parse()
    except BerError as exc:
        raise cms_error(exc, obj, "its header") from None
    if header != probe.header:
        raise IntegrityError(
            "the header read during the download differs from the one read to find the key: "
            "the object changed while it was read",
            obj=obj,
            layer=Layer.CIPHER,
        )
    content = ContentReader(r, header, obj)
    dec = CmsDecryptReader(
        content, header.cipher, bytes(key.cek), obj=obj, tag_only_key=key.tag_only, cancel=cancel
    )
    return dec, content
