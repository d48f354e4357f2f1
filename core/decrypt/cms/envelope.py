"""CMS (S/MIME) envelopes: EnvelopedData and AuthEnvelopedData, read as a stream.

``openssl smime -encrypt`` and ``openssl cms -encrypt`` (RFC 5652, RFC 5083)
write one ASN.1 structure: the recipients (each holding the content key
wrapped for one RSA key), the content cipher and its IV or nonce, then the
encrypted content itself, then for AuthEnvelopedData the GCM tag. The
content is the whole backup, so the header is parsed by :class:`EnvelopeParser`
and the content handed on piece by piece by :class:`ContentReader`, which at
the end checks that every container closes where it should and that nothing
follows the structure.

What the structure proves: nothing by itself. EnvelopedData (AES-CBC) has no
MAC; the recipient identifiers and the CBC IV are protected by nothing. In
AuthEnvelopedData the GCM tag covers the nonce and every content byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import IntegrityError, Layer, TruncatedBackup, UnsupportedFormat
from ...plumbing.streams import CHUNK, BytesReader
from .ber import (
    CONTEXT,
    INTEGER,
    NULL,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    UNIVERSAL,
    BerError,
    BerReader,
    BerTruncated,
    Header,
    decode_int,
    decode_oid,
)

ENVELOPED_DATA = "1.2.840.113549.1.7.3"
AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
ID_DATA = "1.2.840.113549.1.7.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSAES_OAEP = "1.2.840.113549.1.1.7"
MGF1 = "1.2.840.113549.1.1.8"
P_SPECIFIED = "1.2.840.113549.1.1.9"
HASHES = {
    "1.3.14.3.2.26": "SHA1",
    "2.16.840.1.101.3.4.2.1": "SHA256",
    "2.16.840.1.101.3.4.2.2": "SHA384",
    "2.16.840.1.101.3.4.2.3": "SHA512",
    "2.16.840.1.101.3.4.2.4": "SHA224",
}
# The RSAES-OAEP parameters keys.py (and the token code) decode, by their names there.
OAEP_NAMES = {
    ("SHA1", "SHA1"): "OAEP-SHA1",
    ("SHA256", "SHA256"): "OAEP-SHA256",
    ("SHA256", "SHA1"): "OAEP-SHA256/MGF1-SHA1",
}
PKCS1_V15 = "PKCS#1 v1.5"

Mode = Literal["cbc", "gcm"]


@dataclass(frozen=True)
class ContentCipherSpec:
    name: str
    algorithm: Literal["aes", "3des"]
    key_len: int
    mode: Mode
    block: int


CONTENT_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": ContentCipherSpec("AES-128-CBC", "aes", 16, "cbc", 16),
    "2.16.840.1.101.3.4.1.22": ContentCipherSpec("AES-192-CBC", "aes", 24, "cbc", 16),
    "2.16.840.1.101.3.4.1.42": ContentCipherSpec("AES-256-CBC", "aes", 32, "cbc", 16),
    "2.16.840.1.101.3.4.1.6": ContentCipherSpec("AES-128-GCM", "aes", 16, "gcm", 16),
    "2.16.840.1.101.3.4.1.26": ContentCipherSpec("AES-192-GCM", "aes", 24, "gcm", 16),
    "2.16.840.1.101.3.4.1.46": ContentCipherSpec("AES-256-GCM", "aes", 32, "gcm", 16),
    # openssl smime/cms without a cipher option (OpenSSL 3.0: still the default).
    "1.2.840.113549.3.7": ContentCipherSpec("DES-EDE3-CBC", "3des", 24, "cbc", 8),
}
_NAME_ATTRS = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_SMALL = 64 * 1024  # bound for any header element read whole


@dataclass(frozen=True)
class Recipient:
    """One KeyTransRecipientInfo: the content key wrapped for one RSA key."""

    index: int  # 1-based position among the recipient infos
    version: int
    rid: str  # "issuer CN=..., serial 0A:1B" or "subjectKeyIdentifier 12:34"
    ski: bytes | None
    padding: str | None  # PKCS1_V15 / an OAEP_NAMES value; None: not supported
    algorithm: str  # in words, for messages
    encrypted_key: bytes


@dataclass(frozen=True)
class ContentCipher:
    spec: ContentCipherSpec
    iv: bytes  # the CBC IV or the GCM nonce
    tag_len: int = 0  # GCM


@dataclass(frozen=True)
class EnvelopeHeader:
    auth: bool  # AuthEnvelopedData (AES-GCM)
    version: int
    originator_info: bool
    recipients: tuple[Recipient, ...]
    other_recipients: tuple[str, ...]  # kinds Sealcheck cannot use: "key agreement", ...
    cipher: ContentCipher
    content: Header  # the encryptedContent [0] element
    total_length: int | None  # of the whole structure, when its length is definite

    @property
    def kind(self) -> str:
        return "AuthEnvelopedData" if self.auth else "EnvelopedData"

    def recipients_text(self) -> str:
        parts = [f"#{r.index} {r.rid} ({r.algorithm})" for r in self.recipients]
        parts += [f"a {k} recipient" for k in self.other_recipients]
        return "; ".join(parts)


def hexid(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def cms_error(exc: BerError, obj: str | None, where: str) -> IntegrityError | TruncatedBackup:
    """A structural problem in words, in the envelope (cipher) layer."""
    if isinstance(exc, BerTruncated):
        return TruncatedBackup(
            f"the object ends inside the CMS structure ({where}): {exc}",
            obj=obj,
            layer=Layer.CIPHER,
        )
    return IntegrityError(
        f"the CMS structure is malformed ({where}): {exc}", obj=obj, layer=Layer.CIPHER
    )


def unsupported(what: str, obj: str | None) -> UnsupportedFormat:
    return UnsupportedFormat(what, obj=obj, layer=Layer.CIPHER)


class EnvelopeParser:
    """Parse a ContentInfo up to the start of its encrypted content."""

    def __init__(self, r: BerReader, obj: str | None) -> None:
        self._r = r
        self._obj = obj

    def parse(self) -> EnvelopeHeader:
        r = self._r
        top = r.expect(UNIVERSAL, SEQUENCE, "a ContentInfo SEQUENCE", constructed=True)
        r.enter(top)
        ctype = self._oid("the content type")
        if ctype not in (ENVELOPED_DATA, AUTH_ENVELOPED_DATA):
            raise unsupported(f"CMS content type {ctype} is not an encrypted envelope", self._obj)
        auth = ctype == AUTH_ENVELOPED_DATA
        r.enter(r.expect(CONTEXT, 0, "the [0] content", constructed=True))
        r.enter(r.expect(UNIVERSAL, SEQUENCE, "the envelope SEQUENCE", constructed=True))
        version = self._int("the version")
        originator = False
        h = r.header()
        if h.is_(CONTEXT, 0) and h.constructed:  # originatorInfo: certificates, not needed
            originator = True
            r.skip(h)
            h = r.header()
        if not (h.is_(UNIVERSAL, SET) and h.constructed):
            raise BerError(f"expected the recipient infos SET, found {h.describe()}")
        recipients, others = self._recipients(h)
        cipher = self._encrypted_content_info()
        content = r.header()
        if not content.is_(CONTEXT, 0):
            raise unsupported(
                "the envelope carries no content (detached content is not supported)", self._obj
            )
        self._check_versions(auth, version, originator, recipients, others)
        total = None if top.length is None else top.header_len + top.length
        return EnvelopeHeader(auth, version, originator, recipients, others, cipher, content, total)

    # --- pieces ---------------------------------------------------------------

    def _oid(self, what: str) -> str:
        return decode_oid(self._r.value(self._r.expect(UNIVERSAL, OID, what), 256))

    def _int(self, what: str) -> int:
        return decode_int(self._r.value(self._r.expect(UNIVERSAL, INTEGER, what), 64))

    def _recipients(self, set_h: Header) -> tuple[tuple[Recipient, ...], tuple[str, ...]]:
        r = self._r
        r.enter(set_h)
        found: list[Recipient] = []
        others: list[str] = []
        index = 0
        while not r.at_end():
            index += 1
            h = r.header()
            if h.is_(UNIVERSAL, SEQUENCE) and h.constructed:
                found.append(self._ktri(h, index))
                continue
            kinds = {1: "key agreement", 2: "key encryption key", 3: "password", 4: "other"}
            if h.cls != CONTEXT or h.tag not in kinds:
                raise BerError(f"expected a recipient info, found {h.describe()}")
            others.append(kinds[h.tag])
            r.skip(h)
        r.leave()
        if index == 0:
            raise BerError("the envelope has no recipient")
        return tuple(found), tuple(others)

    def _ktri(self, h: Header, index: int) -> Recipient:
        r = self._r
        r.enter(h)
        version = self._int("the recipient info version")
        rid_h = r.header()
        ski: bytes | None = None
        if rid_h.is_(CONTEXT, 0) and not rid_h.constructed:
            ski = r.value(rid_h, 256)
            rid = f"subjectKeyIdentifier {hexid(ski)}"
            want = 2
        elif rid_h.is_(UNIVERSAL, SEQUENCE) and rid_h.constructed:
            rid = issuer_and_serial(r.element_bytes(rid_h, _SMALL))
            want = 0
        else:
            raise BerError(f"expected a recipient identifier, found {rid_h.describe()}")
        if version != want:
            # RFC 5652 §6.2.1: version 0 with issuer and serial, 2 with a key identifier.
            raise BerError(f"recipient #{index} has version {version}, its identifier needs {want}")
        alg_h = r.expect(UNIVERSAL, SEQUENCE, "the key encryption algorithm", constructed=True)
        padding, words = key_transport(r.element_bytes(alg_h, _SMALL))
        wrapped = r.value(r.expect(UNIVERSAL, OCTET_STRING, "the encrypted key"), _SMALL)
        r.leave()
        return Recipient(index, version, rid, ski, padding, words, wrapped)

    def _encrypted_content_info(self) -> ContentCipher:
        r = self._r
        r.enter(r.expect(UNIVERSAL, SEQUENCE, "the encrypted content info", constructed=True))
        ctype = self._oid("the encrypted content type")
        if ctype != ID_DATA:
            raise unsupported(f"the encrypted content type is {ctype}, not data", self._obj)
        alg_h = r.expect(UNIVERSAL, SEQUENCE, "the content cipher", constructed=True)
        return content_cipher(r.element_bytes(alg_h, _SMALL), self._obj)

    def _check_versions(
        self,
        auth: bool,
        version: int,
        originator: bool,
        recipients: tuple[Recipient, ...],
        others: tuple[str, ...],
    ) -> None:
        """The envelope's version follows from its contents (RFC 5652 §6.1, RFC 5083 §2.1)."""
        if auth:
            ok = version == 0
        elif originator:
            ok = version in (2, 3, 4)
        elif "password" in others or "other" in others:
            ok = version == 3
        elif not others and all(x.version == 0 for x in recipients):
            ok = version in (0, 2)  # 2 only with unprotected attributes: checked at the end
        else:
            ok = version == 2
        if not ok:
            raise BerError(
                f"the {'Auth' if auth else ''}EnvelopedData version {version} does "
                "not match its recipients"
            )


