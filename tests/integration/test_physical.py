"""Physical backups made by Debian's mariabackup (issue 16), read layer by layer.

One throwaway MariaDB loaded with the sakila dump; ``mariabackup --stream=xbstream``
plain and ``--compress`` (real qpress members). From them: ClusterControl's
physical pipeline (xbstream → gzip -6 → openssl enc), ApsaraDB's layouts (``_qp.xb``
with xbcrypt members, ``NAME.xbcrypt.qp``, ``_xb.qp``, ``.xb.gz``), and a damaged
variant of every layer.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.physical import (
    APSARA_KEY,
    RealPhysical,
    flip_bit,
    gzip_openssl,
    mbstream_extract,
    qpress_stored,
    tree,
)
from fixtures.xbcrypt import (
    PERCONA_TEST_KEY,
    encrypt,
    encrypt_members,
    write_xbstream,
    write_xbstream_sparse,
    xbstream_files,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def real(real_physical: RealPhysical) -> RealPhysical:
    return real_physical


@pytest.fixture
def keys(physical_keys: dict[str, Path]) -> dict[str, Path]:
    return physical_keys


def verify(path: Path, *args: str) -> tuple[int, dict]:
    r = run_cli("verify", str(path), "--json", "--no-history", *args)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr}


def layer(rep: dict, name: str) -> dict:
    return next(x for x in rep["layers"] if x["layer"] == name)


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


# --- every layout verifies ------------------------------------------------------------


def test_clustercontrol_physical_verifies_to_the_pages(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    bk = gzip_openssl(real.plain, tmp_path / "backup-full.xbstream.gz.aes256", keys["openssl"])
    rc, rep = verify(bk, "--passphrase-file", str(keys["openssl"]))
    assert rc == 0, rep
    assert rep["formats"][:3] == ["openssl-enc", "gzip", "xbstream"]
    assert layer(rep, "payload")["status"] == "ok"
    backup = layer(rep, "backup")
    assert backup["status"] == "ok" and "every table definition's data files" in backup["proved"]
    assert backup["details"]["tables"]["sakila_dojo/film"] == "InnoDB"
    pages = layer(rep, "pages")
    assert pages["status"] == "ok" and pages["details"]["tablespaces"] >= 17


def test_apsaradb_qp_xb_with_xbcrypt_members_and_kms_plaintext(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    """``*_qp.xb``: xbstream of NAME.qp.xbcrypt members (real qpress from mariabackup)."""
    enc = encrypt_members(real.compressed.read_bytes(), APSARA_KEY, version=3, chunk=64 * 1024)
    bk = write(tmp_path, "test1_qp.xb", enc)
    rc, rep = verify(bk, "--kms-plaintext-file", str(keys["apsara"]))
    assert rc == 0, rep
    mc = layer(rep, "member-cipher")
    assert mc["status"] == "ok" and mc["details"]["key_proved"] is True
    assert layer(rep, "key")["status"] == "ok"
    md = layer(rep, "member-decompress")
    assert md["details"]["decoder"] == "c" and "decoded in C" in md["proved"]
    assert md["status"] == "ok" and md["details"]["blocks"] > 100
    assert layer(rep, "backup")["details"]["member_layers"]["xbcrypt > qpress"] >= 200
    assert layer(rep, "pages")["status"] == "ok"


@pytest.mark.parametrize("version", [1, 2])
def test_v1_v2_members_say_the_key_is_proved_only_below(
    version: int, real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    enc = encrypt_members(
        real.compressed.read_bytes(), PERCONA_TEST_KEY, version=version, chunk=1024
    )
    rc, rep = verify(write(tmp_path, "b.xbstream", enc), "--xbcrypt-key-file", str(keys["percona"]))
    assert rc == 0, rep
    mc = layer(rep, "member-cipher")
    assert mc["status"] == "warning" and "no check of the key" in mc["proved"]
    # What does prove it: every qpress block and every page.
    assert layer(rep, "member-decompress")["status"] == "ok"
    assert layer(rep, "pages")["status"] == "ok"


def test_xbcrypt_qp_order_xb_gz_and_xb_qp(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    files = xbstream_files(real.plain.read_bytes())
    # NAME.xbcrypt.qp: qpress around the encrypted member (the seed's reading).
    swapped = {
        f"{p}.xbcrypt.qp": qpress_stored(
            {f"{p.rsplit('/', 1)[-1]}.xbcrypt": encrypt(d, PERCONA_TEST_KEY)}
        )
        for p, d in files.items()
    }
    stream = write_xbstream(swapped)
    rc, rep = verify(
        write(tmp_path, "a.xbstream", stream), "--xbcrypt-key-file", str(keys["percona"])
    )
    assert rc == 0, rep
    assert layer(rep, "backup")["details"]["member_layers"] == {"qpress > xbcrypt": len(files)}
    # *.xb.gz: gzip around it.
    rc, rep = verify(
        write(tmp_path, "t.xb.gz", gzip.compress(stream, 1)),
        "--xbcrypt-key-file",
        str(keys["percona"]),
    )
    assert rc == 0 and rep["formats"][0] == "gzip", rep
    # *_xb.qp: qpress around the whole (real, compressed-member) stream.
    whole = qpress_stored({"test1.xb": real.compressed.read_bytes()})
    rc, rep = verify(write(tmp_path, "test1_xb.qp", whole))
    assert rc == 0, rep
    assert rep["formats"][0] == "qpress" and layer(rep, "decompress")["status"] == "ok"


def test_restore_extract_matches_mbstream(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    enc = encrypt_members(real.compressed.read_bytes(), PERCONA_TEST_KEY, version=3)
    bk = write(tmp_path, "b.xbstream", enc)
    out = tmp_path / "restored"
    cmd = ("restore", str(bk), "-o", str(out), "--extract", "--no-history")
    key = ("--xbcrypt-key-file", str(keys["percona"]))
    r = run_cli(*cmd, *key)
    assert r.returncode == 0, r.stdout + r.stderr
    # The same server, backed up plain: the same files, and the database's own the same
    # bytes (the server was idle; its logs and the backup's info differ between runs).
    ref = tmp_path / "ref"
    mbstream_extract(real.plain, ref)
    got, want = tree(out), tree(ref)
    assert set(got) == set(want)
    db = [k for k in want if k.startswith("sakila_dojo/")]
    assert len(db) > 30 and all(got[k] == want[k] for k in db)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.")]
    # An existing folder is never written into.
    r = run_cli(*cmd, *key)
    assert r.returncode == 2 and "already exists" in r.stdout + r.stderr


def _zero_pages(data: bytes, page: int = 16384) -> int:
    return sum(1 for i in range(0, len(data), page) if not data[i : i + page].strip(b"\0"))


def test_restore_extract_writes_sparse_chunks_as_holes(real: RealPhysical, tmp_path: Path) -> None:
    """XtraBackup 8.0 streams a punch-holed tablespace as sparse (``S``) chunks;
    Debian's mariabackup and mbstream 10.11 neither write nor read them, so the real
    backup's own files are streamed again by the test encoder with every all-zero page
    a hole. Extracted: the same bytes as ``mbstream -x`` of the real stream, and the
    holes are holes (fewer blocks allocated than the size needs; mbstream's are dense)."""
    files = xbstream_files(real.plain.read_bytes())
    stream = write_xbstream_sparse(files)
    assert stream.count(b"XBSTCK01\0S") >= 10
    bk = write(tmp_path, "sparse.xbstream", stream)
    out = tmp_path / "restored"
    r = run_cli("restore", str(bk), "-o", str(out), "--extract", "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr
    ref = tmp_path / "ref"
    mbstream_extract(real.plain, ref)
    assert tree(out) == tree(ref)
    holed = {n: z for n, d in files.items() if (z := _zero_pages(d)) >= 100}
    assert {"ibdata1", "sakila_dojo/payment.ibd", "sakila_dojo/rental.ibd"} <= set(holed)
    for name, zero_pages in holed.items():
        got, want = (out / name).stat(), (ref / name).stat()
        assert got.st_size == want.st_size
        # Every zero page is a hole: what is allocated is at most the data pages, plus the
        # file system's own blocks for a file of many extents (ext4 counts its extent-tree
        # blocks in st_blocks; one 4 KiB block holds ~340 extents): seen 4 KiB over once.
        metadata = 4096 * (2 + zero_pages // 300)
        assert got.st_blocks * 512 <= got.st_size - zero_pages * 16384 + metadata, name
        assert want.st_blocks * 512 >= want.st_size, name  # mbstream wrote the zeros
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.")]


# --- every layer caught when damaged ---------------------------------------------------


def _expect_fail(path: Path, layer_name: str, words: str, *args: str, rc: int = 1) -> dict:
    """``layer_name``: the layer that must catch it ("a|b": whichever streams first)."""
    code, rep = verify(path, *args)
    assert code == rc, rep
    failed = [x for x in rep["layers"] if x["status"] in ("failed", "not checked")]
    assert failed and failed[0]["layer"] in layer_name.split("|"), rep["layers"]
    assert words in rep["error"]["message"], rep["error"]
    return rep


def test_damaged_layers(real: RealPhysical, keys: dict[str, Path], tmp_path: Path) -> None:
    plain = real.plain.read_bytes()
    k = ("--xbcrypt-key-file", str(keys["percona"]))
    enc = encrypt_members(real.compressed.read_bytes(), PERCONA_TEST_KEY, version=3)
    # openssl enc + gzip (ClusterControl): a bit in the ciphertext, caught below it.
    cc = gzip_openssl(real.plain, tmp_path / "cc.aes256", keys["openssl"])
    raw = cc.read_bytes()
    bad = write(tmp_path, "cc-bad.aes256", flip_bit(raw, len(raw) // 2))
    code, rep = verify(bad, "--passphrase-file", str(keys["openssl"]))
    assert code == 1 and rep["error"]["layer"] in ("decompress", "payload"), rep["error"]
    # gzip around the stream: its CRC at the end, or the xbstream chunk CRC first.
    gz = gzip.compress(plain, 6)
    _expect_fail(write(tmp_path, "g.xb.gz", flip_bit(gz, len(gz) // 3)), "decompress|payload", "")
    # A chunk of the xbstream.
    _expect_fail(
        write(tmp_path, "x.xbstream", flip_bit(plain, len(plain) // 2)), "payload", "CRC-32"
    )
    # An xbcrypt chunk of a member (its CRC).
    files = xbstream_files(enc)
    name = next(n for n in files if n.endswith("film.ibd.qp.xbcrypt"))
    files[name] = flip_bit(files[name], len(files[name]) - 50)
    _expect_fail(
        write(tmp_path, "m.xbstream", write_xbstream(files)), "member-cipher", "CRC-32", *k
    )
    # A qpress block of a member (its Adler-32), re-encrypted so only qpress can see it.
    cfiles = xbstream_files(real.compressed.read_bytes())
    qn = "sakila_dojo/film.ibd.qp"
    cfiles[qn] = flip_bit(cfiles[qn], 200)
    qbad = encrypt_members(write_xbstream(cfiles), PERCONA_TEST_KEY, version=3)
    _expect_fail(write(tmp_path, "q.xbstream", qbad), "member-decompress", "Adler-32", *k)
    # An InnoDB page (the stream's own CRCs recomputed: only the page checksum sees it).
    pfiles = xbstream_files(plain)
    pfiles["sakila_dojo/film.ibd"] = flip_bit(pfiles["sakila_dojo/film.ibd"], 3 * 16384 + 300)
    _expect_fail(write(tmp_path, "p.xbstream", write_xbstream(pfiles)), "pages", "film.ibd")
    # Truncated.
    _expect_fail(write(tmp_path, "t.xbstream", plain[: len(plain) * 2 // 3]), "payload", "ends")
    # A missing tablespace.
    mfiles = xbstream_files(plain)
    del mfiles["sakila_dojo/film.ibd"]
    _expect_fail(write(tmp_path, "n.xbstream", write_xbstream(mfiles)), "backup", "film.ibd")
    # No checkpoints file: the copy never finished.
    del mfiles["xtrabackup_checkpoints"]
    _expect_fail(
        write(tmp_path, "c.xbstream", write_xbstream(mfiles)), "payload", "xtrabackup_checkpoints"
    )


def test_wrong_key_and_key_file_with_newline(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    bk = write(
        tmp_path, "b.xbstream", encrypt_members(real.compressed.read_bytes(), PERCONA_TEST_KEY)
    )
    _expect_fail(bk, "key", "SHA-256", "--xbcrypt-key-file", str(keys["wrong"]))
    r = run_cli("verify", str(bk), "--no-history", "--xbcrypt-key-file", str(keys["newline"]))
    assert r.returncode == 2
    assert "ends with a newline" in r.stderr + r.stdout and "corrupt" not in r.stderr + r.stdout
    r = run_cli("verify", str(bk), "--no-history")
    assert r.returncode == 2 and "--xbcrypt-key-file" in r.stdout + r.stderr


def test_extract_leaves_nothing_on_failure(
    real: RealPhysical, keys: dict[str, Path], tmp_path: Path
) -> None:
    plain = real.plain.read_bytes()
    bad = write(tmp_path, "t.xbstream", plain[: len(plain) * 2 // 3])
    out = tmp_path / "restored"
    r = run_cli("restore", str(bad), "-o", str(out), "--extract", "--no-history")
    assert r.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.xbstream"]


def test_mbstream_agrees_with_our_hostile_path_refusal(tmp_path: Path) -> None:
    from fixtures.xbcrypt import xbstream_chunk

    stream = xbstream_chunk("../escape", b"x") + xbstream_chunk("../escape", None)
    bk = write(tmp_path, "h.xbstream", stream)
    code, rep = verify(bk)
    assert code == 1 and "'../escape'" in rep["error"]["message"]
    inside = tmp_path / "inside"
    inside.mkdir()
    subprocess.run(
        ["mbstream", "-x", "-C", str(inside)], input=stream, capture_output=True, check=False
    )
    assert not (tmp_path / "escape").exists()


def test_max_disk_bounds_the_system_tablespace_check(real: RealPhysical) -> None:
    """Only the system tablespace touches disk while verifying; past --max-disk it is
    left unchecked, said so, and everything else is still proved."""
    code, rep = verify(real.plain, "--max-disk", "1000000")
    assert code == 0, rep
    pages = layer(rep, "pages")
    assert pages["status"] == "warning" and "NOT checked: ibdata1" in pages["proved"]
    assert any("--max-disk" in w for w in rep["warnings"])
    assert layer(rep, "backup")["status"] == "ok"


def test_real_qpress_blocks_decode_the_same_in_c_and_python(real: RealPhysical) -> None:
    """mariabackup's own QuickLZ level-1 blocks: the C accelerator and the
    pure-Python decoder give the same bytes for every block of every member."""
    from sealcheck.core.decompress.qpress import QpressDecoder
    from sealcheck.core.decompress.quicklz import DECODERS, block_sizes, decompress_block

    if "c" not in DECODERS:
        pytest.skip("the C accelerator was not built")
    members = {
        p: d for p, d in xbstream_files(real.compressed.read_bytes()).items()
        if d.startswith(b"qpress10")
    }  # fmt: skip
    blocks = 0
    for path, arch in members.items():
        pos = arch.find(b"NEWBNEWB")
        while pos >= 0:
            _hdr, size, _dsize = block_sizes(arch[pos + 20 : pos + 29])
            block = arch[pos + 20 : pos + 20 + size]
            if block[0] & 1:
                assert decompress_block(block, decoder="c") == decompress_block(
                    block, decoder="python"
                ), path
                blocks += 1
            pos = arch.find(b"NEWBNEWB", pos + 20 + size)
        QpressDecoder(name=path).feed(arch)  # the archive's own checks, on the C road
    assert blocks >= 100
