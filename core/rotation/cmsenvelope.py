"""Rotating CMS (S/MIME) envelopes: ``openssl smime|cms -encrypt`` (issues 13, 18).

The same design as gpg's (envelope.py): the rotated object is the original with one
more recipient, written beside it under its link name, the encrypted content copied
unchanged (in the store, for a large object). Here the recipients are the
RecipientInfos SET near the start of the EnvelopedData / AuthEnvelopedData: the content
key is unwrapped with an old key and proved on the content exactly as ``verify`` proves
it (decrypt/cms/key.py: the first blocks decrypt to a known format and, for CBC in DER,
the last block's padding is valid; OAEP is authenticated), then a KeyTransRecipientInfo
for the new key is appended to the SET:

    SEQUENCE { version 2, [0] subjectKeyIdentifier, the old recipient's own
               keyEncryptionAlgorithm (PKCS#1 v1.5, or OAEP with its parameters),
               OCTET STRING the content key wrapped for the new key }

The identifier is the new key's SHA-1 key identifier (RFC 5280 §4.2.1.2 method 1, what
openssl puts in a certificate's subjectKeyIdentifier by default), since a PEM key has
no issuer and serial; ``openssl cms -decrypt -inkey NEW`` tries each recipient with the
key. An EnvelopedData of version 0 becomes version 2, as RFC 5652 §6.1 requires once a
recipient has version 2 (the byte keeps its length); AuthEnvelopedData stays version 0.
The definite lengths of the containers around the SET grow by what was added; an
indefinite-length (streamed) container keeps its header. Everything after the SET (the
content cipher, the encrypted content, a GCM tag, end-of-contents octets) is the
original's. Only the DER (binary) form is rotated: in the PEM and S/MIME forms the
content is base64 whose every character would shift.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..decrypt.cms.ber import CONTEXT, SEQUENCE, SET, UNIVERSAL, BerError, BerReader, Header
from ..decrypt.cms.key import probe_cms, unlock_cms
from ..errors import SealcheckError
from ..formats import Fmt
from ..keys.base import KeySource
from ..plumbing.progress import CancelToken
from ..plumbing.streams import BytesReader
from .cmstext import BytesSource, NotReproducible, TextForm, split
from .envelope import EnvelopeError, HeldKey, digest
from .newkey import NewKey
from .wire import wrap

CMS = "cms"


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


@dataclass(frozen=True)
class _Layout:
    """Where the pieces a new recipient changes sit in the original's first bytes."""

    containers: tuple[Header, ...]  # ContentInfo, [0], the envelope SEQUENCE
    version: Header
    recipients: Header  # the RecipientInfos SET
    insert_at: int  # the end of the SET's content (before its end-of-contents if any)
    algorithms: tuple[bytes, ...]  # each KTRI's keyEncryptionAlgorithm, whole (None: other)


def _layout(head: bytes) -> _Layout:
    r = BerReader(BytesReader(head))
    top = r.header()
    r.enter(top)
    r.skip(r.header())  # the content type OID
    explicit = r.header()
    r.enter(explicit)
    env = r.header()
    r.enter(env)
    version = r.header()
    r.skip(version)
    h = r.header()
    if h.is_(CONTEXT, 0) and h.constructed:  # originatorInfo
        r.skip(h)
        h = r.header()
    if not h.is_(UNIVERSAL, SET):
        raise BerError(f"expected the recipient infos SET, found {h.describe()}")
    r.enter(h)
    algs: list[bytes] = []
    while not r.at_end():
        ri = r.header()
        if not ri.is_(UNIVERSAL, SEQUENCE):
            algs.append(b"")
            r.skip(ri)
            continue
        r.enter(ri)
        r.skip(r.header())  # version
        r.skip(r.header())  # rid
        alg = r.header()
        algs.append(head[alg.offset : alg.value_offset + (alg.length or 0)])
        r.skip(alg)
        while not r.at_end():
            r.skip(r.header())
        r.leave()
    return _Layout((top, explicit, env), version, h, r.pos, tuple(algs))