def _sub(data: bytes) -> BerReader:
    return BerReader(BytesReader(data))


def issuer_and_serial(value: bytes) -> str:
    """'issuer CN=..., serial 0A:1B' from an IssuerAndSerialNumber's value."""
    r = _sub(value)
    name_h = r.expect(UNIVERSAL, SEQUENCE, "the issuer name", constructed=True)
    name = describe_name(r.element_bytes(name_h, _SMALL))
    serial = r.value(r.expect(UNIVERSAL, INTEGER, "the serial number"), 128)
    if not r.at_eof():
        raise BerError("data after the serial number")
    return f"issuer {name}, serial {hexid(serial)}"


def describe_name(value: bytes) -> str:
    """A distinguished name as 'CN=..., O=...' (unknown attributes by their OID)."""
    r = _sub(value)
    parts: list[str] = []
    while not r.at_eof():
        rdn = r.expect(UNIVERSAL, SET, "a name component", constructed=True)
        r.enter(rdn)
        while not r.at_end():
            r.enter(r.expect(UNIVERSAL, SEQUENCE, "an attribute", constructed=True))
            oid = decode_oid(r.value(r.expect(UNIVERSAL, OID, "an attribute type"), 64))
            text = r.value(r.header(), 1024).decode("utf-8", "replace")
            r.leave()
            parts.append(f"{_NAME_ATTRS.get(oid, oid)}={text[:64]}")
        r.leave()
    return ", ".join(parts) or "(empty name)"


