"""Which reader decompresses which format: one explicit table.

Explicit rather than readers that register themselves when imported (see
decrypt/registry.py): read in one place, independent of import order. A new
compression is one reader module (base.py is the contract) and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from ..errors import UnsupportedFormat
from ..formats import Fmt, sniff
from ..plumbing.progress import CancelToken
from ..plumbing.streams import Reader
from .base import DecompressReader
from .qpress import QpressReader
from .readers import Bzip2Reader, GzipReader, PassThrough, XzReader, ZstdReader


class ReaderFactory(Protocol):
    """A reader's constructor: it checks ``cancel`` per chunk, as every stage does."""

    def __call__(
        self, upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
    ) -> DecompressReader: ...


READERS: Mapping[Fmt, ReaderFactory] = MappingProxyType(
    {
        Fmt.GZIP: GzipReader,
        Fmt.BZIP2: Bzip2Reader,
        Fmt.XZ: XzReader,
        Fmt.ZSTD: ZstdReader,
        Fmt.QPRESS: QpressReader,  # qpress around a whole stream (ApsaraDB *_xb.qp)
    }
)
# Compressions that are recognised but not decoded yet: each fails with one typed error.
UNSUPPORTED: frozenset[Fmt] = frozenset({Fmt.LZ4})


def open_decompressor(
    head: bytes,
    upstream: Reader,
    *,
    obj: str | None = None,
    cancel: CancelToken | None = None,
) -> DecompressReader:
    """Pick the decompressor for a stream whose first bytes are ``head``; a stream
    that is not compressed is passed through.

    ``upstream`` must still deliver ``head`` itself (use ChainReader). ``cancel`` is
    the job's token, which every decompressor checks per chunk.
    """
    fmt = sniff(head)
    if fmt in UNSUPPORTED:
        assert fmt is not None
        raise UnsupportedFormat(f"{fmt.value} compression is not supported yet", obj=obj)
    factory = READERS.get(fmt) if fmt is not None else None
    if factory is None:
        return PassThrough(upstream, cancel=cancel)
    return factory(upstream, obj=obj, cancel=cancel)
