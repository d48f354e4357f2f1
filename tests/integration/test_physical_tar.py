"""ApsaraDB's fourth layout (issue 16): ``*.tar.gz``, a gzip'd tar of the backup's
folder whose every file ends in ``.xbcrypt`` (``tar -izxvf test1.tar.gz -C DIR``).

Real producers: Debian's mariabackup backs up a throwaway MariaDB loaded with sakila
(plain, and ``--compress`` for real qpress members); ``mbstream -x`` gives the backup's
folder; the test's own xbcrypt encoder (tests/fixtures/xbcrypt.py) encrypts each file
as XtraBackup names it (``NAME.xbcrypt``, ``NAME.qp.xbcrypt``); GNU tar packs the
folder (``tar czf``, ``--format=gnu``, ``--format=pax``). Sealcheck reads it down the
same road as an xbstream: each member's layers, completeness, every tablespace's pages.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_physical import _expect_fail, layer, verify, write

from fixtures.common import run_cli
from fixtures.physical import (
    APSARA_KEY,
    RealPhysical,
    encrypted_folder,
    flip_bit,
    gnu_tar,
    mbstream_extract,
    tree,
)
from fixtures.xbcrypt import PERCONA_TEST_KEY, encrypt

pytestmark = pytest.mark.timeout(900)
LONG = "sakila_dojo/" + "notes_on_a_table_whose_name_is_far_longer_than_a_tar_header_" * 2


@pytest.fixture(scope="module")
def folders(real_physical: RealPhysical, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The backup's folders: plain (mbstream -x), and encrypted from it (ApsaraDB's key);
    the --compress backup's folder of NAME.qp files, encrypted (the Percona test key)."""
    d = tmp_path_factory.mktemp("folders")
    mbstream_extract(real_physical.plain, d / "plain")
    mbstream_extract(real_physical.compressed, d / "qp")
    return {
        "plain": d / "plain",
        "enc": encrypted_folder(d / "plain", d / "enc", APSARA_KEY),
        "qp-enc": encrypted_folder(d / "qp", d / "qp-enc", PERCONA_TEST_KEY, chunk=8192),
    }


def test_apsaradb_tar_gz_verifies_to_the_pages_and_extracts_as_tar_does(
    folders: dict, physical_keys: dict[str, Path], tmp_path: Path
) -> None:
    bk = gnu_tar(folders["enc"], tmp_path / "test1.tar.gz", "-z")
    kms = ("--kms-plaintext-file", str(physical_keys["apsara"]))
    rc, rep = verify(bk, *kms)
    assert rc == 0, rep
    assert rep["formats"][0] == "gzip" and rep["formats"][-1] == "tar", rep["formats"]
    payload = layer(rep, "payload")
    assert payload["details"]["kind"] == "xtrabackup-tar"
    assert "headers, each checksummed" in payload["proved"]
    assert "end blocks reached" in payload["proved"]
    mc = layer(rep, "member-cipher")
    assert mc["status"] == "ok" and mc["details"]["key_proved"] is True
    backup = layer(rep, "backup")
    assert backup["status"] == "ok" and backup["details"]["tables"]["sakila_dojo/film"] == "InnoDB"
    assert backup["details"]["member_layers"] == {"xbcrypt": len(tree(folders["plain"]))}
    pages = layer(rep, "pages")
    assert pages["status"] == "ok" and pages["details"]["tablespaces"] >= 17
    # restore --extract: what the seed's recipe gives (tar -izxf, then every file
    # decrypted: the folder that was encrypted), written atomically.
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["tar", "-izxf", str(bk), "-C", str(ref)], check=True)
    assert tree(ref) == tree(folders["enc"])
    out = tmp_path / "restored"
    r = run_cli("restore", str(bk), "-o", str(out), "--extract", "--no-history", *kms)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tree(out) == tree(folders["plain"])
    dirs = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_dir()}
    assert dirs == {str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_dir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.")]


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_compressed_members_in_gnu_and_pax_tars_with_a_long_name(
    fmt: str, folders: dict, physical_keys: dict[str, Path], tmp_path: Path
) -> None:
    """``NAME.qp.xbcrypt`` members (real qpress from mariabackup --compress), and one
    member whose name no tar header holds (a GNU long name, or a pax ``path``)."""
    src = folders["qp-enc"]
    extra = src / f"{LONG}.xbcrypt"
    extra.write_bytes(encrypt(b"a long-named file\n", PERCONA_TEST_KEY))
    try:
        bk = gnu_tar(src, tmp_path / f"b-{fmt}.tar", f"--format={fmt}")
    finally:
        extra.unlink()
    assert len(f"./{LONG}.xbcrypt") > 100
    key = ("--xbcrypt-key-file", str(physical_keys["percona"]))
    rc, rep = verify(bk, *key)
    assert rc == 0, rep
    assert layer(rep, "member-decompress")["status"] == "ok"
    stacks = layer(rep, "backup")["details"]["member_layers"]
    assert stacks["xbcrypt > qpress"] >= 200 and stacks.get("xbcrypt", 0) >= 1
    assert layer(rep, "pages")["status"] == "ok"
    out = tmp_path / "restored"
    r = run_cli("restore", str(bk), "-o", str(out), "--extract", "--no-history", *key)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / LONG).read_bytes() == b"a long-named file\n"
    # The same server, backed up plain: the database's own files, the same bytes.
    got, want = tree(out), tree(folders["plain"])
    db = [k for k in want if k.startswith("sakila_dojo/")]
    assert len(db) > 30 and all(got[k] == want[k] for k in db)


