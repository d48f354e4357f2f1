"""Block-parallel bzip2: same output as bzip2(1), every check kept.

Compressed data is made with the real bzip2 binary. Block boundaries are
located here independently of the module (a plain bit scan) so that the
tests can cut and flip bits exactly at and inside them.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import threading
import tracemalloc
from collections.abc import Callable

import pytest

from sealcheck.core.decompress import bzip2 as parallel
from sealcheck.core.decompress.bzip2 import ParallelBzip2Reader
from sealcheck.core.decompress.bzip2.scanner import Splitter
from sealcheck.core.decompress.readers import SequentialBzip2Reader
from sealcheck.core.decompress.registry import open_decompressor
from sealcheck.core.errors import IntegrityError, TruncatedBackup
from sealcheck.core.plumbing.streams import BytesReader, ChainReader, read_exact

BLOCK = 0x314159265359
EOS = 0x177245385090


def bzip2(data: bytes, *opts: str) -> bytes:
    return subprocess.run(
        ["bzip2", "-c", *opts], input=data, capture_output=True, check=True
    ).stdout


def bunzip2(blob: bytes) -> bytes:
    return subprocess.run(["bzip2", "-dc"], input=blob, capture_output=True, check=True).stdout


def mixed(size: int, seed: int = 0) -> bytes:
    """Text rows, incompressible stretches and long runs: blocks of very different sizes."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.6:
            p = b"".join(
                b"INSERT INTO `t` VALUES (%d,'%s',%d);\n"
                % (i, rng.choice([b"abc", b"de", b"xyz"]) * 3, rng.getrandbits(30))
                for i in range(rng.randint(100, 20000))
            )
        elif kind < 0.8:
            p = rng.randbytes(rng.randint(1000, 400_000))
        else:
            p = bytes([rng.getrandbits(8)]) * rng.randint(10, 3_000_000)
        parts.append(p)
        total += len(p)
    return b"".join(parts)[:size]


def rows(n: int, seed: int = 0) -> bytes:
    return b"".join(b"row %d %x\n" % (i, (i * 2654435761 + seed) % 2**32) for i in range(n))


def boundaries(blob: bytes) -> list[tuple[str, int]]:
    """(kind, bit position) of every block and end-of-stream magic, by a plain scan."""
    v = int.from_bytes(blob, "big")
    total = len(blob) * 8
    found = []
    for kind, magic in (("block", BLOCK), ("eos", EOS)):
        for s in range(8):
            key = (magic << (8 - s)).to_bytes(7, "big")[1:6]
            j = blob.find(key)
            while j >= 0:
                bit = (j - 1) * 8 + s
                if (
                    bit >= 0
                    and bit + 48 <= total
                    and (v >> (total - bit - 48)) & ((1 << 48) - 1) == magic
                ):
                    found.append((kind, bit))
                j = blob.find(key, j + 1)
    return sorted(found, key=lambda x: x[1])


