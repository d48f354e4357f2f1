"""The GIL-free substring search gives bytes.find/count's answers (issue 17)."""

from __future__ import annotations

import random

import pytest

from sealcheck.core.payload import search


def test_memmem_is_there_on_linux() -> None:
    # Without it the bytes methods answer (slower): this test says which one ran.
    assert search._MEMMEM is not None


@pytest.mark.parametrize("seed", range(5))
def test_find_and_count_agree_with_bytes(seed: int) -> None:
    rng = random.Random(seed)
    needle = b"CREATE TABLE "
    parts = []
    for _ in range(200):
        parts.append(bytes(rng.choice(b"CRE ATBL\n") for _ in range(rng.randint(0, 3000))))
        if rng.random() < 0.5:
            parts.append(needle)
    buf = b"".join(parts)
    assert len(buf) > 4096
    assert search.count(buf, needle) == buf.count(needle)
    for start in (0, 1, 4095, len(buf) // 2, len(buf) - len(needle), len(buf)):
        for end in (None, len(buf), len(buf) - 1, start + 5000):
            assert search.find(buf, needle, start, end) == buf.find(needle, start, end), (
                start,
                end,
            )


def test_edges_and_many_hits() -> None:
    n = b"\n-- Dump completed"
    body = b"x" * 10_000
    for buf in (n + body, body + n, body + n + body, body):
        assert search.find(buf, n) == buf.find(n)
        assert search.count(buf, n) == buf.count(n)
    # More hits than memmem calls are made for: the rest counted by bytes.count.
    many = b"ab" * 50_000
    assert search.count(many, b"ab") == 50_000
    assert search.count(b"aaaa" * 2000, b"aa") == (b"aaaa" * 2000).count(b"aa")
    # Not bytes, or small: the bytes methods themselves.
    assert search.count(bytearray(many), b"ab") == 50_000
    assert search.find(memoryview(body + n).tobytes(), n) == len(body)
    assert search.find(b"short" + n, n) == 5
