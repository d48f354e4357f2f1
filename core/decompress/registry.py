"""Which reader decompresses which format: one explicit table.

Explicit rather than readers that register themselves when imported (see
decrypt/registry.py): read in one place, independent of import order. A new
compression is one reader module (base.py is the contract) and one line here.

A reader whose module brings a library or a large decoder (zstandard, the QuickLZ
decoder; the bzip2 block pool is imported by Bzip2Reader itself) is named here by a
small function that imports it when a stream of its format is read: a verify of a
gzip backup imports none of them (issue 17, start-up is part of the job).
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
from .readers import Bzip2Reader, GzipReader, PassThrough, XzReader


class ReaderFactory(Protocol):
    """A reader's constructor: it checks ``cancel`` per chunk, as every stage does."""

    def __call__(
        self, upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
    ) -> DecompressReader: ...


def _zstd(
    upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
) -> DecompressReader:
    from .zstd import ZstdReader

    return ZstdReader(upstream, obj=obj, cancel=cancel)


def _qpress(
    upstream: Reader, *, obj: str | None = None, cancel: CancelToken | None = None
) -> DecompressReader:
    from .qpress import QpressReader

    return QpressReader(upstream, obj=obj, cancel=cancel)


READERS: Mapping[Fmt, ReaderFactory] = MappingProxyType(
    {
        Fmt.GZIP: GzipReader,
        Fmt.BZIP2: Bzip2Reader,
        Fmt.XZ: XzReader,
        Fmt.ZSTD: _zstd,
        Fmt.QPRESS: _qpress,  # qpress around a whole stream (ApsaraDB *_xb.qp)
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
