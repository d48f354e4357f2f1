"""Dump headers and trailers found over the whole stream, in chunks of any size.

The inspector searches once for a string several marks share (issue 17: every search
holds the GIL over every plaintext byte): mysqldump's two headers through the
"Distrib " their confirmation requires, pg_dump's trailer through the header words
that start it. The offsets it finds must not depend on where the chunks are cut, and
data full of the shared string must stay linear.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.dumps import inspect_in_chunks, mysql_like

PG_HEAD = (
    b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n"
    b"-- Dumped by pg_dump version 15.18\n\nCOPY public.t (id, v) FROM stdin;\n"
)
PG_TAIL = b"\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n"


def _verdict(stream: bytes, cuts: list[int]) -> str:
    return inspect_in_chunks(stream, cuts)[0]


def _mysql(tmp_path: Path) -> bytes:
    return mysql_like(tmp_path / "d.sql", rows=300).read_bytes()


@pytest.mark.parametrize("kind", ["mysql", "mariadb", "pg"])
def test_second_header_after_a_cut_dump_at_every_chunk_cut(tmp_path: Path, kind: str) -> None:
    if kind == "pg":
        one = PG_HEAD + b"".join(b"%d\trow Distrib \n" % i for i in range(300)) + PG_TAIL
        header_at = 3  # "--\n" before the header line
    else:
        one = _mysql(tmp_path)
        if kind == "mariadb":
            one = one.replace(b"-- MySQL dump", b"-- MariaDB dump", 1)
        header_at = 0
    cut = one.index(b"\n", 2000) - 7  # mid-line, as head -c cuts
    stream = one[:cut] + one
    expected = _verdict(stream, [])
    assert "dump 1 of 2" in expected and f"follows at offset {cut + header_at}" in expected
    for at in range(cut - 40, cut + 600, 7):  # around the second header and its confirmation
        assert _verdict(stream, [at]) == expected, at
    assert _verdict(stream, list(range(1, len(stream), 997))) == expected


def test_data_full_of_the_shared_string_is_one_complete_dump(tmp_path: Path) -> None:
    one = _mysql(tmp_path)
    at = one.index(b"INSERT INTO")
    flood = b"INSERT INTO `n` VALUES ('" + b"Distrib " * 200_000 + b"-- MySQL dump');\n"
    stream = one[:at] + flood + one[at:]
    assert _verdict(stream, list(range(1 << 16, len(stream), 1 << 16))) == "complete; 1 dump(s)"
