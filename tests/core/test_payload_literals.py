"""Several strings in one pass (search.Literals, issue 17) give the bytes methods'
answers, with Hyperscan and without it, and the inspector's marks and CREATE TABLE
count do not depend on where the chunks are cut nor on which road searched them.

Without Hyperscan is a fault injection: ``sys.modules["hyperscan"] = None`` makes its
import fail, as on a platform with no wheel.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from fixtures.dumps import inspect_in_chunks, mysql_like
from sealcheck.core.payload import search
from sealcheck.core.payload.inspector import PayloadInspector

# The inspector's strings, and strings that overlap themselves and one another.
NEEDLES = (b"Distrib ", b"\n-- Dump completed", b"abab", b"bab", b"b")
COUNTED = (b"CREATE TABLE ", b"aa")


@pytest.fixture(params=["hyperscan", "without"])
def road(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without":
        monkeypatch.setitem(sys.modules, "hyperscan", None)
    else:
        pytest.importorskip("hyperscan")
    return str(request.param)


def _reference(
    buf: bytes, located: tuple[bytes, ...], counted: tuple[bytes, ...], end: int | None
) -> search.Found:
    hits = []
    for i, n in enumerate(located):
        j = buf.find(n)
        while j != -1:
            hits.append((j, i))
            j = buf.find(n, j + 1)
    stop = len(buf) if end is None else max(min(end, len(buf)), 0)
    return search.Found(sorted(hits), [buf.count(n, 0, stop) for n in counted])


def _check(lits: search.Literals, buf: bytes, end: int | None = None) -> None:
    assert lits.scan(buf, end) == _reference(buf, lits.located, lits.counted, end)


def _planted(rng: random.Random, size: int, needles: tuple[bytes, ...], alphabet: bytes) -> bytes:
    buf = bytearray(rng.choice(alphabet) for _ in range(size))
    for _ in range(rng.randint(0, 12) if size else 0):
        n = rng.choice(needles)
        at = rng.choice([0, size - len(n), rng.randrange(size), size // 2 - len(n) // 2])
        buf[at : at + len(n)] = n
    return bytes(buf[:size])


@pytest.mark.parametrize("seed", range(8))
def test_random_buffers_with_planted_strings(road: str, seed: int) -> None:
    rng = random.Random(seed)
    located, counted = NEEDLES[: rng.randint(0, len(NEEDLES))], COUNTED[: rng.randint(1, 2)]
    lits = search.Literals(located, counted, hyperscan_after=0)
    for size in (0, 1, 5, 4095, 4096, 4097, 20_000, 70_000):
        # Small buffers full of candidates; large ones with few (under the callback cap).
        alphabet = b"ab \nxCDE" if size < 5000 else b"xyz \nCDE"
        buf = _planted(rng, size, located + counted, alphabet)
        for end in (None, 0, size // 2, size - 1, size + 5):
            _check(lits, buf, end)
    if len(located + counted) > 1:  # one string: memmem alone, as fast
        assert lits._pass is False if road == "without" else lits._pass


def test_strings_at_the_edges_and_overlapping(road: str) -> None:
    lits = search.Literals(
        (b"abab", b"bab", b"Distrib "), (b"aa", b"CREATE TABLE "), hyperscan_after=0
    )
    body = b"x" * 6000
    for buf in (
        b"abab" + body + b"ababab",
        b"ababababa" + body,
        body + b"aaaaa" + body + b"Distrib",
        b"CREATE TABLE " + body + b"CREATE TABLE",
        body + b"Distrib " + b"CREATE TABLE ",
    ):
        for end in (None, len(buf) - 1, len(buf) - 12, 4):
            _check(lits, buf, end)


def test_a_buffer_made_of_the_strings_goes_string_by_string(road: str) -> None:
    lits = search.Literals((b"Distrib ",), (b"CREATE TABLE ", b"a"), hyperscan_after=0)
    for buf in (
        b"CREATE TABLE " * 50_000,
        b"Distrib " * 10_000,
        b"a" * 100_000,
        b"x" * 5000 + b"CREATE TABLE " * (search._MAX_CALLS + 1),
        b"x" * 5000 + b"CREATE TABLE " * search._MAX_CALLS,
    ):
        _check(lits, buf)
        _check(lits, buf, len(buf) // 3)


def test_hyperscan_waits_for_enough_data(road: str) -> None:
    lits = search.Literals((b"Distrib ",), (b"CREATE TABLE ",), hyperscan_after=10_000)
    buf = b"y" * 6000 + b"Distrib "
    _check(lits, buf)
    assert lits._pass is None  # 6 kB read: not loaded yet
    _check(lits, buf)
    assert lits._pass is not None


def test_an_empty_string_is_refused() -> None:
    with pytest.raises(ValueError):
        search.Literals((b"x", b""))


# ---- the inspector: one pass per chunk, the same marks and counts for any chunking


def _big_stream(tmp_path: Path) -> tuple[bytes, list[int]]:
    """Two mysqldumps one after another, the first cut short, more than
    HYPERSCAN_AFTER of rows (so Hyperscan searches the later chunks), CREATE TABLE
    and the second header across 1 MiB chunk seams; and those seams."""
    one = mysql_like(tmp_path / "d.sql", rows=300).read_bytes()
    at = one.index(b"INSERT INTO")
    rows = b"INSERT INTO `t` VALUES (1,'row ~ a text of the kind');\n" * 450_000
    cut = one[: one.index(b"\n", 2000) - 7]
    first = one[:at] + rows + cut
    mib = 1 << 20
    seams = [k * mib for k in range(1, (len(first) + len(one)) // mib + 1)]
    body = bytearray(first)
    for k, s in enumerate(seams[2 : len(first) // mib - 1]):
        # a CREATE TABLE across the seam, at each cut point within it
        body[s - 1 - k % 12 : s - 1 - k % 12 + 13] = b"CREATE TABLE "
    stream = bytes(body[: seams[-3] - 5]) + one  # the second header across a seam
    return stream, seams


def test_inspector_marks_and_tables_with_and_without_hyperscan(tmp_path: Path, road: str) -> None:
    stream, seams = _big_stream(tmp_path)
    assert len(stream) > search.HYPERSCAN_AFTER + (4 << 20)
    insp = PayloadInspector(obj="x")
    verdict, tables = inspect_in_chunks(stream, seams, insp)
    assert insp._scanner is not None
    used = insp._scanner._search._pass  # Hyperscan searched the later chunks, or not
    assert used is False if road == "without" else used
    assert tables == stream.count(b"CREATE TABLE ")
    assert "dump 1 of 2" in verdict, verdict
    second = len(stream) - len(mysql_like(tmp_path / "d.sql", rows=300).read_bytes())
    assert f"follows at offset {second}" in verdict, verdict
    # Another chunking: the same answers (the seams move).
    assert inspect_in_chunks(stream, [s - 3 for s in seams]) == (verdict, tables)


def test_inspector_counts_tables_in_small_chunks_from_the_first_byte(tmp_path: Path) -> None:
    one = mysql_like(tmp_path / "d.sql", rows=50).read_bytes()
    for stream, tables in ((one, 1), (b"CREATE TABLE x;\n" + one, 2), (b"CREATE TABLE x;", 1)):
        whole = inspect_in_chunks(stream, [])
        assert whole[1] == tables
        for step in (1, 13, 100, 511, 4096):
            assert inspect_in_chunks(stream, list(range(step, len(stream), step))) == whole, step
