"""A streaming reader for ASN.1 BER/DER (X.690), for envelopes of any size.

CMS envelopes hold the whole backup inside one element: a primitive OCTET
STRING of known length (DER) or, with ``openssl cms -stream``, a constructed
string of chunks inside indefinite-length containers. Nothing here loads an
element it is not asked for: small values are read whole (bounded), large
ones are read piece by piece, and every container is checked to end exactly
where its length, or its end-of-contents marker, says.

Errors are :class:`BerError` (malformed) and :class:`BerTruncated` (the data
ended inside an element); the caller turns them into the typed errors with
the object's name and layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...plumbing.streams import CHUNK, Reader

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3
# Universal tags used by CMS.
INTEGER, BIT_STRING, OCTET_STRING, NULL, OID, SEQUENCE, SET = 2, 3, 4, 5, 6, 16, 17

# A length field longer than this many bytes describes more data than any
# backup holds: it is damage, not a length.
_MAX_LENGTH_BYTES = 8
# Nesting deeper than this is no CMS envelope (and would be a recursion bomb).
_MAX_DEPTH = 64


class BerError(Exception):
    """Malformed BER: the message says what and at which offset."""


class BerTruncated(BerError):
    """The data ended inside an element."""


@dataclass(frozen=True)
class Header:
    """An element's identifier and length, and where it starts."""

    cls: int
    constructed: bool
    tag: int
    length: int | None  # None: indefinite (constructed only)
    offset: int  # offset of the identifier octet in the stream
    header_len: int

    def is_(self, cls: int, tag: int) -> bool:
        return self.cls == cls and self.tag == tag

    @property
    def value_offset(self) -> int:
        return self.offset + self.header_len

    def describe(self) -> str:
        kind = ("universal", "application", "context", "private")[self.cls]
        form = "constructed" if self.constructed else "primitive"
        return f"{kind} [{self.tag}] ({form}) at offset {self.offset}"


@dataclass
class _Frame:
    header: Header
    end: int | None  # absolute end offset; None for indefinite length