def _algorithm(value: bytes) -> tuple[str, BerReader]:
    r = _sub(value)
    return decode_oid(r.value(r.expect(UNIVERSAL, OID, "an algorithm"), 64)), r


def key_transport(value: bytes) -> tuple[str | None, str]:
    """(padding name as keys.py knows it, or None; the algorithm in words)."""
    oid, r = _algorithm(value)
    if oid == RSA_ENCRYPTION:
        if not r.at_eof():
            r.value(r.expect(UNIVERSAL, NULL, "NULL parameters"), 0)
        return PKCS1_V15, "RSA PKCS#1 v1.5"
    if oid != RSAES_OAEP:
        return None, f"key transport {oid}"
    hash_name = mgf_hash = "SHA1"  # the defaults of RSAES-OAEP-params
    label = False
    if not r.at_eof():
        r.enter(r.expect(UNIVERSAL, SEQUENCE, "RSAES-OAEP parameters", constructed=True))
        while not r.at_end():
            h = r.header()
            body = _sub(r.element_bytes(h, 4096))
            inner = body.expect(UNIVERSAL, SEQUENCE, "an algorithm", constructed=True)
            alg, params = _algorithm(body.element_bytes(inner, 4096))
            if h.is_(CONTEXT, 0):
                hash_name = HASHES.get(alg, alg)
            elif h.is_(CONTEXT, 1):
                if alg != MGF1:
                    return None, f"RSAES-OAEP with mask generation {alg}"
                ph = params.expect(UNIVERSAL, SEQUENCE, "the MGF1 hash", constructed=True)
                mgf_oid = _algorithm(params.element_bytes(ph, 4096))[0]
                mgf_hash = HASHES.get(mgf_oid, mgf_oid)
            elif h.is_(CONTEXT, 2):
                label = alg != P_SPECIFIED or bool(_p_specified(params))
        r.leave()
    words = f"RSAES-OAEP {hash_name}, MGF1-{mgf_hash}"
    if label:
        return None, words + " with a label"
    return OAEP_NAMES.get((hash_name, mgf_hash)), words