def _header(tar: bytes, name: str) -> int:
    return tar.index(f"./{name}\0".encode())


def test_damaged_tar_backups_fail_at_their_layer(
    folders: dict, physical_keys: dict[str, Path], tmp_path: Path
) -> None:
    kms = ("--kms-plaintext-file", str(physical_keys["apsara"]))
    raw = gnu_tar(folders["enc"], tmp_path / "b.tar").read_bytes()
    film = "sakila_dojo/film.ibd.xbcrypt"
    at = _header(raw, film)
    # A bit of a header (its size field): the header checksum.
    bad = write(tmp_path, "h.tar", flip_bit(raw, at + 130))
    rep = _expect_fail(bad, "payload", "checksum does not match", *kms)
    assert film in rep["error"]["message"]
    # A bit of a member: its xbcrypt chunk's CRC-32.
    _expect_fail(write(tmp_path, "m.tar", flip_bit(raw, at + 512 + 70_000)), "member-cipher",
                 "CRC-32", *kms)  # fmt: skip
    # Cut short: the member it stops in is named; gzip'd, gzip or tar says so.
    rep = _expect_fail(write(tmp_path, "t.tar", raw[: len(raw) * 2 // 3]), "payload", "ends", *kms)
    assert "the tar member ./" in rep["error"]["message"]
    gz = gnu_tar(folders["enc"], tmp_path / "b.tar.gz", "-z").read_bytes()
    _expect_fail(write(tmp_path, "t.tar.gz", gz[: len(gz) // 2]), "decompress|payload", "", *kms)


def test_hostile_members_and_a_missing_tablespace(
    folders: dict, physical_keys: dict[str, Path], tmp_path: Path
) -> None:
    kms = ("--kms-plaintext-file", str(physical_keys["apsara"]))
    src = tmp_path / "outer" / "backup"
    src.mkdir(parents=True)
    subprocess.run(["cp", "-a", f"{folders['enc']}/.", str(src)], check=True)
    # A member outside the folder (GNU tar keeps ../ only with -P), and a symbolic link:
    # refused by name, nothing written.
    (tmp_path / "outer" / "escape").write_bytes(b"x")
    up = tmp_path / "up.tar"
    subprocess.run(["tar", "-cPf", str(up), "-C", str(src), ".", "../escape"], check=True)
    _expect_fail(up, "payload", "'../escape'", *kms)
    evil = src / "sakila_dojo" / "evil.ibd.xbcrypt"
    evil.symlink_to("/etc/passwd")
    sym = gnu_tar(src, tmp_path / "sym.tar.gz", "-z")
    _expect_fail(sym, "payload", "symbolic link (to '/etc/passwd')", *kms)
    out = tmp_path / "restored"
    r = run_cli("restore", str(sym), "-o", str(out), "--extract", "--no-history", *kms)
    assert r.returncode == 1 and "evil.ibd.xbcrypt" in r.stdout + r.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".restored." in p.name]
    evil.unlink()
    # A tablespace missing: the backup's completeness names it.
    (src / "sakila_dojo" / "film.ibd.xbcrypt").unlink()
    _expect_fail(gnu_tar(src, tmp_path / "n.tar.gz", "-z"), "backup", "film.ibd", *kms)


@pytest.mark.parametrize("how", ["backupdir/", "-C parent ."])
def test_one_top_folder_is_the_backups_root(
    how: str, folders: dict, physical_keys: dict[str, Path], tmp_path: Path
) -> None:
    """``tar czf b.tgz backupdir/`` (every name under ``backupdir/``) and ``tar czf
    b.tgz -C parent .`` of a parent holding only the folder (``./backupdir/…``): the
    folder is the backup's root, for completeness, the pages and the names, and
    restore --extract writes its content (DIR is the backup's root, as after
    mbstream -x)."""
    parent = tmp_path / "parent"
    parent.mkdir()
    subprocess.run(["cp", "-al", str(folders["enc"]), str(parent / "backupdir")], check=True)
    bk = tmp_path / "b.tgz"
    members = ["backupdir/"] if how == "backupdir/" else ["."]
    subprocess.run(["tar", "czf", str(bk), "-C", str(parent), *members], check=True)
    listed = subprocess.run(["tar", "tzf", str(bk)], capture_output=True, text=True, check=True)
    prefix = "backupdir/" if how == "backupdir/" else "./backupdir/"
    assert all(n.startswith(prefix) or n in ("./", prefix.rstrip("/") + "/") for n in
               listed.stdout.split())  # fmt: skip
    kms = ("--kms-plaintext-file", str(physical_keys["apsara"]))
    rc, rep = verify(bk, *kms)
    assert rc == 0, rep
    payload = layer(rep, "payload")
    assert payload["details"]["kind"] == "xtrabackup-tar"
    assert "one top folder 'backupdir/', which is the backup's root" in payload["proved"]
    backup = layer(rep, "backup")
    assert backup["status"] == "ok" and backup["details"]["tables"]["sakila_dojo/film"] == "InnoDB"
    pages = layer(rep, "pages")
    assert pages["status"] == "ok" and pages["details"]["tablespaces"] >= 17
    out = tmp_path / "restored"
    r = run_cli("restore", str(bk), "-o", str(out), "--extract", "--no-history", *kms)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tree(out) == tree(folders["plain"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.")]
