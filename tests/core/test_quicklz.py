"""The QuickLZ decoder's two implementations (issue 16): the C accelerator
(core/decompress/_quicklz.c) and the pure-Python one give the same bytes, or the
same refusal, for every block: made by the tests' own encoder (levels 1 and 3,
every match encoding, overlapping runs), truncated, bit-flipped, with lengths
out of range, and a few thousand random mutations. A hostile block must never
make either read or write out of bounds: the C one would crash the process or
return garbage where Python raises, and the two would disagree.

Real blocks (mariabackup --compress) are decoded by both in
tests/integration/test_physical.py.
"""

from __future__ import annotations

import os
import random
import struct

import pytest

from fixtures.quicklz_enc import compress
from sealcheck.core.decompress import quicklz
from sealcheck.core.decompress.quicklz import DECODERS, QuickLZError, decompress_block

BOTH = ("python", "c")
needs_c = pytest.mark.skipif(
    "c" not in DECODERS, reason="the C accelerator was not built (no compiler at install)"
)


def _text(n: int, seed: int) -> bytes:
    r = random.Random(seed)
    words = [b"INSERT ", b"INTO ", b"`t1` ", b"VALUES ", b"(1,'abc')", b"\0" * 16, b"page"]
    out = bytearray()
    while len(out) < n:
        out += r.choice(words) if r.random() < 0.8 else bytes([r.randrange(256)])
    return bytes(out[:n])


SAMPLES = {
    "empty": b"",
    "one byte": b"x",
    "tail only": b"0123456789ab",
    "zeros": bytes(70000),
    "a run": b"ab" * 3000,
    "random": random.Random(3).randbytes(5000),
    "text": _text(65536, 1),
    "text, large": _text(300_000, 2),
}


def outcome(block: bytes, decoder: str) -> bytes | str:
    try:
        return decompress_block(block, decoder=decoder)
    except QuickLZError as exc:
        return f"error: {exc}"


def test_the_c_accelerator_is_built_here() -> None:
    """`pip install -e .` builds it where gcc and the Python headers are (./dev, CI):
    without it, large --compress backups take the slow road."""
    assert quicklz.DECODER == "c", "core/decompress/_quicklz.c was not built"


@needs_c
@pytest.mark.parametrize("level", [1, 3])
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_both_decode_what_the_encoder_made(level: int, name: str) -> None:
    data = SAMPLES[name]
    block = compress(data, level=level)
    for dec in BOTH:
        assert decompress_block(block, decoder=dec) == data, dec


@needs_c
def test_short_headers_and_stored_blocks() -> None:
    data = b"short header block, " * 3
    block = compress(data, level=3, long_header=False)
    assert block[0] & 2 == 0
    stored = b"\x46" + struct.pack("<II", 9 + 5, 5) + b"hello"
    for dec in BOTH:
        assert decompress_block(block, decoder=dec) == data
        assert decompress_block(stored, decoder=dec) == b"hello"


@needs_c
def test_level3_uses_every_match_encoding() -> None:
    """Each of the five level-3 encodings, and overlapping copies (distance 1)."""
    r = random.Random(5)
    far = r.randbytes(20000)
    data = (
        b"abcdefgh" + b"abc"  # distance < 64, length 3: 1 byte
        + r.randbytes(100) + b"abcd"[:3]  # distance < 16384, length 3: 2 bytes
        + b"0123456789012345" + r.randbytes(50) + b"0123456789012345"  # < 1024, <= 18
        + far + far[:30]  # < 131072, <= 33: 3 bytes
        + far[100:400]  # long: 4 bytes
        + b"z" * 500  # a run: overlapping matches
        + r.randbytes(40)
    )  # fmt: skip
    block = compress(data, level=3)
    for dec in BOTH:
        assert decompress_block(block, decoder=dec) == data


def _mutants(block: bytes, r: random.Random) -> bytes:
    b = bytearray(block)
    kind = r.randrange(6)
    if kind == 0:  # a flipped bit past the header
        i = r.randrange(9, len(b)) if len(b) > 9 else 0
        b[i] ^= 1 << r.randrange(8)
    elif kind == 1:  # a random byte
        b[r.randrange(9, len(b))] = r.randrange(256)
    elif kind == 2:  # truncated, the header's csize fixed to match (else refused early)
        b = b[: r.randrange(9, len(b))]
        struct.pack_into("<I", b, 1, len(b))
    elif kind == 3:  # a decoded size out of range (larger or smaller)
        d = struct.unpack_from("<I", b, 5)[0]
        struct.pack_into("<I", b, 5, r.choice([d + r.randrange(1, 500), max(0, d - 7), 0]))
    elif kind == 4:  # a burst of random bytes
        i = r.randrange(9, len(b))
        b[i : i + 8] = r.randbytes(8)[: len(b) - i]
    else:  # the level bits changed (1 <-> 3)
        b[0] ^= 0x08
    return bytes(b)


@needs_c
@pytest.mark.parametrize("level", [1, 3])
def test_damaged_blocks_get_the_same_answer_from_both(level: int) -> None:
    """Truncated, bit-flipped, oversized/undersized lengths, level changed, and random
    mutations: both give the same bytes or the same error, never anything else."""
    r = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed = r.getstate()
    small = [_text(4096, 4), bytes(3000), b"ab" * 700, random.Random(6).randbytes(800)]
    sources = [compress(d, level=level) for d in small]
    refused = 0
    for i in range(2500):
        block = _mutants(sources[i % len(sources)], r)
        c, py = outcome(block, "c"), outcome(block, "python")
        assert c == py, (i, block[:16].hex(), seed)
        refused += isinstance(c, str)
    assert refused > 500  # the mutations reach the decoder's checks


@needs_c
def test_hostile_blocks_are_refused_by_both() -> None:
    tiny = compress(b"0123456789abcdef" * 4, level=1)
    cases = {
        # a match before anything was decoded (level 3, distance 1)
        "match first": b"\x4f" + struct.pack("<II", 9 + 4 + 2, 100) + b"\x01\0\0\0" + b"\x05\x00",
        # a level-1 match of length 0 (long form)
        "short match": b"\x47" + struct.pack("<II", 9 + 4 + 3 + 20, 100) + b"\x02\0\0\0"
        + b"a" + b"\x00\x00\x00" + b"b" * 19,
        # a huge decoded size with little data
        "huge dsize": tiny[:5] + struct.pack("<I", 1 << 26) + tiny[9:],
        # control word cut
        "no cword": b"\x47" + struct.pack("<II", 11, 4) + b"\0\0",
    }  # fmt: skip
    for name, block in cases.items():
        for dec in BOTH:
            with pytest.raises(QuickLZError):
                decompress_block(block, decoder=dec)
        assert outcome(block, "c") == outcome(block, "python"), name


@needs_c
def test_random_bytes_never_crash_either() -> None:
    r = random.Random(11)
    for _ in range(2000):
        n = r.randrange(9, 200)
        body = r.randbytes(n - 9)
        flags = 0x40 | r.choice([1, 3]) << 2 | 3
        block = bytes([flags]) + struct.pack("<II", n, r.randrange(0, 400)) + body
        assert outcome(block, "c") == outcome(block, "python")
