"""The wire format of a wrapped key, kept exactly through a rotation.

People's 3 a.m. runbooks call ``openssl rsautl -decrypt -in X.key`` on what the
producer wrote: a re-wrapped key must read the same way. So the new object keeps
the original's padding (SecureCircle's and rds-postgres-backup-s3-secure's
``rsautl`` are PKCS#1 v1.5), its encoding (raw bytes, or base64 with the same line
width, line ending and final newline) and, inside, the very bytes the old key
unwrapped to (the whole 3-line key file of rds-postgres-backup-s3-secure).
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import UsageError
from ..keys.pem import OAEP_VARIANTS

PKCS1V15 = "PKCS#1 v1.5"
OAEP_SHA256 = "OAEP-SHA256"
_PADDINGS: dict[str, padding.AsymmetricPadding] = {
    PKCS1V15: padding.PKCS1v15(),
    **dict(OAEP_VARIANTS),
}
# Bytes a padding needs besides the message (RFC 8017): k - 11 for v1.5, k - 2h - 2 for OAEP.
_OVERHEAD = {PKCS1V15: 11, "OAEP-SHA1": 42, OAEP_SHA256: 66, "OAEP-SHA256/MGF1-SHA1": 66}


class Encoding(enum.Enum):
    BINARY = "binary"
    BASE64 = "base64"


@dataclass(frozen=True)
class WireFormat:
    encoding: Encoding
    line_width: int = 0  # base64: characters per line; 0 = one line
    newline: str = "\n"
    final_newline: bool = False

    def describe(self) -> str:
        if self.encoding is Encoding.BINARY:
            return "binary"
        lines = f"{self.line_width}-column lines" if self.line_width else "one line"
        end = "CRLF" if self.newline == "\r\n" else "LF"
        return f"base64, {lines}, {end}{', final newline' if self.final_newline else ''}"

    def to_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding.value,
            "line_width": self.line_width,
            "newline": "CRLF" if self.newline == "\r\n" else "LF",
            "final_newline": self.final_newline,
        }


def detect(raw: bytes, ciphertext: bytes) -> WireFormat | None:
    """How ``raw`` (the object) encodes ``ciphertext`` (what unlock.read_wrapped_key
    decoded); None when no format here reproduces ``raw`` byte for byte."""
    if raw == ciphertext:
        return WireFormat(Encoding.BINARY)
    newline = "\r\n" if b"\r\n" in raw else "\n"
    lines = raw.decode("ascii", "replace").split(newline)
    final = lines[-1] == ""
    body = lines[:-1] if final else lines
    width = len(body[0]) if len(body) > 1 else 0
    fmt = WireFormat(Encoding.BASE64, width, newline, final)
    return fmt if encode(fmt, ciphertext) == raw else None


def encode(fmt: WireFormat, ciphertext: bytes) -> bytes:
    if fmt.encoding is Encoding.BINARY:
        return ciphertext
    text = base64.b64encode(ciphertext).decode("ascii")
    w = fmt.line_width or len(text)
    lines = [text[i : i + w] for i in range(0, len(text), w)]
    return (fmt.newline.join(lines) + (fmt.newline if fmt.final_newline else "")).encode()


def decode(fmt: WireFormat, raw: bytes) -> bytes:
    if fmt.encoding is Encoding.BINARY:
        return raw
    return base64.b64decode(raw.translate(None, b"\r\n"), validate=True)


def wrap(public: rsa.RSAPublicKey, padding_name: str, secret: bytes) -> bytes:
    """Encrypt ``secret`` to ``public`` with the named padding (the original's)."""
    pad = _PADDINGS.get(padding_name)
    if pad is None:
        raise UsageError(f"cannot re-wrap with the padding {padding_name!r}")
    room = (public.key_size + 7) // 8 - _OVERHEAD[padding_name]
    if len(secret) > room:
        raise UsageError(
            f"the secret ({len(secret)} bytes) does not fit RSA-{public.key_size} with "
            f"{padding_name} (at most {room} bytes): use a larger new key"
        )
    return public.encrypt(secret, pad)