def _p_specified(params: BerReader) -> bytes:
    if params.at_eof():
        return b""
    return params.value(params.expect(UNIVERSAL, OCTET_STRING, "the OAEP label"), 4096)


def content_cipher(value: bytes, obj: str | None) -> ContentCipher:
    oid, r = _algorithm(value)
    spec = CONTENT_CIPHERS.get(oid)
    if spec is None:
        raise unsupported(
            f"the content cipher {oid} is not supported (AES-CBC, AES-GCM and DES-EDE3-CBC are)",
            obj,
        )
    if spec.mode == "cbc":
        iv = r.value(r.expect(UNIVERSAL, OCTET_STRING, "the CBC IV"), 64)
        if len(iv) != spec.block:
            raise BerError(f"the {spec.name} IV is {len(iv)} bytes, not {spec.block}")
        return ContentCipher(spec, iv)
    r.enter(r.expect(UNIVERSAL, SEQUENCE, "the GCM parameters", constructed=True))
    nonce = r.value(r.expect(UNIVERSAL, OCTET_STRING, "the GCM nonce"), 64)
    tag_len = 12  # GCMParameters' default
    if not r.at_end():
        tag_len = decode_int(r.value(r.expect(UNIVERSAL, INTEGER, "the GCM tag length"), 8))
    r.leave()
    if len(nonce) != 12:
        raise unsupported(f"a {len(nonce)}-byte GCM nonce (12 bytes are supported)", obj)
    if not 12 <= tag_len <= 16:
        raise unsupported(f"a {tag_len}-byte GCM tag (12 to 16 bytes are supported)", obj)
    return ContentCipher(spec, nonce, tag_len)


