"""The base64 forms of an envelope, kept exactly through a rotation: CMS's PEM
(``-outform PEM``) and S/MIME (openssl smime's default) forms, and gpg's ASCII armor
(``gpg --armor``, whose CRC-24 checksum line, RFC 4880 §6.1, is recomputed).

In these forms a recipient added near the start shifts every base64 character after
it, so the content cannot be copied range for range in the store: the object is read
whole, its DER rotated (cmsenvelope.py) and written whole in the very layout it had
(the same text before the base64, line width, line ending and text after). That
passes the object through this machine, so it is done only for objects up to
compose.WHOLE_MAX; a larger one is reported as not rotated, with the reason. A layout
this code could not reproduce byte for byte is not rotated either.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..plumbing.streams import BytesReader
from ..records.identity import SourceIdentity


class NotReproducible(ValueError):
    """The text around the base64 is laid out in a way a rewrite would not keep."""


@dataclass(frozen=True)
class TextForm:
    before: bytes  # up to the first base64 line: the BEGIN line, or the MIME headers
    after: bytes  # from the END line (or the blank line closing the MIME body) on
    width: int  # characters per base64 line
    newline: bytes
    size: int  # the original object's size
    crc: bool = False  # gpg armor: a "=" CRC-24 line after the base64

    def encode(self, der: bytes) -> bytes:
        text = base64.b64encode(der)
        lines = [text[i : i + self.width] for i in range(0, len(text), self.width)]
        if self.crc:
            lines.append(b"=" + base64.b64encode(crc24(der)))
        return self.before + self.newline.join(lines) + self.newline + self.after


_CRC_INIT, _CRC_POLY = 0xB704CE, 0x1864CFB


def crc24(data: bytes) -> bytes:
    crc = _CRC_INIT
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC_POLY
    return (crc & 0xFFFFFF).to_bytes(3, "big")


def split(raw: bytes) -> tuple[TextForm, bytes]:
    """The layout of a PEM, S/MIME or armored envelope and the binary it carries."""
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    lines = raw.split(newline)
    armor = raw.startswith(b"-----BEGIN PGP MESSAGE")
    if armor and b"" in lines:
        start = lines.index(b"") + 1  # after the armor headers and their blank line
    elif raw.startswith(b"-----BEGIN") and not armor:
        start = 1
    elif b"" in lines and not armor:
        start = lines.index(b"") + 1  # the MIME headers end at the first blank line
    else:
        raise NotReproducible("neither a PEM block nor MIME headers")
    end = start
    while end < len(lines) and lines[end] and not lines[end].startswith((b"-----", b"=")):
        end += 1
    if end == start:
        raise NotReproducible("no base64 after the header")
    try:
        der = base64.b64decode(b"".join(lines[start:end]), validate=True)
    except binascii.Error:
        raise NotReproducible("the body is not base64") from None
    if armor and not (end < len(lines) and lines[end].startswith(b"=")):
        raise NotReproducible("no armor checksum line")
    form = TextForm(
        newline.join(lines[:start]) + newline,
        newline.join(lines[end + 1 if armor else end :]),
        len(lines[start]),
        newline,
        len(raw),
        crc=armor,
    )
    if form.encode(der) != raw:
        raise NotReproducible("its base64 lines are not of one width")
    return form, der


class BytesSource:
    """A small object already read, as a Source (the decoded DER of a text form)."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def identity(self) -> SourceIdentity:
        return SourceIdentity(self.name, len(self._data), None)

    def read_range(self, start: int, length: int) -> bytes:
        if start < 0:
            start = max(0, len(self._data) + start)
        return self._data[start : start + length]

    def open(self) -> BytesReader:
        return BytesReader(self._data)
