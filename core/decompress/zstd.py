"""zstd frames read to their end (the strict checks of readers.py, for zstd).

Its own module so that ``zstandard`` is imported only when a zstd stream is read
(the registry imports this module on first use).
"""

from __future__ import annotations

import zstandard

from ..errors import IntegrityError, Layer, TruncatedBackup
from ..formats import Fmt
from ..plumbing.progress import CancelToken
from ..plumbing.streams import CHUNK, Reader
from .base import DecompressStats


class _ZstdFrameWalker:
    """Walk the frame and block headers of a zstd stream without decoding it.

    zstandard's ``stream_reader`` returns EOF quietly when its input stops in
    the middle of a frame (even with a frame's checksum cut off), and it stops
    at the first byte that is not a frame. The decoder still does the real
    work (and checks each frame's checksum); this walker only follows the
    length fields — one step per block, about one per 128 KiB of output — so
    that the end of the input can be checked to be the end of a frame and
    anything after the last frame is rejected. It also counts the frames.
    """

    _FRAME = 0xFD2FB528
    _SKIPPABLE = 0x184D2A50  # ..0x184D2A5F: pzstd and seekable-format metadata

    def __init__(self) -> None:
        self.frames = 0
        self.error: str | None = None
        self._state = "magic"
        self._need = 4  # header bytes the current state reads
        self._skip = 0  # bytes to pass over before the next header
        self._buf = b""
        self._checksum = False

    def feed(self, chunk: bytes) -> None:
        pos, n = 0, len(chunk)
        while self.error is None:
            if self._skip:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                if self._skip:
                    return
            want = self._need - len(self._buf)
            if n - pos < want:
                self._buf += chunk[pos:]
                return
            header = self._buf + chunk[pos : pos + want]
            pos += want
            self._buf = b""
            self._step(header)

    def _step(self, h: bytes) -> None:
        v = int.from_bytes(h, "little")
        if self._state == "magic":
            if v == self._FRAME:
                self.frames += 1
                self._state, self._need = "descriptor", 1
            elif v & 0xFFFFFFF0 == self._SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                self.error = (
                    f"unexpected data after the end of the zstd stream (after frame {self.frames})"
                )
        elif self._state == "skippable":
            self._skip = v
            self._state, self._need = "magic", 4
        elif self._state == "descriptor":
            if v & 0x08:
                self.error = "zstd data is corrupt (reserved bit set in a frame header)"
                return
            single = (v >> 5) & 1
            self._checksum = bool(v & 0x04)
            fcs = (single, 2, 4, 8)[v >> 6]
            self._skip = (0 if single else 1) + (0, 1, 2, 4)[v & 3] + fcs
            self._state, self._need = "block", 3
        else:  # block header: last-block bit, type, size
            btype = (v >> 1) & 3
            if btype == 3:
                self.error = "zstd data is corrupt (reserved block type)"
                return
            self._skip = 1 if btype == 1 else v >> 3
            if v & 1:
                self._skip += 4 if self._checksum else 0
                self._state, self._need = "magic", 4

    def at_end_of_frame(self) -> bool:
        return self._state == "magic" and not self._skip and not self._buf and self.frames > 0


class _CountingReader:
    def __init__(self, up: Reader, stats: DecompressStats, walker: _ZstdFrameWalker) -> None:
        self._up = up
        self._stats = stats
        self._walker = walker

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self._stats.input_bytes += len(b)
        if b:
            self._walker.feed(b)
        return b


class ZstdReader:
    """zstd frames (and pzstd's skippable frames), read across frames."""

    def __init__(
        self, upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
    ) -> None:
        self.stats = DecompressStats(Fmt.ZSTD.value, members=1)
        self._obj = obj
        self._cancel = cancel or CancelToken()
        self._walker = _ZstdFrameWalker()
        self._done = False
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        self._r = dctx.stream_reader(
            _CountingReader(upstream, self.stats, self._walker),  # type: ignore[arg-type]
            read_size=CHUNK,
            read_across_frames=True,
        )

    def read(self, n: int = -1, /) -> bytes:
        if self._done:
            return b""
        self._cancel.check()
        try:
            out = self._r.read(n if n > 0 else CHUNK)
        except zstandard.ZstdError as exc:
            msg = str(exc)
            if "incomplete" in msg or "truncat" in msg or "premature" in msg:
                raise TruncatedBackup(
                    f"the zstd stream ends mid-frame ({msg})", obj=self._obj, layer=Layer.DECOMPRESS
                ) from None
            raise IntegrityError(
                f"zstd data is corrupt ({msg})", obj=self._obj, layer=Layer.DECOMPRESS
            ) from None
        if self._walker.error is not None:
            raise IntegrityError(self._walker.error, obj=self._obj, layer=Layer.DECOMPRESS)
        if not out:
            self._done = True
            # stream_reader stops quietly at the end of its input, whole frame or not.
            self._r.read(1)  # drain: make sure every input byte reached the walker
            if self._walker.error is not None:
                raise IntegrityError(self._walker.error, obj=self._obj, layer=Layer.DECOMPRESS)
            if not self._walker.at_end_of_frame():
                raise TruncatedBackup(
                    f"the zstd stream ends in the middle of frame {self._walker.frames}",
                    obj=self._obj,
                    layer=Layer.DECOMPRESS,
                )
            self.stats.members = self._walker.frames
        return bytes(out)