class BerReader:
    """Pull-parse BER from a Reader, keeping a bounded buffer.

    ``pos`` is the number of bytes consumed. Containers are entered and left
    explicitly; reading past the end of the current definite-length container
    is an error, as is leaving one before its end.
    """

    def __init__(self, upstream: Reader) -> None:
        self._up = upstream
        self._buf = b""
        self._off = 0
        self.pos = 0
        self._stack: list[_Frame] = []
        self._eof = False

    # --- bytes -------------------------------------------------------------

    def _fill(self, n: int) -> bool:
        """Buffer at least n unread bytes; False when the data ends first."""
        while len(self._buf) - self._off < n:
            if self._eof:
                return False
            more = self._up.read(max(n, CHUNK))
            if not more:
                self._eof = True
                return False
            self._buf = self._buf[self._off :] + more
            self._off = 0
        return True

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise BerTruncated(f"the data ends at offset {self.pos + self.available()}")
        out = self._buf[self._off : self._off + n]
        self._off += n
        self.pos += n
        return out

    def available(self) -> int:
        return len(self._buf) - self._off

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._off : self._off + n]

    def at_eof(self) -> bool:
        return not self._fill(1)

    def read_some(self, n: int) -> bytes:
        """Up to n raw bytes (at least one), from the buffer or the upstream."""
        if self.available() == 0 and not self._fill(1):
            raise BerTruncated(f"the data ends at offset {self.pos}")
        take = min(n, self.available())
        out = self._buf[self._off : self._off + take]
        self._off += take
        self.pos += take
        return out

    # --- elements ----------------------------------------------------------

    def header(self) -> Header:
        """Read the next element's identifier and length."""
        start = self.pos
        b0 = self._take(1)[0]
        cls, constructed, tag = b0 >> 6, bool(b0 & 0x20), b0 & 0x1F
        if tag == 0x1F:  # high tag number form
            tag = 0
            for _ in range(5):
                b = self._take(1)[0]
                tag = (tag << 7) | (b & 0x7F)
                if not b & 0x80:
                    break
            else:
                raise BerError(f"a tag number too long at offset {start}")
        l0 = self._take(1)[0]
        length: int | None
        if l0 < 0x80:
            length = l0
        elif l0 == 0x80:
            if not constructed:
                raise BerError(f"a primitive element with indefinite length at offset {start}")
            length = None
        else:
            n = l0 & 0x7F
            if n > _MAX_LENGTH_BYTES or n == 0x7F:
                raise BerError(f"a length of {n} bytes at offset {start}")
            length = int.from_bytes(self._take(n), "big")
        h = Header(cls, constructed, tag, length, start, self.pos - start)
        # The innermost definite-length container bounds everything inside it
        # (an indefinite one inside it was itself checked against it).
        frame = next((f for f in reversed(self._stack) if f.end is not None), None)
        if frame is not None and frame.end is not None:
            if self.pos > frame.end or (length is not None and self.pos + length > frame.end):
                raise BerError(
                    f"the element at offset {start} runs past the end of its container "
                    f"({frame.header.describe()})"
                )
        return h

    def expect(self, cls: int, tag: int, what: str, *, constructed: bool | None = None) -> Header:
        h = self.header()
        if not h.is_(cls, tag) or (constructed is not None and h.constructed != constructed):
            raise BerError(f"expected {what}, found {h.describe()}")
        return h

    def enter(self, h: Header) -> None:
        if not h.constructed:
            raise BerError(f"{h.describe()} is not a container")
        if len(self._stack) >= _MAX_DEPTH:
            raise BerError(f"nesting deeper than {_MAX_DEPTH} at offset {h.offset}")
        end = None if h.length is None else h.value_offset + h.length
        self._stack.append(_Frame(h, end))

    def at_end(self) -> bool:
        """Whether the current container has no more elements."""
        frame = self._stack[-1]
        if frame.end is not None:
            return self.pos >= frame.end
        return self.peek(2) == b"\x00\x00"

    def leave(self) -> None:
        """Close the current container: exactly at its end, or at its end-of-contents."""
        frame = self._stack.pop()
        if frame.end is not None:
            if self.pos != frame.end:
                raise BerError(
                    f"{frame.header.describe()} ends at offset {frame.end}, but its content "
                    f"ended at {self.pos}"
                )
            return
        eoc = self._take(2)
        if eoc != b"\x00\x00":
            raise BerError(
                f"{frame.header.describe()} has no end-of-contents marker at offset {self.pos - 2}"
            )

    @property
    def depth(self) -> int:
        return len(self._stack)

    def value(self, h: Header, max_len: int) -> bytes:
        """The whole value of a small primitive element."""
        if h.constructed or h.length is None:
            raise BerError(f"expected a primitive value, found {h.describe()}")
        if h.length > max_len:
            raise BerError(f"{h.describe()} is {h.length} bytes, more than {max_len} expected")
        return self._take(h.length)

    def element_bytes(self, h: Header, max_len: int) -> bytes:
        """The value of a definite-length element (constructed or not), raw."""
        if h.length is None:
            raise BerError(f"{h.describe()} has an indefinite length here")
        if h.length > max_len:
            raise BerError(f"{h.describe()} is {h.length} bytes, more than {max_len} expected")
        return self._take(h.length)

    def skip(self, h: Header) -> None:
        """Skip an element's value (any size, any form) without keeping it."""
        if h.length is not None:
            left = h.length
            while left:
                left -= len(self.read_some(min(left, 1 << 20)))
            return
        self.enter(h)
        while not self.at_end():
            self.skip(self.header())
        self.leave()


def decode_oid(data: bytes) -> str:
    """Dotted text of an OBJECT IDENTIFIER value."""
    if not data or data[-1] & 0x80:
        raise BerError("a malformed object identifier")
    arcs: list[int] = []
    n = 0
    for b in data:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def decode_int(data: bytes) -> int:
    if not data:
        raise BerError("an empty INTEGER")
    return int.from_bytes(data, "big", signed=True)
