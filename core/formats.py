"""Format detection by magic bytes (formats.md §1).

One table, consulted by every layer: the openssl-enc trial decryption uses it
to recognise a correct key, the pipeline uses it to pick the decompressor and
to recognise the payload.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re


class Fmt(enum.Enum):
    OPENSSL_SALTED = "openssl-enc"
    OPENSSL_SALTED_B64 = "openssl-enc-base64"
    PGP_BINARY = "openpgp"
    PGP_ARMORED = "openpgp-armored"
    AGE = "age"
    XBCRYPT = "xbcrypt"
    CMS_DER = "cms"  # openssl smime/cms -encrypt -outform DER
    CMS_PEM = "cms-pem"  # -outform PEM: -----BEGIN CMS----- / PKCS7
    SMIME = "smime"  # -outform SMIME (the default): MIME headers, base64
    GZIP = "gzip"
    BZIP2 = "bzip2"
    ZSTD = "zstd"
    XZ = "xz"
    LZ4 = "lz4"
    QPRESS = "qpress"
    XBSTREAM = "xbstream"
    PGDUMP_CUSTOM = "pg_dump-custom"
    ZIP = "zip"
    TAR = "tar"
    SQL = "sql"  # plain SQL text (producer found by payload.py)


ENCRYPTED = {
    Fmt.OPENSSL_SALTED,
    Fmt.OPENSSL_SALTED_B64,
    Fmt.PGP_BINARY,
    Fmt.PGP_ARMORED,
    Fmt.AGE,
    Fmt.XBCRYPT,
    Fmt.CMS_DER,
    Fmt.CMS_PEM,
    Fmt.SMIME,
}
CMS = {Fmt.CMS_DER, Fmt.CMS_PEM, Fmt.SMIME}
COMPRESSED = {Fmt.GZIP, Fmt.BZIP2, Fmt.ZSTD, Fmt.XZ, Fmt.LZ4, Fmt.QPRESS}

# What an object is called that is no backup (by its name in a listing, or by its
# first bytes when it is opened).
NOT_A_BACKUP = "not a recognised backup"

_SQL_STARTS = (
    b"-- MySQL dump",
    b"-- MariaDB dump",
    b"--\n-- PostgreSQL database dump",
    b"-- PostgreSQL database dump",
    b"/*!",
    b"/*M!",
    b"SET ",
    b"CREATE ",
    b"DROP ",
    b"USE ",
    b"-- ",
    b"--\n",
    b"# ",
    b"#\n",
)


def _is_pgp_binary(b0: int) -> bool:
    if b0 & 0x80 == 0:
        return False
    if b0 & 0x40:  # new format: tag in the low 6 bits
        return (b0 & 0x3F) in (1, 3)  # PKESK or SKESK
    return ((b0 >> 2) & 0x0F) in (1, 3)


# The content types of an encrypted CMS envelope, as DER OBJECT IDENTIFIERs.
_CMS_OIDS = (
    bytes.fromhex("06092a864886f70d010703"),  # pkcs7-envelopedData
    bytes.fromhex("060b2a864886f70d0109100117"),  # id-ct-authEnvelopedData
)
_CMS_PEM = (b"-----BEGIN PKCS7-----", b"-----BEGIN CMS-----")


def is_cms_envelope(der: bytes) -> bool:
    """A ContentInfo SEQUENCE (any length form) whose content type is an envelope."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    n = der[1]
    start = 2 if n <= 0x80 else 2 + (n & 0x7F)
    return n != 0xFF and der[start:].startswith(_CMS_OIDS)


def _cms_text(head: bytes) -> Fmt | None:
    if head.startswith(_CMS_PEM):
        line_end = head.find(b"\n")
        body = head[line_end + 1 : line_end + 1 + 64].translate(None, b"\r\n")
        try:
            der = base64.b64decode(body[: len(body) - len(body) % 4])
        except binascii.Error:
            return None
        return Fmt.CMS_PEM if line_end > 0 and is_cms_envelope(der) else None
    if head.startswith((b"MIME-Version:", b"Content-")) and re.search(
        rb"(?im)^content-type:\s*application/(x-)?pkcs7-mime;[^\n]*enveloped-data", head[:4096]
    ):
        return Fmt.SMIME
    return None


def sniff(head: bytes) -> Fmt | None:
    """Recognise a format from its first bytes (16 are enough for all but tar)."""
    if is_cms_envelope(head):
        return Fmt.CMS_DER
    cms_text = _cms_text(head)
    if cms_text is not None:
        return cms_text
    if head.startswith(b"Salted__"):
        return Fmt.OPENSSL_SALTED
    if head.startswith(b"U2FsdGVkX1"):
        return Fmt.OPENSSL_SALTED_B64
    if head.startswith(b"-----BEGIN PGP MESSAGE-----"):
        return Fmt.PGP_ARMORED
    if head.startswith(b"age-encryption.org/v1") or head.startswith(
        b"-----BEGIN AGE ENCRYPTED FILE-----"
    ):
        return Fmt.AGE
    if head[:7] in (b"XBCRYP0",):
        return Fmt.XBCRYPT
    if head.startswith(b"\x1f\x8b\x08"):
        return Fmt.GZIP
    if len(head) >= 4 and head.startswith(b"BZh") and head[3:4] in b"123456789":
        return Fmt.BZIP2
    if head.startswith(b"\x28\xb5\x2f\xfd") or (
        len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and 0x50 <= head[0] <= 0x5F
    ):
        return Fmt.ZSTD
    if head.startswith(b"\xfd7zXZ\x00"):
        return Fmt.XZ
    if head.startswith(b"\x04\x22\x4d\x18"):
        return Fmt.LZ4
    if head.startswith(b"qpress10"):
        return Fmt.QPRESS
    if head.startswith(b"XBSTCK01"):
        return Fmt.XBSTREAM
    if head.startswith(b"PGDMP"):
        return Fmt.PGDUMP_CUSTOM
    if head.startswith(b"PK\x03\x04"):
        return Fmt.ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return Fmt.TAR
    if head.startswith(_SQL_STARTS):
        return Fmt.SQL
    if head and _is_pgp_binary(head[0]) and len(head) >= 3:
        return Fmt.PGP_BINARY
    return None


def looks_like_text(block: bytes) -> bool:
    """True for printable UTF-8 text (tabs and line breaks allowed).

    A weak oracle on its own: measured on random 16-byte blocks it passes
    about 3e-5 of them (UTF-8 multi-byte characters are mostly printable), so
    callers judge at least two blocks and, for CBC, the padding too.
    """
    if block.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark is text, not binary
        block = block[3:]
    if not block:
        return False
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The block may cut a multi-byte character at its end, and only there.
        if exc.reason != "unexpected end of data":
            return False
        try:
            text = block[: exc.start].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\n\r\t" for c in text)


def binary_magic(block: bytes) -> Fmt | None:
    """A format recognised by a binary magic of 3 bytes or more, else None.

    SQL is recognised by its first words, which are as short as two bytes
    ("# "): alone they say little, so text formats go through looks_like_text.
    """
    fmt = sniff(block)
    if fmt is None or fmt in (Fmt.SQL, Fmt.PGP_BINARY):
        return None
    return fmt


def recognised_plaintext(block: bytes) -> bool:
    """Is this the start of something a backup pipeline would encrypt?

    ``block`` is the first plaintext block or several: text is judged on all
    of it, so pass as many blocks as the caller has.
    """
    return binary_magic(block) is not None or looks_like_text(block)