class ContentReader:
    """The encrypted content's bytes, whatever their encoding; the structure's end checked.

    Primitive content (DER) is one value; constructed content (``-stream``,
    BER) is a tree of OCTET STRING pieces, each read through. At the end the
    rest of the structure is read: unprotected attributes, the GCM tag
    (``mac``), every container's end, and nothing after the last one.
    """

    def __init__(self, r: BerReader, header: EnvelopeHeader, obj: str | None) -> None:
        self._r = r
        self._header = header
        self._obj = obj
        self._base = r.depth
        self._left = 0
        self.bytes = 0
        self.finished = False
        self.mac: bytes | None = None
        self.unprotected_attrs = False
        c = header.content
        if c.constructed:
            r.enter(c)
        else:
            self._left = c.length or 0

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self.read_raw(n if n > 0 else CHUNK)
        except BerError as exc:
            where = f"after {self.bytes} bytes of encrypted content"
            raise cms_error(exc, self._obj, where) from None

    def read_raw(self, n: int) -> bytes:
        """As read, but a structural problem is raised as the BerError it is."""
        r = self._r
        while True:
            if self._left:
                data = r.read_some(min(n, self._left))
                self._left -= len(data)
                self.bytes += len(data)
                return data
            if self.finished:
                return b""
            if r.depth > self._base:
                if r.at_end():
                    r.leave()
                    continue
                h = r.header()
                if not h.is_(UNIVERSAL, OCTET_STRING):
                    raise BerError(f"expected a piece of the content, found {h.describe()}")
                if h.constructed:
                    r.enter(h)
                else:
                    self._left = h.length or 0
                continue
            self._end_of_structure()
            self.finished = True
            return b""

    def _end_of_structure(self) -> None:
        r = self._r
        r.leave()  # EncryptedContentInfo
        h = r.header() if not r.at_end() else None
        if self._header.auth:
            if h is not None and h.is_(CONTEXT, 1):
                raise unsupported(
                    "AuthEnvelopedData with authenticated attributes is not supported", self._obj
                )
            if h is None or not h.is_(UNIVERSAL, OCTET_STRING):
                raise BerError("the GCM tag (mac) is missing")
            self.mac = r.value(h, 64)
            h = r.header() if not r.at_end() else None
            if h is not None and h.is_(CONTEXT, 2) and h.constructed:
                r.skip(h)  # unauthenticated attributes
                h = None
        elif h is not None and h.is_(CONTEXT, 1) and h.constructed:
            self.unprotected_attrs = True
            r.skip(h)
            h = None
        if h is not None:
            raise BerError(f"unexpected {h.describe()} after the content")
        hdr = self._header
        plain = not hdr.originator_info and not hdr.other_recipients
        if not hdr.auth and plain and all(x.version == 0 for x in hdr.recipients):
            # Version 0 exactly when nothing needs 2: here, unprotected attributes.
            if hdr.version != (2 if self.unprotected_attrs else 0):
                raise BerError(
                    f"the EnvelopedData version {hdr.version} does not match its contents"
                )
        for _ in range(3):  # the envelope SEQUENCE, the [0] wrapper, the ContentInfo
            r.leave()
        if not r.at_eof():
            raise BerError("data follows the end of the CMS structure")
