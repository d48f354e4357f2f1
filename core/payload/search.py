"""Substring search over plaintext chunks without holding the GIL (issue 17).

The payload inspector looks at every plaintext byte for a few marks (dump headers
and trailers, ``CREATE TABLE``). ``bytes.find``/``count`` hold the GIL for the whole
chunk, ~0.3 s/GiB per string here, and while they run the decode thread cannot take
the GIL back after its own C calls. The C library's ``memmem`` called through
ctypes (which drops the GIL around a foreign call) does the same search in a
third of the time here (glibc's two-way search with a vectorised first-byte scan),
and lets the other stages run meanwhile. Without it (no ``memmem`` in the C
library) the bytes methods are used: same answers, slower.

Several strings, one pass (``Literals``): memmem reads every byte once per string,
0.40 s CPU/GiB for the inspector's three (``Distrib ``, ``\n-- Dump completed``,
``CREATE TABLE ``) on a 256 MiB mysqldump-like file in 1 MiB chunks; Hyperscan's
block mode reads them once for the three, 0.21 s/GiB, and its scan drops the GIL too
(a busy Python thread keeps its pace during it). With one string it gains nothing
(0.094 against memmem's 0.105 s/GiB), so it is used for two or more. The whole
``inspect`` stage of bench/stages.py on that file went from 0.111-0.187 s CPU to
0.085-0.098 s (file reads included), and beside a busy Python thread the inspection
took 0.20-0.31 s instead of 0.30-0.45 s (one GIL hand-back per chunk instead of
three). It is optional:
the ``hyperscan`` wheel exists only for some platforms (pyproject.toml), and where it
is missing, or its CPU check fails, each string has its own memmem pass as before,
with the same answers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..plumbing.cbytes import address

if TYPE_CHECKING:
    import hyperscan

# A chunk with more hits than this is counted by bytes.count: each memmem call costs
# about a microsecond of Python around it, so data made of the string itself (a
# hostile or odd dump) must not turn into one call per occurrence. Hyperscan's
# callbacks (Literals) are capped alike.
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


def count(buf: bytes, needle: bytes, end: int | None = None) -> int:
    """``buf.count(needle, 0, end)`` (non-overlapping, as bytes.count)."""
    size = len(buf) if end is None else max(min(end, len(buf)), 0)
    if _MEMMEM is None or not needle or type(buf) is not bytes or size < 4096:
        return buf.count(needle, 0, size)
    base, n, pos = address(buf), 0, 0
    for _ in range(_MAX_CALLS):
        if size - pos < len(needle):
            return n
        hit = _MEMMEM(base + pos, size - pos, needle, len(needle))
        if hit is None:
            return n
        n += 1
        pos = hit - base + len(needle)
    return n + buf.count(needle, pos, size)


# Hyperscan is loaded by a search only once it has read this much: its import costs
# ~5 ms warm (25 ms cold), its compile 0.4 ms, and it saves ~0.13 ms per MiB over
# three memmem passes, so a small verify never loads it and a large one gains.
HYPERSCAN_AFTER = 16 << 20


@dataclass(frozen=True)
class Found:
    """What ``Literals.scan`` found in one buffer."""

    # (offset, i): every occurrence of located[i], overlapping ones too (as a
    # ``find(needle, previous + 1)`` loop finds them), by offset, then by i.
    hits: list[tuple[int, int]]
    # counted[j]'s occurrences within buf[:end], non-overlapping (as bytes.count).
    counts: list[int]


class Literals:
    """Several strings searched in one pass over a buffer: where each of ``located``
    occurs, and how often each of ``counted`` does (a string that may occur very often
    is counted rather than located: no Python work per occurrence).

    With Hyperscan (see the module's docstring) one scan reports every occurrence to a
    Python callback (0.16 µs each, 0.25 µs keeping it, measured here); a buffer with
    more than _MAX_CALLS of them (data made of the strings themselves) stops that scan
    and is searched string by string instead, as without Hyperscan. One instance per
    thread: its Hyperscan database carries one scratch space.
    """

    def __init__(
        self,
        located: tuple[bytes, ...],
        counted: tuple[bytes, ...] = (),
        *,
        hyperscan_after: int = HYPERSCAN_AFTER,
    ) -> None:
        self.located, self.counted = located, counted
        self._needles = located + counted
        if not all(self._needles):
            raise ValueError("Literals: an empty string cannot be searched for")
        self._after = hyperscan_after
        self._read = 0  # bytes searched so far, before Hyperscan is loaded
        self._pass: _OnePass | Literal[False] | None = None  # False: no Hyperscan here

    def scan(self, buf: bytes, end: int | None = None) -> Found:
        """Every occurrence of ``located`` in ``buf``; ``counted`` counted in buf[:end]."""
        stop = len(buf) if end is None else max(min(end, len(buf)), 0)
        if len(self._needles) > 1 and type(buf) is bytes and len(buf) >= 4096:
            if self._pass is None:
                self._read += len(buf)
                if self._read > self._after:
                    self._pass = _OnePass.load(self._needles)
            ends = self._pass.ends(buf) if self._pass else None
            if ends is not None:
                return self._found(ends, stop)
        return Found(
            sorted((at, i) for i, n in enumerate(self.located) for at in _every(buf, n)),
            [count(buf, n, stop) for n in self.counted],
        )

    def _found(self, ends: list[tuple[int, int]], stop: int) -> Found:
        hits: list[tuple[int, int]] = []
        counts = [0] * len(self.counted)
        free = [0] * len(self.counted)  # where counted[j]'s next occurrence may start
        for end, i in sorted(ends, key=lambda e: (e[0] - len(self._needles[e[1]]), e[1])):
            at = end - len(self._needles[i])
            j = i - len(self.located)
            if j < 0:
                hits.append((at, i))
            elif at >= free[j] and end <= stop:
                counts[j] += 1
                free[j] = end
        return Found(hits, counts)


def _every(buf: bytes, needle: bytes) -> list[int]:
    found, j = [], find(buf, needle)
    while j != -1:
        found.append(j)
        j = find(buf, needle, j + 1)
    return found


class _OnePass:
    """A Hyperscan block-mode database of the strings, and its scan with a cap on the
    callbacks."""

    def __init__(self, db: hyperscan.Database, stopped: type[Exception]) -> None:
        self._db, self._stopped = db, stopped

    @classmethod
    def load(cls, needles: tuple[bytes, ...]) -> _OnePass | Literal[False]:
        """False where Hyperscan is missing (no wheel for this platform: pyproject.toml)
        or refuses this CPU."""
        try:
            import hyperscan
        except ImportError:
            return False
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            db.compile(expressions=list(needles), ids=list(range(len(needles))), literal=True)
        except hyperscan.error:
            return False
        return cls(db, hyperscan.ScanTerminated)

    def ends(self, buf: bytes) -> list[tuple[int, int]] | None:
        """(end offset, string) of every occurrence; None past _MAX_CALLS of them."""
        ends: list[tuple[int, int]] = []

        def on_match(i: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
            ends.append((end, i))
            return len(ends) > _MAX_CALLS  # True stops the scan

        try:
            self._db.scan(buf, match_event_handler=on_match)
        except self._stopped:
            return None
        return ends