@dataclass
class CmsEnvelope:
    """What the old key proved for one CMS envelope. ``secret`` is wiped by ``wipe``."""

    key: HeldKey
    padding: str  # the unwrapped recipient's key transport, reused for the new one
    secret: bytearray  # the content-encryption key
    head: bytes
    layout: _Layout
    algorithm: bytes  # its keyEncryptionAlgorithm, whole
    skis: tuple[bytes, ...]  # the recipients' key identifiers
    auth: bool
    kind: str = CMS
    form: Fmt = Fmt.CMS_DER
    text: TextForm | None = None  # a PEM or S/MIME object: how to write it back
    der: bytes = b""  # and its whole DER (a text form is small)

    @property
    def wire(self) -> str:
        return self.form.value

    @property
    def old_bytes(self) -> bytes:
        """The original's RecipientInfos SET (what the report's old digest is of)."""
        s = self.layout.recipients
        return self.head[s.offset : self.layout.insert_at]

    def already(self, public: Any, _key_id: bytes) -> bool:
        return x509.SubjectKeyIdentifier.from_public_key(public).digest in self.skis

    def rebuild(self, public: Any, _key_id: bytes) -> tuple[bytes, int]:
        """(the new first bytes, where the original's bytes resume)."""
        ski = x509.SubjectKeyIdentifier.from_public_key(public).digest
        wrapped = wrap(public, self.padding, bytes(self.secret))
        ktri = _tlv(
            0x30, _tlv(0x02, b"\x02") + _tlv(0x80, ski) + self.algorithm + _tlv(0x04, wrapped)
        )
        lay, head = self.layout, self.head
        s = lay.recipients
        set_head, grow = self._header(s, len(ktri))
        body = set_head + head[s.value_offset : lay.insert_at] + ktri
        # The envelope's own content: the version (0 -> 2 in an EnvelopedData), what
        # lies before the SET (originatorInfo), the SET.
        v = lay.version
        end = v.value_offset + (v.length or 0)
        value = head[v.value_offset : end]
        if not self.auth and value == b"\x00":
            value = b"\x02"  # the same length: no container grows for it
        body = head[v.offset : v.value_offset] + value + head[end : s.offset] + body
        inner_start = v.offset
        for h in reversed(lay.containers):
            new_head, grow = self._header(h, grow)
            body = new_head + head[h.value_offset : inner_start] + body
            inner_start = h.offset
        if self.text is not None:  # the whole object, in its own text layout
            return self.text.encode(body + self.der[lay.insert_at :]), self.text.size
        return body, lay.insert_at

    def _header(self, h: Header, grow: int) -> tuple[bytes, int]:
        """The container's header for ``grow`` more bytes inside; and the growth seen
        from outside (its header may get longer too)."""
        old = self.head[h.offset : h.value_offset]
        if h.length is None:
            return old, grow
        new = old[:1] + _len(h.length + grow)
        return new, grow + len(new) - len(old)

    def reopens(self, stored: Any, new: NewKey, cancel: CancelToken) -> bool:
        """The stored object (a Source) opens with the new key to the same content key.
        An OpenPGP new key (gpg holds it) cannot open CMS here: the bytes compared by
        the caller are the proof then, as for a public-only key."""
        if new.private is None:
            return True
        keys = [new.private]
        try:
            probe = probe_cms(stored, self.form, stored.read_range(0, 65536))
            found = unlock_cms(probe, keys, cancel, stored.name)
        except SealcheckError:
            return False
        same = hmac.compare_digest(digest(found.cek), digest(self.secret))
        found.wipe()
        return same

    def wipe(self) -> None:
        self.secret[:] = bytes(len(self.secret))


def open_cms(data: Any, head: bytes, keys: Sequence[KeySource], cancel: CancelToken) -> CmsEnvelope:
    """Unwrap and prove the content key of a DER CMS envelope (``data``: a Source)."""
    try:
        probe = probe_cms(data, Fmt.CMS_DER, head)
        found = unlock_cms(probe, keys, cancel, data.name)
    except SealcheckError as exc:
        # The object is named by the engine's CannotOpen: the error's own words here.
        raise EnvelopeError(f"{exc.summary} {exc.detail}".strip()) from None
    try:
        layout = _layout(head)
    except BerError as exc:
        found.wipe()
        raise EnvelopeError(f"its recipient infos cannot be rewritten: {exc}") from None
    header = probe.header
    held = HeldKey(found.key.label, found.key.fingerprint)
    algorithm = layout.algorithms[found.recipient.index - 1]
    skis = tuple(r.ski for r in header.recipients if r.ski is not None)
    secret = bytearray(found.cek)
    found.wipe()
    return CmsEnvelope(held, found.padding, secret, head, layout, algorithm, skis, header.auth)


def open_cms_text(
    name: str, raw: bytes, form: Fmt, keys: Sequence[KeySource], cancel: CancelToken
) -> CmsEnvelope:
    """A small CMS envelope in PEM or S/MIME form, read whole (``raw``)."""
    try:
        text, der = split(raw)
    except NotReproducible as exc:
        raise EnvelopeError(
            f"a CMS envelope in {form.value} form that could not be rewritten byte for byte "
            f"({exc}): not rotated"
        ) from None
    env = open_cms(BytesSource(name, der), der[:65536], keys, cancel)
    env.form, env.text, env.der = form, text, der
    return env
