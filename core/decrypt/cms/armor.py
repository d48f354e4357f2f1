"""CMS envelopes as text: PEM (``-outform PEM``) and S/MIME (the default ``-outform SMIME``).

Both carry the DER structure in base64: PEM between ``-----BEGIN CMS-----``
(or ``PKCS7``) and its END line, S/MIME after a block of MIME headers. The
decoder streams: the body is decoded a chunk at a time (the base64 alphabet
has no ``-``, so the END line is found without splitting the text into
lines), and the text must end exactly: an END line that matches the BEGIN
line and nothing after it but blank space.
"""

from __future__ import annotations

import binascii
import re

from ...errors import IntegrityError, Layer, TruncatedBackup
from ...formats import Fmt
from ...plumbing.streams import CHUNK, Reader

_WS = b" \t\r\n"
_MAX_HEAD = 64 * 1024  # MIME headers or a BEGIN line longer than this are not an envelope
_MAX_TAIL = 4096
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\r?\n")
_END = re.compile(rb"-----END ([A-Z0-9 #]+)-----[ \t\r\n]*")


class ArmorReader:
    """Decode a PEM or S/MIME CMS envelope to its DER bytes, as a Reader.

    ``prefix`` is for the probe, which decodes the first bytes of an object
    only: the end of its input is then not the end of the text.
    """

    def __init__(
        self, upstream: Reader, fmt: Fmt, *, obj: str | None = None, prefix: bool = False
    ) -> None:
        self._up = upstream
        self._pem = fmt is Fmt.CMS_PEM
        self._obj = obj
        self._prefix = prefix
        self._label: bytes | None = None
        self._head = b""  # text before the body, until it is complete
        self._rest = b""  # base64 of an incomplete 4-character group
        self._tail: bytes | None = None  # text from the END line on
        self._done = False

    def read(self, n: int = -1, /) -> bytes:
        while not self._done:
            chunk = self._up.read(max(n, CHUNK) if n > 0 else CHUNK)
            if not chunk:
                self._done = True
                return self._finish()
            out = self._feed(chunk)
            if out:
                return out
        return b""

    # --- text -------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> bytes:
        if self._tail is not None:
            return self._add_tail(chunk)
        if self._label is None:
            self._head += chunk
            body = self._start()
            if body is None:
                return b""
            chunk = body
        if self._pem:
            dash = chunk.find(b"-")
            if dash >= 0:
                out = self._decode(chunk[:dash])
                self._add_tail(chunk[dash:])
                return out
        return self._decode(chunk)

    def _start(self) -> bytes | None:
        """Strip the BEGIN line or the MIME headers; the body that follows, or None for more."""
        head = self._head
        if self._pem:
            m = _BEGIN.match(head)
            if m is None:
                if b"\n" in head or len(head) > _MAX_HEAD:
                    raise self._bad("the PEM text does not start with a BEGIN line")
                return None
            self._label, self._head = m.group(1), b""
            return head[m.end() :]
        end = _header_end(head)
        if end is None:
            if len(head) > _MAX_HEAD:
                raise self._bad("no blank line ends the MIME headers")
            return None
        self._check_mime(head[:end])
        self._label, self._head = b"", b""
        return head[end:]

    def _check_mime(self, headers: bytes) -> None:
        text = headers.decode("latin-1").lower()
        if "pkcs7-mime" not in text:
            raise self._bad("the MIME headers do not say application/pkcs7-mime")
        if not re.search(r"^content-transfer-encoding:\s*base64\s*$", text, re.M):
            raise self._bad("the S/MIME body is not base64 (Content-Transfer-Encoding)")

    def _add_tail(self, text: bytes) -> bytes:
        self._tail = (self._tail or b"") + text
        if len(self._tail) > _MAX_TAIL:
            raise self._bad("text follows the PEM END line")
        return b""

    def _decode(self, text: bytes) -> bytes:
        data = self._rest + text.translate(None, _WS)
        cut = len(data) - len(data) % 4
        self._rest = data[cut:]
        try:
            return binascii.a2b_base64(data[:cut], strict_mode=True)
        except binascii.Error as exc:
            raise self._bad(f"invalid base64 text ({exc})") from None

    def _finish(self) -> bytes:
        if self._prefix:
            return b""
        if self._label is None:
            raise self._cut("the text ends in its " + ("BEGIN line" if self._pem else "headers"))
        if self._rest:
            raise self._cut("the base64 text ends mid-group")
        if self._pem:
            m = _END.fullmatch(self._tail or b"")
            if m is None:
                if not self._tail:
                    raise self._cut("the PEM text has no END line")
                raise self._bad("the PEM text does not end with its END line alone")
            if m.group(1) != self._label:
                raise self._bad(
                    f"the PEM END line ({m.group(1).decode()}) does not match its BEGIN line "
                    f"({(self._label or b'').decode()})"
                )
        return b""

    def _bad(self, why: str) -> IntegrityError:
        return IntegrityError(why, obj=self._obj, layer=Layer.CIPHER)

    def _cut(self, why: str) -> TruncatedBackup:
        return TruncatedBackup(why, obj=self._obj, layer=Layer.CIPHER)


def _header_end(head: bytes) -> int | None:
    """Offset just after the blank line that ends MIME headers."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := head.find(sep)) >= 0]
    return min(ends) if ends else None
