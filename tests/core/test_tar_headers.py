"""Every field of a tar header checked, not only its checksum (core/payload/tar.py).

A tar header's checksum is a plain byte sum, and tar readers accept it signed or
unsigned. In ``openssl enc`` (CBC, no MAC) one flipped ciphertext byte garbles a
whole 16-byte block of plaintext; over a header's zero bytes, random bytes passed
the signed sum about once in 600 tries, and a pg_dump tar with a damaged header
verified (CI, test_pg_archives). Here: the archives real writers make (GNU tar in
all five formats, Python's tarfile in its three) still read, and a garbled block
anywhere a header holds numbers, magic or zeros is refused even when its checksum
has been made to match.
"""

from __future__ import annotations

import io
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from sealcheck.core.payload.streamparse import Damaged, Feeder
from sealcheck.core.payload.tar import BLOCK, MemberSink, TarParser

LONG = "folder/" + "a_name_longer_than_the_hundred_bytes_a_ustar_name_field_holds_" * 2 + "x"


class _Collect(MemberSink):
    def __init__(self, into: dict[str, bytearray], name: str) -> None:
        self.buf = into.setdefault(name, bytearray())

    def feed(self, data: bytes) -> None:
        self.buf.extend(data)


def read(tar: bytes) -> dict[str, bytes]:
    """The members' data by name, as the one tar reader reads them."""
    got: dict[str, bytearray] = {}
    parser = TarParser(lambda m: _Collect(got, m.name))
    feeder = Feeder(parser.parse(), lambda n: None)
    feeder.feed(tar)
    feeder.finish()
    return {k: bytes(v) for k, v in got.items()}


def _tree(root: Path, long: bool) -> dict[str, bytes]:
    files = {"folder/a.txt": b"hello\n", "folder/empty": b"", "b.bin": bytes(range(256)) * 9}
    if long:
        files[LONG] = b"long name\n"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "ustar", "posix", "v7"])
def test_gnu_tar_in_every_format_reads(fmt: str, tmp_path: Path) -> None:
    long = fmt not in ("ustar", "v7")  # those two cannot hold a name this long
    files = _tree(tmp_path, long)
    out = tmp_path / "t.tar"
    subprocess.run(
        ["tar", f"--format={fmt}", "-C", str(tmp_path), "-cf", str(out), *sorted(files)],
        check=True,
    )
    assert read(out.read_bytes()) == files


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_python_tarfile_in_every_format_reads(fmt: int) -> None:
    files = {"a.txt": b"x" * 700, "dir/b": b"", "\u00e9t\u00e9/caf\u00e9.sql": b"SELECT 1;\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.uname, info.gname = len(data), "postgres", "\u00e9quipe"
            tf.addfile(info, io.BytesIO(data))
    assert read(buf.getvalue()) == files


def _with_checksum(hdr: bytearray) -> bytearray:
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return hdr


# Blocks of a header where a garbled name is read as another name: downstream
# checks judge it (a file nobody expects), not the header reader.
_TEXT_BLOCKS = {0}  # the first 16 bytes of the name


@pytest.mark.parametrize("fmt", ["gnu", "ustar", "v7"])
def test_a_garbled_block_is_refused_even_with_a_matching_checksum(fmt: str, tmp_path: Path) -> None:
    (tmp_path / "f.sql").write_bytes(b"SELECT 1;\n" * 100)
    out = tmp_path / "t.tar"
    subprocess.run(
        ["tar", f"--format={fmt}", "-C", str(tmp_path), "-cf", str(out), "f.sql"], check=True
    )
    tar = out.read_bytes()
    rng = random.Random(f"tar-{fmt}")
    accepted = []
    for start in range(0, BLOCK, 16):
        if start // 16 in _TEXT_BLOCKS or 144 <= start < 160:  # the checksum itself
            continue
        for _ in range(20):
            hdr = bytearray(tar[:BLOCK])
            hdr[start : start + 16] = bytes(rng.randrange(256) for _ in range(16))
            _with_checksum(hdr)
            try:
                read(bytes(hdr) + tar[BLOCK:])
            except Damaged:
                continue
            accepted.append(start)
    assert accepted == []


def test_the_ci_case_pad_bytes_passing_the_signed_sum(tmp_path: Path) -> None:
    """The damage CI met: header bytes 496-511 random, summing to 256 x (bytes > 127)."""
    (tmp_path / "3400.dat").write_bytes(b"1\t2024-01-01\tcreated\n\\.\n\n")
    out = tmp_path / "t.tar"
    subprocess.run(
        ["tar", "--format=ustar", "-C", str(tmp_path), "-cf", str(out), "3400.dat"], check=True
    )
    tar = bytearray(out.read_bytes())
    tar[496:512] = bytes.fromhex("02562b3dd6a82788d6d7c13aefcf4568")  # from the CI run
    high = sum(1 for b in tar[496:512] if b > 127)
    assert sum(tar[496:512]) == 256 * high  # the signed sum still matches
    with pytest.raises(Damaged, match=r"bytes after its end|not zeros"):
        read(bytes(tar))


def test_an_unknown_magic_is_named(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    out = tmp_path / "t.tar"
    subprocess.run(["tar", "--format=ustar", "-C", str(tmp_path), "-cf", str(out), "f"], check=True)
    hdr = bytearray(out.read_bytes())
    hdr[257:263] = b"UsTaR\0"
    with pytest.raises(Damaged, match="no known format"):
        read(bytes(_with_checksum(hdr[:BLOCK])) + bytes(hdr[BLOCK:]))
