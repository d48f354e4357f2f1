"""Format edge cases (issue 10): valid inputs that must verify, broken ones that must fail.

Every object is made with the real tools (gzip, xz, openssl enc) and run
through the real pipeline: the ``sealcheck verify`` CLI, or the in-process job
where many variants are checked. The one hand-built object is a gzip member
with a 10,000-byte FNAME: ``gzip -N`` stores the file's own name, and Linux
names stop at 255 bytes, so the RFC 1952 header is built here around deflate
data made by zlib; ``gzip -t`` and ``zcat`` accept it (asserted).
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from fixtures.adversarial import assert_failed, cli_json, run_job
from fixtures.dumps import mysql_like
from fixtures.pipelines import q, seal, sh
from sealcheck.core.decompress import readers as compression
from sealcheck.core.decompress.registry import open_decompressor
from sealcheck.core.errors import IntegrityError, TruncatedBackup
from sealcheck.core.plumbing.streams import BytesReader, ChainReader, read_exact

ENC = "-aes-256-cbc -pbkdf2"


def verify(data: Path, pf: Path) -> tuple[int, dict]:
    rc, rep, err = cli_json("verify", str(data), "--passphrase-file", str(pf))
    assert rep is not None, err
    return rc, rep


def incomplete(data: Path, pf: Path) -> tuple[dict, str]:
    """Verify ``data``: it fails (exit 1) at the payload layer as an incomplete dump.
    Returns the report and the error's message, for the test to read."""
    rc, rep = verify(data, pf)
    assert rc == 1, rep
    err = assert_failed(rep, obj=data, layer="payload", kind="IncompleteDump")
    return rep, str(err["message"])


def layer(rep: dict, name: str) -> dict:
    return next(x for x in rep["layers"] if x["layer"] == name)


def restored(data: Path, pf: Path, dest: Path) -> bytes:
    """Restore in-process and return the bytes written (the job must succeed)."""
    rep = run_job(data, passphrase=pf.read_bytes(), dest=dest)
    assert rep.ok, rep.error
    return dest.read_bytes()


# --- 1. gzip header fields of any length --------------------------------------------

FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 0x01, 0x02, 0x04, 0x08, 0x10


def gzip_member(
    data: bytes,
    *,
    name: bytes | None = None,
    comment: bytes | None = None,
    extra: bytes | None = None,
    hcrc: bool = False,
) -> bytes:
    """One RFC 1952 member: the header is built here, the deflate body is zlib's."""
    flags = (
        (FNAME if name is not None else 0)
        | (FCOMMENT if comment is not None else 0)
        | (FEXTRA if extra is not None else 0)
        | (FHCRC if hcrc else 0)
    )
    header = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", 1764237600) + b"\x00\x03"
    if extra is not None:
        header += struct.pack("<H", len(extra)) + extra
    if name is not None:
        header += name + b"\0"
    if comment is not None:
        header += comment + b"\0"
    if hcrc:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzip_accepts(path: Path) -> bool:
    return subprocess.run(["gzip", "-t", str(path)], capture_output=True).returncode == 0


def zcat(path: Path) -> bytes:
    return subprocess.run(["zcat", str(path)], capture_output=True, check=True).stdout


class Trickle:
    """Delivers at most ``k`` bytes per read, as a slow network source may."""

    def __init__(self, data: bytes, k: int) -> None:
        self._up = BytesReader(data)
        self._k = k

    def read(self, n: int = -1, /) -> bytes:
        return self._up.read(min(n, self._k) if n > 0 else self._k)


def decompress(blob: bytes, *, trickle: int | None = None) -> bytes:
    up = Trickle(blob, trickle) if trickle else BytesReader(blob)
    head = read_exact(up, 512)
    d = open_decompressor(head, ChainReader(head, up))
    out = []
    while b := d.read(1 << 16):
        out.append(b)
    return b"".join(out)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mysql_like(tmp_path_factory.mktemp("dump") / "dump.sql", rows=3000)


