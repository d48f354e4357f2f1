"""Substring search over plaintext chunks without holding the GIL (issue 17).

The payload inspector looks at every plaintext byte for a few marks (dump headers
and trailers, ``CREATE TABLE``). ``bytes.find``/``count`` hold the GIL for the whole
chunk, ~0.3 s/GiB per string here, and while they run the decode thread cannot take
the GIL back after its own C calls. The C library's ``memmem`` called through
ctypes (which drops the GIL around a foreign call) does the same search in a
third of the time here (glibc's two-way search with a vectorised first-byte scan),
and lets the other stages run meanwhile. Without it (no ``memmem`` in the C
library) the bytes methods are used: same answers, slower.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from ..plumbing.cbytes import address

# A chunk with more hits than this is counted by bytes.count: each memmem call costs
# about a microsecond of Python around it, so data made of the string itself (a
# hostile or odd dump) must not turn into one call per occurrence.
_MAX_CALLS = 64

_Memmem = Callable[[int, int, bytes, int], int | None]


def _load() -> _Memmem | None:
    try:
        # The process's own symbols, the C library's among them. Naming it with
        # ctypes.util.find_library("c") ran ldconfig in a child process at every start
        # (~3 ms, and subprocess's import) for the library already loaded (issue 17).
        libc = ctypes.CDLL(None)
        fn = libc.memmem
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    memmem: _Memmem = fn
    return memmem


_MEMMEM = _load()


def find(buf: bytes, needle: bytes, start: int = 0, end: int | None = None) -> int:
    """``buf.find(needle, start, end)`` for non-negative ``start``/``end``."""
    stop = len(buf) if end is None else min(end, len(buf))
    if _MEMMEM is None or not needle or type(buf) is not bytes or stop - start < 4096:
        return buf.find(needle, start, stop)
    if start < 0 or stop - start < len(needle):
        return buf.find(needle, start, stop)
    base = address(buf)
    hit = _MEMMEM(base + start, stop - start, needle, len(needle))
    return -1 if hit is None else hit - base


def count(buf: bytes, needle: bytes) -> int:
    """``buf.count(needle)`` (non-overlapping, as bytes.count)."""
    if _MEMMEM is None or not needle or type(buf) is not bytes or len(buf) < 4096:
        return buf.count(needle)
    base, size, n, pos = address(buf), len(buf), 0, 0
    for _ in range(_MAX_CALLS):
        if size - pos < len(needle):
            return n
        hit = _MEMMEM(base + pos, size - pos, needle, len(needle))
        if hit is None:
            return n
        n += 1
        pos = hit - base + len(needle)
    return n + buf.count(needle, pos)
