"""Pull-style parsers fed push-style: a generator asks for bytes, chunks arrive.

The payload inspector is fed the plaintext in chunks of whatever size the
decoder produced. Binary formats with nested, length-prefixed structures (a
pg_dump archive, a tar stream) read much more clearly as straight-line code
that asks for "the next 5 bytes". A parser here is a generator that yields how
many bytes it needs and is sent exactly that many, or fewer only at the end of
the data; it ends by returning.

Memory stays bounded: the feeder keeps at most one request's worth of bytes
plus the chunk being fed, and parsers ask for large payloads in pieces of at
most ``PIECE`` bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")

# A parser step: yields the number of bytes it needs, is sent them, returns T.
Parse = Generator[int, bytes, T]

PIECE = 64 * 1024


class Ended(Exception):
    """The data ended inside a structure; ``what`` names it, ``at`` is its offset."""

    def __init__(self, what: str, at: int) -> None:
        super().__init__(what)
        self.what = what
        self.at = at


class Damaged(Exception):
    """The structure is broken at byte ``at`` (of the stream being parsed)."""

    def __init__(self, why: str, at: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.at = at


class Cursor:
    """The stream offset a parser has reached (for messages and offset checks)."""

    def __init__(self) -> None:
        self.pos = 0


def take(cur: Cursor, n: int, what: str) -> Parse[bytes]:
    """Exactly ``n`` bytes; raises Ended if the data ends first."""
    if n == 0:
        return b""
    at = cur.pos
    data = yield n
    cur.pos += len(data)
    if len(data) < n:
        raise Ended(what, at)
    return data


def take_or_end(cur: Cursor, n: int, what: str) -> Parse[bytes | None]:
    """Exactly ``n`` bytes, or None when the data ends exactly here."""
    at = cur.pos
    data = yield n
    cur.pos += len(data)
    if not data:
        return None
    if len(data) < n:
        raise Ended(what, at)
    return data


def stream(cur: Cursor, n: int, what: str, sink: Callable[[bytes], None]) -> Parse[None]:
    """Pass ``n`` bytes to ``sink`` in pieces of at most PIECE bytes (never all at once)."""
    while n > 0:
        step = min(n, PIECE)
        sink((yield from take(cur, step, what)))
        n -= step


class Feeder:
    """Runs a parser generator on data that arrives in chunks of any size.

    ``on_extra`` is called with the number of bytes that follow once the parser
    has returned (the parser decides where its data ends; what follows is the
    caller's to judge).
    """

    def __init__(self, parser: Parse[None], on_extra: Callable[[int], None]) -> None:
        self._parser = parser
        self._on_extra = on_extra
        self._buf = bytearray()
        self.done = False
        self._need = self._start()

    def _start(self) -> int:
        try:
            return next(self._parser)
        except StopIteration:
            self.done = True
            return 0

    def feed(self, data: bytes) -> None:
        if self.done:
            if data:
                self._on_extra(len(data))
            return
        if self._buf:
            self._buf += data
            src: bytes | bytearray = self._buf
        else:
            src = data
        pos, end = 0, len(src)
        view = memoryview(src)
        try:
            while end - pos >= self._need:
                piece = bytes(view[pos : pos + self._need])
                pos += self._need
                try:
                    self._need = self._parser.send(piece)
                except StopIteration:
                    self.done = True
                    break
        finally:
            rest = bytes(view[pos:])
            view.release()
        self._buf = bytearray(rest)
        if self.done and rest:
            self._buf.clear()
            self._on_extra(len(rest))

    def finish(self) -> None:
        """The data ended: the parser gets what is left (fewer bytes than it asked)."""
        if self.done:
            return
        rest = bytes(self._buf)
        self._buf.clear()
        try:
            self._parser.send(rest)
        except StopIteration:
            self.done = True
            return
        # A parser sent short data must end (return or raise), never ask again.
        self._parser.close()
        raise RuntimeError("a stream parser asked for more data after the end")
