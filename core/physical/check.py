"""A physical backup read to its last byte, layer by layer (issue 16).

Fed the plaintext xbstream, or the tar of the backup's folder (after the outer
envelope and compression), it runs: the container's own checks and paths
(xbstream.py: chunk CRCs; tarfiles.py: header checksums) → each member's layers by
content (members.py: xbcrypt, qpress) → the backup's completeness
(complete.py) → the InnoDB page checksums of every tablespace (pages.py), and,
for ``restore --extract``, writes the final files (extract.py). Constant memory:
each member is decoded as its chunks arrive; nothing is buffered whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..decrypt.xbkey import XbcryptKey
from ..errors import Layer, SealcheckError, SizeLimitExceeded
from ..payload.tarfiles import TarFilesReader
from ..payload.xbstream import XbstreamReader, zeros
from .complete import BackupFacts, Completeness
from .extract import FolderWriter
from .members import LayerTally, MemberChain
from .pages import PageChecker, PageResult

_MEMBER_LAYERS = {Layer.CIPHER: Layer.MEMBER_CIPHER, Layer.DECOMPRESS: Layer.MEMBER_DECOMPRESS}


@dataclass
class PhysicalResult:
    files: int
    chunks: int  # xbstream chunks, or tar headers
    tally: LayerTally
    facts: BackupFacts
    pages: PageResult


class PhysicalCheck:
    """A plaintext sink (``feed``/``finish``) for an xbstream or a tar of the folder."""

    def __init__(
        self,
        *,
        key: XbcryptKey | None,
        container: str = "xbstream",
        obj: str | None,
        writer: FolderWriter | None = None,
        check_pages: bool = True,
        on_xbcrypt: Callable[[], None] | None = None,
        max_disk: int | None = None,
        max_output: int | None = None,
    ) -> None:
        self._key = key
        # --max-output bounds the decoded files too: qpress members and sparse holes
        # expand far beyond the stream (a hole of 4 GiB costs 8 bytes of sparse map).
        self._max_output = max_output
        self.decoded = 0
        self._obj = obj
        self._on_xbcrypt = on_xbcrypt
        self.tally = LayerTally()
        self._chains: dict[str, MemberChain] = {}
        self.complete = Completeness(obj=obj)
        # --max-disk bounds the private folder the system tablespace is checked in.
        self.pages = PageChecker(obj=obj, max_disk=max_disk) if check_pages else None
        self.writer = writer
        self.container = container
        self.reader: XbstreamReader | TarFilesReader = (
            TarFilesReader(self, obj=obj) if container == "tar" else XbstreamReader(self, obj=obj)
        )
        self.result: PhysicalResult | None = None

    # --- the container reader's handler ----------------------------------------

    def folder(self, path: str) -> None:
        """A folder of the tar: made by the extractor, even when empty."""
        if self.writer is not None:
            self.writer.folder(path)

    def rebase(self, top: str) -> None:
        """The tar's members are not all under its first member's folder ``top``
        (tarfiles.py): the names handed on so far get it back in front."""
        assert not self._chains, "a tar member's name changes only between members"
        self.complete.rebase(top)
        if self.pages is not None:
            self.pages.rebase(top)
        if self.writer is not None:
            self.writer.rebase(top)

    def data(self, path: str, data: bytes) -> None:
        chain = self._chains.get(path)
        if chain is None:
            chain = self._chains[path] = self._chain(path)
        self._member(chain.feed, data)

    def hole(self, path: str, n: int) -> None:
        """A sparse chunk's hole: zeros to every check, a hole in the extracted file."""
        chain = self._chains.get(path)
        if chain is None:
            chain = self._chains[path] = self._chain(path)
        while n and not chain.plain:
            # Still undecided (a hole at the start: 8 zero bytes decide it), or the
            # input of a layer (which zeros are not, and will say so): zeros as data.
            k = n if chain.layered else min(n, 8)
            for zero in zeros(k):
                self._member(chain.feed, zero)
            n -= k
        if n:
            chain.skip(n)

    def end(self, path: str) -> None:
        chain = self._chains.pop(path, None)
        if chain is None:  # an empty file: only its end chunk
            chain = self._chain(path)
        self._member(lambda _: chain.finish(), b"")
        name = chain.name
        if chain.bytes == 0:
            self._emit(name, b"")
        self.complete.end(name)
        if self.pages is not None:
            self.pages.end(name)
        if self.writer is not None:
            self.writer.end(name)

    def _chain(self, path: str) -> MemberChain:
        return MemberChain(
            path,
            key=self._key,
            tally=self.tally,
            emit=self._emit,
            emit_hole=self._emit_hole,
            obj=self._obj,
            on_xbcrypt=self._on_xbcrypt,
        )

    @staticmethod
    def _member(step: Any, data: bytes) -> None:
        try:
            step(data)
        except SealcheckError as exc:
            # A member's own layers are not the outer envelope's.
            exc.layer = _MEMBER_LAYERS.get(exc.layer, exc.layer) if exc.layer else exc.layer
            raise

    def _emit_hole(self, name: str, n: int) -> None:
        for zero in zeros(n):
            self._emit(name, zero, hole=True)

    def _emit(self, name: str, data: bytes, *, hole: bool = False) -> None:
        self.decoded += len(data)
        if self._max_output is not None and self.decoded > self._max_output:
            raise SizeLimitExceeded(
                f"the backup's files, decoded, exceed the limit of {self._max_output} bytes "
                f"(--max-output) at {name!r}; stopped there and nothing was kept. A "
                "decompression bomb, or a larger backup than expected: raise the limit",
                obj=self._obj,
            )
        self.complete.data(name, data)
        if self.pages is not None:
            self.pages.data(name, data)
        if self.writer is not None:
            if hole:
                self.writer.hole(name, len(data))
            else:
                self.writer.data(name, data)

    # --- the plaintext sink ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def finish(self) -> PhysicalResult:
        try:
            self.reader.finish()
            facts = self.complete.finish()
        finally:
            if self.pages is not None:
                self.pages.close()
        pages = self.pages.result if self.pages is not None else PageResult(None)
        r = self.reader
        if self.writer is not None and isinstance(r, TarFilesReader):
            self.writer.stripped = r.top
        units = r.headers if isinstance(r, TarFilesReader) else r.chunks
        self.result = PhysicalResult(len(r.files), units, self.tally, facts, pages)
        return self.result

    def close(self) -> None:
        if self.pages is not None:
            self.pages.close()