def flip(blob: bytes, bit: int) -> bytes:
    b = bytearray(blob)
    b[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(b)


def decode(
    blob: bytes, chunk: int = 1 << 20, workers: int = 2
) -> tuple[bytes, ParallelBzip2Reader]:
    d = ParallelBzip2Reader(BytesReader(blob), obj="x.bz2", workers=workers)
    parts = []
    try:
        while b := d.read(chunk):
            assert len(b) <= chunk
            parts.append(b)
    finally:
        d.close()
    return b"".join(parts), d


def decode_partial(blob: bytes) -> tuple[bytes, BaseException | None]:
    """Output until the error, and the error."""
    d = ParallelBzip2Reader(BytesReader(blob), workers=2)
    parts = []
    try:
        while b := d.read(1 << 20):
            parts.append(b)
    except (IntegrityError, TruncatedBackup) as exc:
        return b"".join(parts), exc
    finally:
        d.close()
    return b"".join(parts), None


@pytest.fixture(scope="module")
def big() -> tuple[bytes, bytes]:
    """20 MB of mixed data, bzip2 -9 (about two dozen blocks)."""
    data = mixed(20 << 20)
    return data, bzip2(data, "-9")


@pytest.fixture(scope="module")
def small_blocks() -> tuple[bytes, bytes]:
    """4 MB, bzip2 -1: 100k blocks, many of them."""
    data = mixed(4 << 20, seed=5)
    return data, bzip2(data, "-1")


# --- output ------------------------------------------------------------------------


def test_many_blocks_identical_to_bzip2(big: tuple[bytes, bytes]) -> None:
    data, blob = big
    assert sum(k == "block" for k, _ in boundaries(blob)) > 10
    out, d = decode(blob)
    assert out == data == bunzip2(blob)
    assert d.stats.members == 1
    assert d.stats.input_bytes == len(blob)


@pytest.mark.parametrize("level", ["-1", "-5", "-9"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_levels_and_workers(level: str, workers: int, small_blocks: tuple[bytes, bytes]) -> None:
    data = small_blocks[0][: 3 << 20]
    out, _ = decode(bzip2(data, level), workers=workers)
    assert out == data


@pytest.mark.parametrize("chunk", [1, 777, 65536])
def test_small_reads(chunk: int) -> None:
    data = rows(30000)
    out, _ = decode(bzip2(data, "-1"), chunk=chunk)
    assert out == data


def test_concatenated_streams_and_empty_ones(small_blocks: tuple[bytes, bytes]) -> None:
    data = small_blocks[0]
    pieces = [data[:1_500_000], b"", data[1_500_000:1_500_001], data[1_500_001:], b""]
    blob = b"".join(bzip2(p, "-2") for p in pieces)
    out, d = decode(blob)
    assert out == data == bunzip2(blob)
    assert d.stats.members == len(pieces)


def test_pbzip2_style_one_block_per_stream(big: tuple[bytes, bytes]) -> None:
    # pbzip2 compresses each 900 kB piece as its own stream.
    data = big[0][: 8 << 20]
    pieces = [data[i : i + 900_000] for i in range(0, len(data), 900_000)]
    blob = b"".join(bzip2(p, "-9") for p in pieces)
    out, d = decode(blob)
    assert out == data
    assert d.stats.members == len(pieces)


def test_open_decompressor_uses_the_parallel_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = bzip2(rows(1000))
    head = blob[:512]
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    d = open_decompressor(head, ChainReader(head, BytesReader(blob[512:])))
    assert isinstance(d, ParallelBzip2Reader)
    d.close()
    monkeypatch.setattr(parallel, "default_workers", lambda: 1)
    d = open_decompressor(head, ChainReader(head, BytesReader(blob[512:])))
    assert isinstance(d, SequentialBzip2Reader)


# --- wrong cuts: a chance magic inside the data, a missed boundary -------------------


def test_false_magic_inside_a_block_is_recovered(
    monkeypatch: pytest.MonkeyPatch, small_blocks: tuple[bytes, bytes]
) -> None:
    """A cut in the middle of a block (as a chance 48-bit match would make) costs time, not correctness."""
    data, blob = small_blocks
    real = Splitter._find
    calls = {"n": 0}

    def find(self: Splitter, lo: int, limit: int) -> tuple[str, int] | None:
        calls["n"] += 1
        cand = real(self, lo, limit)
        if cand is not None and calls["n"] % 3 == 0 and cand[1] - lo > 4000:
            return ("block", (lo + cand[1]) // 2)  # a false block magic
        return cand

    monkeypatch.setattr(Splitter, "_find", find)
    recovered = []
    real_recover = ParallelBzip2Reader._recover
    monkeypatch.setattr(
        ParallelBzip2Reader,
        "_recover",
        lambda self, job, why: recovered.append(why) or real_recover(self, job, why),
    )
    out, _ = decode(blob)
    assert out == data
    assert recovered


@pytest.mark.parametrize("seed", [1, 2])
def test_random_skips_never_change_the_output(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """The boundary search may skip too far (past one or more blocks, past an
    end-of-stream marker); the skipped-prefix check catches it."""
    data = mixed(3 << 20, seed=seed)
    blob = bzip2(data[: 1 << 20], "-1") + bzip2(data[1 << 20 :], "-1")
    rng = random.Random(seed)

    def search_from(self: Splitter) -> int:
        return (self.bstart + rng.choice([0, 1000, 50_000, 400_000, 3_000_000]) * 8) // 8 * 8 + 80

    monkeypatch.setattr(Splitter, "_search_from", search_from)
    out, d = decode(blob)
    assert out == data
    assert d.stats.members == 2


# --- integrity ------------------------------------------------------------------------


def truncation_points(blob: bytes) -> dict[str, int]:
    marks = boundaries(blob)
    blocks = [b for k, b in marks if k == "block"]
    eos = [b for k, b in marks if k == "eos"][-1]
    return {
        "inside the header": 2,
        "after the header": 4,
        "inside the first block magic": blocks[0] // 8 + 3,
        "inside the first block": blocks[0] // 8 + 500,
        "at a block boundary": blocks[2] // 8,
        "just after a block magic": blocks[2] // 8 + 7,
        "inside the last block": (blocks[-1] + eos) // 16,
        "inside the end-of-stream magic": eos // 8 + 3,
        "inside the stream CRC": eos // 8 + 8,
        "last byte missing": len(blob) - 1,
    }


@pytest.mark.parametrize(
    "where",
    [
        "inside the header",
        "after the header",
        "inside the first block magic",
        "inside the first block",
        "at a block boundary",
        "just after a block magic",
        "inside the last block",
        "inside the end-of-stream magic",
        "inside the stream CRC",
        "last byte missing",
    ],
)
def test_every_truncation_detected(where: str, small_blocks: tuple[bytes, bytes]) -> None:
    data, blob = small_blocks
    cut = blob[: truncation_points(blob)[where]]
    out, exc = decode_partial(cut)
    assert isinstance(exc, TruncatedBackup), exc
    assert data.startswith(out)  # whole verified blocks only, never garbage


def test_truncated_second_stream(small_blocks: tuple[bytes, bytes]) -> None:
    data, blob = small_blocks
    second = bzip2(rows(50000), "-1")
    out, exc = decode_partial(blob + second[: len(second) // 2])
    assert isinstance(exc, TruncatedBackup)
    assert out.startswith(data)


def test_flipped_bit_in_block_data(small_blocks: tuple[bytes, bytes]) -> None:
    data, blob = small_blocks
    blocks = [b for k, b in boundaries(blob) if k == "block"]
    mid = (blocks[3] + blocks[4]) // 2
    out, exc = decode_partial(flip(blob, mid))
    assert isinstance(exc, IntegrityError) and not isinstance(exc, TruncatedBackup)
    assert data.startswith(out)


def test_flipped_bit_in_block_crc(small_blocks: tuple[bytes, bytes]) -> None:
    data, blob = small_blocks
    blocks = [b for k, b in boundaries(blob) if k == "block"]
    out, exc = decode_partial(flip(blob, blocks[2] + 48 + 5))
    assert isinstance(exc, IntegrityError)
    assert data.startswith(out)


def test_flipped_bit_in_block_magic(small_blocks: tuple[bytes, bytes]) -> None:
    # The boundary is no longer found: two blocks in one cut, which cannot decode.
    data, blob = small_blocks
    blocks = [b for k, b in boundaries(blob) if k == "block"]
    out, exc = decode_partial(flip(blob, blocks[2] + 20))
    assert isinstance(exc, IntegrityError)
    assert data.startswith(out)


def test_flipped_bit_in_stream_crc(small_blocks: tuple[bytes, bytes]) -> None:
    data, blob = small_blocks
    eos = [b for k, b in boundaries(blob) if k == "eos"][-1]
    out, exc = decode_partial(flip(blob, eos + 48 + 31))
    assert isinstance(exc, IntegrityError)
    assert "stream CRC" in str(exc)
    assert out == data  # every block was fine


def test_swapped_blocks_fail_the_stream_crc() -> None:
    # Each block checks out on its own; only the combined CRC sees the reorder.
    a = bzip2(rows(100000, seed=1), "-1")
    blocks = [b for k, b in boundaries(a) if k == "block"]
    assert len(blocks) >= 3
    bits = int.from_bytes(a, "big")
    total = len(a) * 8

    def span(lo: int, hi: int) -> tuple[int, int]:
        return (bits >> (total - hi)) & ((1 << (hi - lo)) - 1), hi - lo

    b0, b1, b2 = blocks[0], blocks[1], blocks[2]
    pieces = [span(0, b0), span(b1, b2), span(b0, b1), span(b2, total)]
    v, n = 0, 0
    for p, k in pieces:
        v, n = (v << k) | p, n + k
    swapped = v.to_bytes(n // 8, "big")
    _, exc = decode_partial(swapped)
    assert isinstance(exc, IntegrityError)
    assert "stream CRC" in str(exc)


@pytest.mark.parametrize(
    "garbage",
    [b"hello, trailing garbage", b"BZh9xxxxxxxxx", b"BZh", b"BZ", b"\x00\x00\x01", b"BZh91AY&SY"],
)
def test_trailing_garbage_rejected(garbage: bytes) -> None:
    data = rows(20000)
    out, exc = decode_partial(bzip2(data) + garbage)
    assert isinstance(exc, (IntegrityError, TruncatedBackup))
    assert out == data


def sequential(blob: bytes) -> tuple[bytes, SequentialBzip2Reader]:
    d = SequentialBzip2Reader(BytesReader(blob))
    parts = []
    while b := d.read(1 << 20):
        parts.append(b)
    return b"".join(parts), d


@pytest.mark.parametrize("zeros", [1, 3000, 3 << 20])
def test_trailing_zeros_same_policy_as_sequential(zeros: int) -> None:
    data = rows(20000)
    blob = bzip2(data) + b"\0" * zeros
    out, d = decode(blob)
    seq_out, s = sequential(blob)
    assert out == seq_out == data
    assert d.stats.trailing_zero_bytes == s.stats.trailing_zero_bytes == zeros
    assert d.stats.notes == s.stats.notes


def test_zeros_then_a_stream_rejected() -> None:
    blob = bzip2(rows(1000)) + b"\0" * 10 + bzip2(rows(10))
    with pytest.raises(IntegrityError):
        decode(blob)
    with pytest.raises(IntegrityError):
        sequential(blob)


def test_bad_level_digit() -> None:
    blob = bytearray(bzip2(rows(1000)))
    blob[3] = ord("0")
    with pytest.raises(IntegrityError):
        decode(bytes(blob))


# --- resources ----------------------------------------------------------------------


def test_bounded_memory_on_highly_compressible_input() -> None:
    # 45 MB per 36-byte block: output is checked in a discarding pass, then streamed.
    size = 300 << 20
    blob = bzip2(b"\0" * size, "-9")
    assert len(blob) < 2000
    h = hashlib.sha256()
    total = 0
    tracemalloc.start()
    try:
        d = ParallelBzip2Reader(BytesReader(blob), workers=2)
        while b := d.read(256 << 10):
            assert len(b) <= 256 << 10
            h.update(b)
            total += len(b)
        d.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert h.digest() == hashlib.sha256(b"\0" * size).digest()
    assert peak < 40 << 20, peak


def test_bounded_lookahead_on_large_input(big: tuple[bytes, bytes]) -> None:
    data, blob = big
    seen: list[int] = []
    d = ParallelBzip2Reader(BytesReader(blob), workers=2)
    n = 0
    while b := d.read(1 << 20):
        n += len(b)
        seen.append(d._split.buffered())
    d.close()
    assert n == len(data)
    assert max(seen) < 12 << 20


def test_close_mid_stream_stops_the_workers(big: tuple[bytes, bytes]) -> None:
    before = threading.active_count()
    d = ParallelBzip2Reader(BytesReader(big[1]), workers=2)
    assert d.read(1000)
    assert threading.active_count() > before
    d.close()
    assert threading.active_count() == before


def test_through_open_decompressor_like_the_pipeline(big: tuple[bytes, bytes]) -> None:
    data, blob = big
    up = BytesReader(blob)
    head = read_exact(up, 512)
    d = open_decompressor(head, ChainReader(head, up))
    close: Callable[[], None] | None = getattr(d, "close", None)
    h = hashlib.sha256()
    try:
        while b := d.read(1 << 20):
            h.update(b)
    finally:
        if close:
            close()
    assert h.digest() == hashlib.sha256(data).digest()