def test_gzip_member_with_10000_byte_name_and_comment_verifies(tmp_path: Path, dump: Path) -> None:
    """Reported corrupt before: ISA-L's header reader lost its place when a
    header with FNAME and FCOMMENT arrived in two reads."""
    plain = dump.read_bytes()
    member = tmp_path / "long-name.sql.gz"
    member.write_bytes(gzip_member(plain, name=b"n" * 10_000, comment=("comment " * 2000).encode()))
    assert gzip_accepts(member)
    assert zcat(member) == plain
    data, pf = seal(tmp_path / "s3", "backup.sql.gz.enc", f"cat {q(member)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert rep["formats"] == ["openssl-enc", "gzip", "mysql-sql"]
    assert layer(rep, "payload")["details"]["completeness"] == "complete"
    assert restored(data, pf, tmp_path / "out.sql") == plain


def test_long_name_member_between_real_gzip_members(tmp_path: Path, dump: Path) -> None:
    """cat of a gzip -c member, the long-header member, and another gzip -c member."""
    plain = dump.read_bytes()
    third = len(plain) // 3
    parts = [plain[:third], plain[third : 2 * third], plain[2 * third :]]
    mid = tmp_path / "mid.gz"
    mid.write_bytes(gzip_member(parts[1], name=b"x" * 50_000, comment=b"c" * 70_000))
    for i in (0, 2):
        (tmp_path / f"p{i}").write_bytes(parts[i])
    whole = tmp_path / "whole.gz"
    sh(f"{{ gzip -c p0; cat mid.gz; gzip -c p2; }} > {q(whole)}", tmp_path)
    assert gzip_accepts(whole) and zcat(whole) == plain
    data, pf = seal(tmp_path / "s3", "three.sql.gz.enc", f"cat {q(whole)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert layer(rep, "decompress")["details"]["members"] == 3


@pytest.mark.parametrize("trickle", [1, 7, 100, 4096])
def test_gzip_header_split_over_any_reads(tmp_path: Path, trickle: int) -> None:
    """Every header field (FEXTRA, FNAME, FCOMMENT, FHCRC) cut at every read size."""
    plain = mysql_like(tmp_path / "d.sql", rows=300).read_bytes()
    blob = gzip_member(
        plain, name=b"n" * 3000, comment=b"c" * 2000, extra=b"AB\x04\x00wxyz", hcrc=True
    )
    (tmp_path / "m.gz").write_bytes(blob)
    assert gzip_accepts(tmp_path / "m.gz")
    assert decompress(blob + blob, trickle=trickle) == plain + plain


def test_gzip_header_crc_checked(tmp_path: Path) -> None:
    """A wrong FHCRC is corrupt for gzip(1) and for Sealcheck alike."""
    plain = mysql_like(tmp_path / "d.sql", rows=300).read_bytes()
    good = gzip_member(plain, name=b"dump.sql", hcrc=True)
    hcrc_at = 10 + len(b"dump.sql") + 1
    bad = bytearray(good)
    bad[hcrc_at] ^= 0x01
    (tmp_path / "bad.gz").write_bytes(bad)
    assert not gzip_accepts(tmp_path / "bad.gz")
    assert decompress(good) == plain
    with pytest.raises(IntegrityError, match="FHCRC"):
        decompress(bytes(bad))


def test_gzip_header_field_beyond_the_bound_fails_clearly(tmp_path: Path) -> None:
    """gzip sets no limit; Sealcheck stops at 64 MiB per field (a flipped FLG
    bit must not make the whole stream a "file name") and says why."""
    bound = compression.MAX_GZIP_HEADER_FIELD
    assert bound == 64 << 20
    plain = b"INSERT INTO t VALUES (1);\n"
    assert decompress(gzip_member(plain, name=b"n" * bound)) == plain  # at the bound: fine
    with pytest.raises(IntegrityError) as exc:
        decompress(gzip_member(plain, comment=b"c" * (bound + 1)))
    msg = str(exc.value)
    assert "FCOMMENT" in msg and "64 MiB" in msg, msg


@pytest.mark.parametrize("cut", [5, 10, 5000, 10_011])
def test_gzip_cut_inside_long_header_is_truncation(cut: int) -> None:
    blob = gzip_member(b"x" * 1000, name=b"n" * 10_000)
    with pytest.raises(TruncatedBackup):
        decompress(blob[:cut])


# --- 2. openssl enc -a with CRLF line ends ------------------------------------------


@pytest.mark.parametrize("form", ["lf", "crlf", "one-line"])
def test_openssl_base64_verifies(tmp_path: Path, dump: Path, form: str) -> None:
    """``openssl enc -a`` output (64-column lines), the same with CRLF line ends
    (unix2dos-style, as a Windows copy or an FTP text transfer leaves it) and the
    ``-A`` single-line form all verify. Before, every base64 object failed with a
    padding error: reading the 16-byte header discarded the ciphertext decoded
    with it."""
    data, pf = seal(tmp_path / "s3", "b.sql.gz.b64", f"gzip -c {q(dump)}", armor=True)
    if form == "crlf":
        sh(f"sed -i 's/$/\\r/' {q(data)}", tmp_path)
        assert b"\r\n" in data.read_bytes() and b"\n\n" not in data.read_bytes()
        # openssl itself still decodes it.
        out = subprocess.run(
            f"openssl enc -d -a {ENC} -pass file:{q(pf)} -in {q(data)} | zcat",
            shell=True,
            capture_output=True,
            check=True,
        ).stdout
        assert out == dump.read_bytes()
    if form == "one-line":
        sh(f"tr -d '\\n' < {q(data)} > one && mv one {q(data)}", tmp_path / "s3")
        assert b"\n" not in data.read_bytes()
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert rep["formats"] == ["openssl-enc-base64", "gzip", "mysql-sql"]
    assert restored(data, pf, tmp_path / "out.sql") == dump.read_bytes()


def test_openssl_base64_crlf_cut_short_fails(tmp_path: Path, dump: Path) -> None:
    data, pf = seal(tmp_path / "s3", "b.sql.gz.b64", f"gzip -c {q(dump)}", armor=True)
    sh(f"sed -i 's/$/\\r/' {q(data)}", tmp_path)
    lines = data.read_bytes().split(b"\r\n")
    data.write_bytes(b"\r\n".join(lines[: len(lines) // 2]) + b"\r\n")
    rc, rep = verify(data, pf)
    assert rc == 1
    assert_failed(rep, obj=data, kind={"TruncatedBackup", "IntegrityError"})


# --- 3. xz stream padding -----------------------------------------------------------


@pytest.fixture(scope="module")
def xz_pair(tmp_path_factory: pytest.TempPathFactory, dump: Path) -> tuple[Path, Path, bytes]:
    d = tmp_path_factory.mktemp("xz")
    plain = dump.read_bytes()
    half = len(plain) // 2
    (d / "a").write_bytes(plain[:half])
    (d / "b").write_bytes(plain[half:])
    sh("xz -c a > a.xz && xz -c b > b.xz", d)
    return d / "a.xz", d / "b.xz", plain


def xz_joined(folder: Path, a: Path, b: Path | None, padding: str) -> Path:
    """``cat a.xz <padding> [b.xz]`` where padding is a shell command."""
    out = folder / "joined.xz"
    sh(f"{{ cat {q(a)}; {padding}; {'cat ' + q(b) if b else ':'}; }} > {q(out)}", folder)
    return out


def xz_accepts(path: Path) -> bool:
    return subprocess.run(["xz", "-t", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("zeros", [4, 8, 4096])
def test_xz_stream_padding_between_streams_verifies(
    tmp_path: Path, xz_pair: tuple[Path, Path, bytes], zeros: int
) -> None:
    a, b, plain = xz_pair
    joined = xz_joined(tmp_path, a, b, f"head -c {zeros} /dev/zero")
    assert xz_accepts(joined)
    data, pf = seal(tmp_path / "s3", "padded.sql.xz.enc", f"cat {q(joined)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    dec = layer(rep, "decompress")
    assert dec["status"] == "ok" and dec["details"]["members"] == 2
    assert restored(data, pf, tmp_path / "out.sql") == plain


@pytest.mark.parametrize(
    ("padding", "second"),
    [
        ("head -c 1 /dev/zero", True),
        ("head -c 3 /dev/zero", True),
        ("head -c 5 /dev/zero", True),
        ("head -c 4 /dev/zero; printf abcd", True),
        ("printf '\\0\\0\\0\\1'", True),
        ("head -c 3 /dev/zero", False),
        ("head -c 6 /dev/zero", False),
        ("head -c 8 /dev/zero; printf x", False),
    ],
    ids=["1", "3", "5", "4+garbage", "nonzero", "end-3", "end-6", "end-8+x"],
)
def test_xz_bad_padding_or_garbage_fails(
    tmp_path: Path, xz_pair: tuple[Path, Path, bytes], padding: str, second: bool
) -> None:
    a, b, _ = xz_pair
    joined = xz_joined(tmp_path, a, b if second else None, padding)
    assert not xz_accepts(joined)
    with pytest.raises(IntegrityError):
        decompress(joined.read_bytes())


def test_xz_padding_after_the_last_stream(
    tmp_path: Path, xz_pair: tuple[Path, Path, bytes]
) -> None:
    a, b, plain = xz_pair
    joined = xz_joined(tmp_path, a, b, "head -c 8 /dev/zero")
    sh(f"head -c 12 /dev/zero >> {q(joined)}", tmp_path)
    assert xz_accepts(joined)
    assert decompress(joined.read_bytes(), trickle=4093) == plain


def test_xz_bad_padding_through_cli(tmp_path: Path, xz_pair: tuple[Path, Path, bytes]) -> None:
    a, b, _ = xz_pair
    joined = xz_joined(tmp_path, a, b, "head -c 3 /dev/zero")
    data, pf = seal(tmp_path / "s3", "bad.sql.xz.enc", f"cat {q(joined)}")
    rc, rep = verify(data, pf)
    assert rc == 1
    err = assert_failed(rep, obj=data, layer="decompress", kind="IntegrityError")
    assert "multiple of 4" in err["message"], err


# --- 4. dumps appended one after another --------------------------------------------

PG_HEAD = (
    "--\n-- PostgreSQL database dump\n--\n\n\\restrict Zx81ab\n\n"
    "-- Dumped from database version 15.18\n-- Dumped by pg_dump version 15.18\n\n"
    "CREATE TABLE public.t (id integer, v text);\nCOPY public.t (id, v) FROM stdin;\n"
)
PG_TAIL = "\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict Zx81ab\n\n"


def pg_like(path: Path, rows: int = 3000) -> Path:
    """Text shaped as pg_dump's plain format (header, COPY rows, trailer)."""
    path.write_text(PG_HEAD + "".join(f"{i}\trow {i} ~ text\n" for i in range(rows)) + PG_TAIL)
    return path


@pytest.fixture(params=["mysql", "pg"])
def one_dump(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    if request.param == "mysql":
        return "mysql", mysql_like(tmp_path / "dump.sql", rows=3000)
    return "pg", pg_like(tmp_path / "dump.sql")


TRAILER = {"mysql": "'-- Dump completed'", "pg": "'-- PostgreSQL database dump complete'"}
# Offsets in the messages name a dump's header line; pg_dump writes "--" before it.
HEADER_LINE = {"mysql": 0, "pg": 3}


def cut_mid_line(text: bytes, near: int) -> int:
    """An offset near ``near`` that is inside a data line, not at a line end."""
    while text[near - 1 : near] == b"\n" or text[near : near + 1] == b"\n":
        near += 1
    return near


def test_dump_cut_short_then_complete_dump_is_incomplete(
    tmp_path: Path, one_dump: tuple[str, Path]
) -> None:
    """The same cron job run twice into one file (``>>``): the first run died
    mid-INSERT, the second finished. The last trailer is there, but the first
    dump is not whole; before, this verified OK."""
    kind, dump = one_dump
    cut = cut_mid_line(dump.read_bytes(), 5000)
    data, pf = seal(
        tmp_path / "s3", "twice.sql.gz.enc", f"head -c {cut} {q(dump)} | gzip -c; gzip -c {q(dump)}"
    )
    rep, msg = incomplete(data, pf)
    assert "dump 1 of 2" in msg and TRAILER[kind] in msg, msg
    assert f"follows at offset {cut + HEADER_LINE[kind]}" in msg, msg
    # The envelope itself was whole: two gzip members, both checked.
    assert layer(rep, "decompress")["details"]["members"] == 2


def test_dump_cut_inside_one_compressed_stream(tmp_path: Path, one_dump: tuple[str, Path]) -> None:
    """``head -c`` and the complete dump concatenated before one gzip."""
    kind, dump = one_dump
    cut = cut_mid_line(dump.read_bytes(), 20_000)
    data, pf = seal(
        tmp_path / "s3", "cat.sql.gz.enc", f"{{ head -c {cut} {q(dump)}; cat {q(dump)}; }} | gzip"
    )
    _, msg = incomplete(data, pf)
    assert f"follows at offset {cut + HEADER_LINE[kind]}" in msg, msg


def test_complete_dump_then_cut_dump_is_incomplete(
    tmp_path: Path, one_dump: tuple[str, Path]
) -> None:
    """The second run died: named as the last dump, not as data appended after a
    complete one."""
    kind, dump = one_dump
    size = dump.stat().st_size
    data, pf = seal(
        tmp_path / "s3", "second-cut.sql.gz.enc", f"cat {q(dump)}; head -c 7000 {q(dump)}"
    )
    _, msg = incomplete(data, pf)
    assert "the last of 2 dumps" in msg and TRAILER[kind] in msg, msg
    assert f"header at offset {size + HEADER_LINE[kind]}" in msg, msg


def test_two_complete_dumps_verify(tmp_path: Path, one_dump: tuple[str, Path]) -> None:
    """Both runs finished: each dump is whole, so restoring the stream loads
    the second over the first. Accepted, and the report says there were two."""
    _, dump = one_dump
    data, pf = seal(tmp_path / "s3", "both.sql.gz.enc", f"gzip -c {q(dump)}; gzip -c {q(dump)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert layer(rep, "payload")["details"]["completeness"] == "complete"
    assert "2 dumps one after another, each complete" in layer(rep, "payload")["proved"]


def test_three_dumps_middle_one_cut(tmp_path: Path, one_dump: tuple[str, Path]) -> None:
    kind, dump = one_dump
    text = dump.read_bytes()
    cut = cut_mid_line(text, 9000)
    data, pf = seal(
        tmp_path / "s3",
        "three.sql.gz.enc",
        f"{{ cat {q(dump)}; head -c {cut} {q(dump)}; cat {q(dump)}; }} | gzip",
    )
    _, msg = incomplete(data, pf)
    shift = HEADER_LINE[kind]
    assert "dump 2 of 3" in msg, msg
    assert f"header at offset {len(text) + shift}" in msg, msg  # dump 2
    assert f"follows at offset {len(text) + cut + shift}" in msg, msg  # dump 3


def test_header_text_quoted_in_data_is_not_a_new_dump(tmp_path: Path) -> None:
    """mysqldump escapes newlines inside values, so a dump header quoted in a
    row is one line and is not taken for a second dump."""
    dump = mysql_like(tmp_path / "dump.sql", rows=500)
    text = dump.read_text()
    quoted = (
        "INSERT INTO `notes` VALUES (1,'-- MySQL dump 10.13  Distrib 8.0.36, for Linux "
        "(x86_64)\\n--\\n-- Host: localhost    Database: shop\\n');\n"
        "INSERT INTO `notes` VALUES (2,'-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB');\n"
    )
    at = text.index("INSERT INTO")
    dump.write_text(text[:at] + quoted + text[at:])
    data, pf = seal(tmp_path / "s3", "quoted.sql.gz.enc", f"gzip -c {q(dump)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert "dumps one after another" not in layer(rep, "payload")["proved"]


@pytest.mark.parametrize("fixture", ["mariadb_rich_dump", "pg_rich_dump"])
def test_real_dumps_appended(request: pytest.FixtureRequest, tmp_path: Path, fixture: str) -> None:
    """The same rules on dumps made by the real mariadb-dump and pg_dump
    (fixtures.databases): cut + complete fails, complete + complete verifies."""
    dump: Path = request.getfixturevalue(fixture).path
    cut = cut_mid_line(dump.read_bytes(), dump.stat().st_size // 2)
    data, pf = seal(
        tmp_path / "s3", "cut.sql.gz.enc", f"head -c {cut} {q(dump)} | gzip; gzip -c {q(dump)}"
    )
    _, msg = incomplete(data, pf)
    assert "dump 1 of 2" in msg, msg
    data, pf = seal(tmp_path / "s3", "both.sql.gz.enc", f"gzip -c {q(dump)}; gzip -c {q(dump)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert "2 dumps one after another" in layer(rep, "payload")["proved"]
    data, pf = seal(tmp_path / "s3", "one.sql.gz.enc", f"gzip -c {q(dump)}")
    rc, rep = verify(data, pf)
    assert rc == 0, rep["error"]
    assert "dumps one after another" not in layer(rep, "payload")["proved"]
