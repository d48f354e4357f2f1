"""Streaming decompressors: multi-member input, truncation, trailing data, bounded output.

Compressed data is made with the real gzip/bzip2/zstd/xz binaries.
"""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from sealcheck.core.decompress import readers as compression
from sealcheck.core.decompress.registry import open_decompressor
from sealcheck.core.errors import IntegrityError, TruncatedBackup
from sealcheck.core.plumbing.streams import BytesReader, ChainReader, read_exact

TOOLS = {
    "gzip": ["gzip", "-c"],
    "bzip2": ["bzip2", "-c"],
    "zstd": ["zstd", "-q", "-c"],
    "xz": ["xz", "-c"],
}


def compress(fmt: str, data: bytes, *extra: str) -> bytes:
    return subprocess.run([*TOOLS[fmt], *extra], input=data, capture_output=True, check=True).stdout


def text(n_rows: int, seed: int = 0) -> bytes:
    return b"".join(
        b"INSERT INTO `t` VALUES (%d,'row %d %x');\n" % (i, i, (i * 2654435761 + seed) % 2**32)
        for i in range(n_rows)
    )


def decompress(blob: bytes, chunk: int = 1 << 20) -> tuple[bytes, compression.DecompressReader]:
    up = BytesReader(blob)
    head = read_exact(up, 512)
    d = open_decompressor(head, ChainReader(head, up))
    parts = []
    try:
        while b := d.read(chunk):
            assert len(b) <= chunk
            parts.append(b)
    finally:
        close = getattr(d, "close", None)
        if close:
            close()
    return b"".join(parts), d


FORMATS = ["gzip", "bzip2", "zstd", "xz"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_multi_member(fmt: str) -> None:
    a, b = text(20000), text(30000, seed=7)
    blob = compress(fmt, a) + compress(fmt, b)
    out, d = decompress(blob)
    assert out == a + b
    if fmt in ("gzip", "bzip2", "xz"):
        assert d.stats.members == 2


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", [1, 7, 100, "half"])
def test_truncation_detected(fmt: str, cut: int | str) -> None:
    blob = compress(fmt, text(50000))
    n = len(blob) // 2 if cut == "half" else len(blob) - int(cut)
    with pytest.raises((TruncatedBackup, IntegrityError)):
        decompress(blob[:n])


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_second_member(fmt: str) -> None:
    second = compress(fmt, text(30000, seed=3))
    blob = compress(fmt, text(20000)) + second[: len(second) // 2]
    with pytest.raises((TruncatedBackup, IntegrityError)):
        decompress(blob)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("garbage", [b"hello, trailing garbage", b"BZh9xxxxxxxxx", b"\x1f\x8bzz"])
def test_trailing_garbage_rejected(fmt: str, garbage: bytes) -> None:
    blob = compress(fmt, text(20000)) + garbage
    with pytest.raises((IntegrityError, TruncatedBackup)):
        decompress(blob)


@pytest.mark.parametrize("fmt", ["gzip", "bzip2"])
def test_trailing_zeros_tolerated(fmt: str) -> None:
    data = text(20000)
    out, d = decompress(compress(fmt, data) + b"\0" * 3000)
    assert out == data
    assert d.stats.trailing_zero_bytes == 3000
    assert d.stats.notes


@pytest.mark.parametrize("fmt", FORMATS)
def test_corruption_detected(fmt: str) -> None:
    blob = bytearray(compress(fmt, text(50000)))
    blob[len(blob) // 2] ^= 0x5A
    with pytest.raises((IntegrityError, TruncatedBackup)):
        decompress(bytes(blob))


@pytest.mark.parametrize("fmt", FORMATS)
def test_bounded_output_on_highly_compressible_input(fmt: str) -> None:
    size = 64 << 20
    zeros = b"\0" * size
    blob = compress(fmt, zeros, "-9") if fmt != "zstd" else compress(fmt, zeros, "-19")
    assert len(blob) < size // 500
    h = hashlib.sha256()
    total = 0
    up = BytesReader(blob)
    head = read_exact(up, 512)
    d = open_decompressor(head, ChainReader(head, up))
    try:
        while b := d.read(256 << 10):
            assert len(b) <= 256 << 10  # a bomb cannot grow memory beyond the cap
            h.update(b)
            total += len(b)
    finally:
        close = getattr(d, "close", None)
        if close:
            close()
    assert total == size
    assert h.digest() == hashlib.sha256(zeros).digest()


def test_bzip2_empty_stream_and_many_streams() -> None:
    parts = [compress("bzip2", b""), compress("bzip2", text(1000)), compress("bzip2", b"x")]
    out, d = decompress(b"".join(parts))
    assert out == text(1000) + b"x"
    assert d.stats.members == 3
