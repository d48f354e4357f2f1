"""Percona xbcrypt (``XBCRYP01``/``02``/``03``): chunk-by-chunk AES-CTR decryption
(formats.md §5.2, issue 16).

Every chunk is independent: its own header, a CRC-32 of its ciphertext, and a
fresh counter (v3: the stored IV; v2 stores an IV that XtraBackup never used, so
the counter is zero as in v1). v3 appends the SHA-256 of the chunk's plaintext,
which proves the key; v1/v2 carry nothing that proves it, so a wrong key gives
garbage that only the layers below (qpress checksums, InnoDB pages) can catch.

The algorithm is not recorded: XtraBackup requires the key length to match it
(16, 24, 32 bytes: AES-128/192/256), so the key says which.

A push decoder (``feed`` → plaintext, ``finish``) so that the xbstream reader can
run one per member; :class:`XbcryptReader` wraps it for a whole-stream envelope.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import IntegrityError, Layer, TruncatedBackup, WrongKey
from ..plumbing.progress import CancelToken
from ..plumbing.streams import CHUNK, Reader

MAGICS = {b"XBCRYP01": 1, b"XBCRYP02": 2, b"XBCRYP03": 3}
_FIXED = 36  # magic, reserved, olen, elen, checksum
_SHA = 32
# XtraBackup's chunks are --encrypt-chunk-size (64 KiB by default, at most a few
# MiB in practice); a length field beyond this is damage, not a chunk to buffer.
MAX_CHUNK = 1 << 28
AES_BY_LEN = {16: "AES-128", 24: "AES-192", 32: "AES-256"}


@dataclass
class XbcryptStats:
    """What the decryption proved, for the cipher and key layers."""

    versions: set[int] = field(default_factory=set)
    chunks: int = 0
    ciphertext_bytes: int = 0
    plaintext_bytes: int = 0
    sha256_checked: int = 0  # v3 chunks whose plaintext hash matched

    def merge(self, other: XbcryptStats) -> None:
        self.versions |= other.versions
        self.chunks += other.chunks
        self.ciphertext_bytes += other.ciphertext_bytes
        self.plaintext_bytes += other.plaintext_bytes
        self.sha256_checked += other.sha256_checked

    @property
    def key_proved(self) -> bool:
        """Every chunk was v3 and its hash matched: the key is the right one."""
        return self.chunks > 0 and self.versions == {3} and self.sha256_checked == self.chunks


def cipher_name(key: bytes | bytearray) -> str:
    return AES_BY_LEN[len(key)] + "-CTR"


class XbcryptDecoder:
    """Decrypts one xbcrypt stream (a member file, or a whole xbstream) fed in pieces."""

    def __init__(self, key: bytes | bytearray, *, name: str, obj: str | None = None) -> None:
        if len(key) not in AES_BY_LEN:  # checked when the key was read; a guard here
            raise ValueError("xbcrypt key must be 16, 24 or 32 bytes")
        self._aes = algorithms.AES(bytes(key))
        self._name = name
        self._obj = obj
        self._buf = bytearray()
        self._at = 0  # offset of _buf[0] in the xbcrypt stream
        self.stats = XbcryptStats()

    def _where(self) -> str:
        return f"xbcrypt {self._name}, chunk {self.stats.chunks + 1} at byte {self._at}"

    def feed(self, data: bytes | memoryview) -> bytes:
        self._buf += data
        out: list[bytes] = []
        while True:
            chunk = self._one()
            if chunk is None:
                break
            out.append(chunk)
        return b"".join(out)

    def _one(self) -> bytes | None:
        b = self._buf
        if len(b) < _FIXED:
            return None
        version = MAGICS.get(bytes(b[:8]))
        if version is None:
            raise IntegrityError(
                f"{self._where()}: no XBCRYP0x magic where a chunk starts (damaged data)",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        olen, elen, crc = struct.unpack_from("<QQI", b, 16)
        pos = _FIXED
        iv = b"\0" * 16
        if version >= 2:
            if len(b) < pos + 8:
                return None
            (iv_len,) = struct.unpack_from("<Q", b, pos)
            if iv_len != 16:
                raise IntegrityError(
                    f"{self._where()}: IV length {iv_len} (XtraBackup writes 16)",
                    obj=self._obj,
                    layer=Layer.CIPHER,
                )
            if len(b) < pos + 8 + iv_len:
                return None
            if version == 3:  # v2's IV was never used by the writer (setiv in CTR mode)
                iv = bytes(b[pos + 8 : pos + 8 + iv_len])
            pos += 8 + iv_len
        if elen > MAX_CHUNK or olen > elen or (version == 3 and olen < _SHA):
            raise IntegrityError(
                f"{self._where()}: chunk sizes out of range (original {olen}, encrypted "
                f"{elen} bytes)",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        if len(b) < pos + elen:
            return None
        body = memoryview(b)[pos : pos + elen]
        if zlib.crc32(body) != crc:
            body.release()
            raise IntegrityError(
                f"{self._where()}: CRC-32 of the encrypted chunk does not match (the "
                "ciphertext was damaged)",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        dec = Cipher(self._aes, modes.CTR(iv)).decryptor()
        plain = dec.update(body) + dec.finalize()
        body.release()
        plain = plain[:olen]
        if version == 3:
            data, digest = plain[:-_SHA], plain[-_SHA:]
            if hashlib.sha256(data).digest() != digest:
                raise WrongKey(
                    f"{self._where()}: the SHA-256 stored with the chunk (XBCRYP03) does not "
                    "match its decrypted content, and its CRC-32 shows the ciphertext is as "
                    "written: the key is not the one this backup was encrypted with",
                    obj=self._obj,
                )
            self.stats.sha256_checked += 1
            plain = data
        st = self.stats
        st.versions.add(version)
        st.chunks += 1
        st.ciphertext_bytes += elen
        st.plaintext_bytes += len(plain)
        del b[: pos + elen]
        self._at += pos + elen
        return plain

    def finish(self) -> None:
        if self._buf:
            raise TruncatedBackup(
                f"{self._where()}: the data ends inside a chunk ({len(self._buf)} bytes of "
                "it are there)",
                obj=self._obj,
                layer=Layer.CIPHER,
            )
        if not self.stats.chunks:
            raise TruncatedBackup(
                f"xbcrypt {self._name}: no chunk at all", obj=self._obj, layer=Layer.CIPHER
            )


class XbcryptReader:
    """A whole stream encrypted by ``xbcrypt`` (``… | xbcrypt --encrypt-algo=…``)."""

    def __init__(
        self, upstream: Reader, key: bytes | bytearray, *, obj: str | None, cancel: CancelToken
    ) -> None:
        self._up = upstream
        self._dec = XbcryptDecoder(key, name="stream", obj=obj)
        self._cancel = cancel
        self._out = b""
        self._eof = False
        self.eof = False

    @property
    def stats(self) -> XbcryptStats:
        return self._dec.stats

    def read(self, n: int = -1, /) -> bytes:
        while not self._out and not self._eof:
            self._cancel.check()
            data = self._up.read(CHUNK)
            if not data:
                self._eof = True
                self._dec.finish()
                self.eof = True
                break
            self._out = self._dec.feed(data)
        if n < 0 or n >= len(self._out):
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:n], self._out[n:]
        return out
