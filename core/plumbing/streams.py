"""Pull-based byte streams and the thread boundary between pipeline stages.

Every stage is a ``Reader`` (``read(n) -> bytes``, ``b""`` at EOF) wrapping the
one before it, as in age's ``decrypt(reader) -> reader``. :class:`Prefetch`
runs the upstream reads on a worker thread with a small bounded queue, so the
stages overlap on separate cores (AES, ISA-L, zstd, bz2 and hashlib all release
the GIL) while memory stays bounded by ``depth * chunk``.
"""

from __future__ import annotations

import contextlib
import fcntl
import queue
import threading
from typing import IO, Protocol

from ..errors import Cancelled
from .progress import CancelToken

CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux


def widen_pipe(pipe: IO[bytes]) -> None:
    """A 1 MiB pipe (Linux F_SETPIPE_SZ) instead of 64 KiB: far fewer wake-ups
    between us and the program reading it at full speed; elsewhere a no-op."""
    with contextlib.suppress(OSError, ValueError):
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, 1 << 20)


class Reader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class BytesReader:
    """A Reader over an in-memory buffer (small inputs and tests)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        end = len(self._view) if n < 0 else min(len(self._view), self._pos + n)
        out = bytes(self._view[self._pos : end])
        self._pos = end
        return out


class ChainReader:
    """Bytes already read (a sniffed head) followed by the rest of a stream."""

    def __init__(self, head: bytes, rest: Reader) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                out, self._head = self._head, b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._rest.read(n)


class Tally:
    """Counts the bytes a stage has passed on, and whether it reached its end (a
    stage raises at its end when its end-of-data checks fail, so an end reached is
    an end whose checks passed)."""

    def __init__(self, up: Reader) -> None:
        self._up = up
        self.bytes = 0
        self.eof = False

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self.bytes += len(b)
        if not b and n != 0:
            self.eof = True
        return b


def read_exact(reader: Reader, n: int) -> bytes:
    """Read up to n bytes, looping over short reads; shorter only at EOF."""
    parts = []
    left = n
    while left > 0:
        b = reader.read(left)
        if not b:
            break
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


_EOF = object()


def put_unless(q: queue.Queue[object], item: object, stop: CancelToken) -> bool:
    """Put ``item`` into the bounded queue ``q``, giving up once ``stop`` is cancelled:
    a producer thread never stays blocked on a full queue nobody will read again."""
    while not stop.cancelled:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Prefetch:
    """Read ``upstream`` on a worker thread, ``depth`` chunks ahead.

    Exceptions raised upstream are re-raised in the consumer's thread on the
    next read, so errors keep their type across the thread boundary. The worker
    stops when the job is cancelled or when :meth:`close` is called (the consumer
    is done, by error or at the end): ``close`` cancels a child of the job's token,
    so both are the one cancel contract.
    """

    def __init__(
        self,
        upstream: Reader,
        cancel: CancelToken,
        *,
        chunk: int = CHUNK,
        depth: int = 4,
        name: str = "sealcheck-prefetch",
    ) -> None:
        self._up = upstream
        self._chunk = chunk
        self._q: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._cur = b""
        self._off = 0
        self._done = False
        self._stop = cancel.child()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        return put_unless(self._q, item, self._stop)

    def _run(self) -> None:
        try:
            while True:
                self._stop.check()
                data = self._up.read(self._chunk)
                if not data:
                    self._put(_EOF)
                    return
                if not self._put(data):
                    return
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer thread
            self._put(exc)

    def read(self, n: int = -1, /) -> bytes:
        while self._off >= len(self._cur):
            if self._done:
                return b""
            while True:
                try:
                    item = self._q.get(timeout=0.1)
                    break
                except queue.Empty:
                    # Cancelled, or closed (the job is being torn down): a stage
                    # still reading from here must not wait forever.
                    if self._stop.cancelled:
                        raise Cancelled() from None
            if item is _EOF:
                self._done = True
                return b""
            if isinstance(item, BaseException):
                self._done = True
                raise item
            assert isinstance(item, bytes)
            self._cur, self._off = item, 0
        avail = len(self._cur) - self._off
        if self._off == 0 and (n < 0 or n >= avail):
            # The common case hands the chunk over without copying it.
            out, self._cur = self._cur, b""
            return out
        take = avail if n < 0 else min(n, avail)
        out = self._cur[self._off : self._off + take]
        self._off += take
        return out

    def close(self) -> None:
        """Stop the worker; safe to call more than once and after EOF."""
        self._stop.cancel()
        self._thread.join(timeout=5)
