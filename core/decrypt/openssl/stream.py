"""``openssl enc`` decryption as a stream: base64 (``-a``) decoding and AES-CBC/CTR
decryption, the CBC padding checked at the end (formats.md §2)."""

from __future__ import annotations

import binascii

from ...errors import Cancelled, IntegrityError, Layer, TruncatedBackup
from ...formats import sniff
from ...plumbing.progress import CancelToken
from ...plumbing.streams import Reader
from .evp import aes_decryptor
from .header import BLOCK, EncParams, valid_padding


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
    """Stream-decrypt AES-CBC (PKCS#7) or AES-CTR ciphertext.

    The caller may wipe ``params`` once this is made: the key lives on only in the
    decryptor's context (evp.py), freed when the stream ends or at :meth:`close`.
    """

    def __init__(
        self,
        upstream: Reader,
        params: EncParams,
        *,
        obj: str | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._cancel = cancel or CancelToken()
        self._dec = aes_decryptor(params.cipher, params.key, params.iv)
        self._cbc = params.cipher.mode == "cbc"
        self._up = upstream
        self._eof = False
        self._closed = False
        self._obj = obj
        self.ciphertext_bytes = 0
        self.padding_ok: bool | None = None

    def read(self, n: int = -1, /) -> bytes:
        while not self._eof:
            self._cancel.check()
            if self._closed:  # the run is being torn down: a late read of its decode thread
                raise Cancelled()
            chunk = self._up.read(n if n > 0 else 1 << 20)
            if not chunk:
                self._eof = True
                return self._finish()
            self.ciphertext_bytes += len(chunk)
            # CBC: the decryptor holds back the last plaintext block: it carries the
            # padding, which can only be checked once the stream has ended.
            try:
                pt = self._dec.update(chunk)
            except ValueError:  # its context freed by close() since the check above
                if self._closed:
                    raise Cancelled() from None
                raise
            if pt or not self._cbc:
                return pt
        return b""

    def close(self) -> None:
        """Free the decryption's context now (the run ended before the stream did);
        waits for a decryption under way in another thread."""
        self._closed = True
        self._dec.close()

    def _finish(self) -> bytes:
        try:
            last = self._dec.finalize()
        except ValueError:
            if self._closed:
                raise Cancelled() from None
            raise TruncatedBackup(
                f"the ciphertext ({self.ciphertext_bytes} bytes) is not a whole number of "
                "AES blocks",
                obj=self._obj,
                layer=Layer.CIPHER,
            ) from None
        if not self._cbc:
            return last
        if len(last) != BLOCK or not valid_padding(last):
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
