"""A tar of a backup's folder read as its files (core/payload/tarfiles.py, issue 16),
with the one tar header reader (core/payload/tar.py) that the pg_dump road shares.

Every tar here is written by GNU tar itself (``--format=gnu`` and ``--format=pax``,
long names, ``cat`` of two archives, ``-P`` for the hostile names, ``tar rf`` for a
file that comes twice); the reader's events are compared with the files it packed.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from sealcheck.core.errors import IncompleteDump, IntegrityError, TruncatedBackup
from sealcheck.core.payload.streamparse import Damaged, Feeder
from sealcheck.core.payload.tar import TarParser
from sealcheck.core.payload.tarfiles import TarFilesReader
from sealcheck.core.physical.check import PhysicalCheck
from sealcheck.core.physical.extract import FolderWriter
from sealcheck.core.physical.layout import NEED_MORE, container
from sealcheck.core.plumbing.relpath import UnsafeMemberPath

LONG = "sakila_dojo/" + "a_table_with_a_name_longer_than_any_tar_header_holds_" * 3 + "x.ibd"
FILES = {
    "backup-my.cnf": b"[mysqld]\ninnodb_data_file_path=ibdata1:12M:autoextend\n",
    "xtrabackup_info": b"tool_name = mariabackup\n",
    "xtrabackup_checkpoints": b"backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 42\n",
    "ibdata1": os.urandom(70_000),
    "sakila_dojo/db.opt": b"default-character-set=utf8mb4\n",
    LONG: os.urandom(5000),
    "empty_file": b"",
}


class Files:
    def __init__(self) -> None:
        self.got: dict[str, bytearray] = {}
        self.ended: list[str] = []
        self.folders: list[str] = []

    def data(self, path: str, data: bytes) -> None:
        self.got.setdefault(path, bytearray()).extend(data)

    def end(self, path: str) -> None:
        self.ended.append(path)
        self.got.setdefault(path, bytearray())

    def folder(self, path: str) -> None:
        self.folders.append(path)

    def rebase(self, top: str) -> None:
        """Not all members under the first one's folder: the names so far get it back."""
        self.got = {f"{top}/{n}": b for n, b in self.got.items()}
        self.ended = [f"{top}/{n}" for n in self.ended]
        self.folders = [f"{top}/{n}" for n in self.folders]


def folder(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "empty_db").mkdir()
    return root


def gnu_tar(src: Path, out: Path, *args: str, members: tuple[str, ...] = (".",)) -> bytes:
    subprocess.run(["tar", "-cf", str(out), *args, "-C", str(src), *members], check=True)
    return out.read_bytes()


def read(data: bytes, piece: int = 4099) -> tuple[Files, TarFilesReader]:
    h = Files()
    r = TarFilesReader(h, obj="t")
    for i in range(0, len(data), piece):
        r.feed(data[i : i + piece])
    r.finish()
    return h, r


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_gnu_and_pax_tars_read_as_their_files(fmt: str, tmp_path: Path) -> None:
    src = folder(tmp_path / "backup")
    data = gnu_tar(src, tmp_path / "b.tar", f"--format={fmt}")
    assert len(LONG) > 100
    h, r = read(data)
    assert {k: bytes(v) for k, v in h.got.items()} == FILES
    assert sorted(h.ended) == sorted(FILES)
    assert sorted(h.folders) == ["empty_db", "sakila_dojo"]
    assert r.zeros_skipped == 0 and r.bytes == len(data)


def test_zero_blocks_inside_are_skipped_as_tar_i_does(tmp_path: Path) -> None:
    """``cat a.tar b.tar``: ``tar -i`` reads both archives, skipping the first's end."""
    a = gnu_tar(folder(tmp_path / "a", {"backup-my.cnf": b"x"}), tmp_path / "a.tar")
    b = gnu_tar(folder(tmp_path / "b", {"ibdata1": b"y" * 9000}), tmp_path / "b.tar")
    both = tmp_path / "both.tar"
    both.write_bytes(a + b)
    listed = subprocess.run(["tar", "-itf", str(both)], capture_output=True, check=True)
    assert b"./ibdata1" in listed.stdout and b"./backup-my.cnf" in listed.stdout
    h, r = read(a + b)
    assert set(h.got) == {"backup-my.cnf", "ibdata1"}
    assert r.zeros_skipped >= 2
    # The pg_dump road reads a tar as tar without -i does: the first end is the end.
    with pytest.raises(Damaged, match="data follows the end"):
        Feeder(TarParser(lambda m: None).parse(), lambda _n: None).feed(a + b)


def test_a_cut_tar_is_named(tmp_path: Path) -> None:
    data = gnu_tar(folder(tmp_path / "b"), tmp_path / "b.tar")
    at = data.index(b"ibdata1\0")
    with pytest.raises(TruncatedBackup, match=r"inside the tar member \./ibdata1"):
        read(data[: at + 512 + 1000])
    end = len(data.rstrip(b"\0"))
    end += -end % 512
    with pytest.raises(TruncatedBackup, match="two end blocks"):
        read(data[:end])
    with pytest.raises(TruncatedBackup, match="second end block"):
        read(data[: end + 512])


def test_a_flipped_bit_in_a_header_is_caught(tmp_path: Path) -> None:
    data = bytearray(gnu_tar(folder(tmp_path / "b"), tmp_path / "b.tar"))
    at = data.index(b"xtrabackup_info\0")
    data[at + 130] ^= 0x01  # in its size field
    with pytest.raises(IntegrityError, match=r"checksum does not match.*xtrabackup_info"):
        read(bytes(data))


def test_hostile_members_are_refused_by_name(tmp_path: Path) -> None:
    src = folder(tmp_path / "outer" / "backup", {"backup-my.cnf": b"x"})
    (tmp_path / "outer" / "escape").write_bytes(b"e")
    up = gnu_tar(src, tmp_path / "up.tar", "-P", members=(".", "../escape"))
    with pytest.raises(UnsafeMemberPath, match=r"'\.\./escape'"):
        read(up)
    absolute = gnu_tar(src, tmp_path / "abs.tar", "-P", members=(str(src / "backup-my.cnf"),))
    with pytest.raises(UnsafeMemberPath, match=re.escape(repr(str(src / "backup-my.cnf")))):
        read(absolute)
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeMemberPath, match=r"'\./link'.*symbolic link \(to '/etc/passwd'\)"):
        read(gnu_tar(src, tmp_path / "sym.tar"))
    (src / "link").unlink()
    os.link(src / "backup-my.cnf", src / "hard")
    with pytest.raises(UnsafeMemberPath, match="hard link"):
        read(gnu_tar(src, tmp_path / "hard.tar"))
    (src / "hard").unlink()
    os.mkfifo(src / "fifo")
    with pytest.raises(UnsafeMemberPath, match=r"'\./fifo'.*FIFO"):
        read(gnu_tar(src, tmp_path / "fifo.tar"))


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_a_sparse_member_is_refused_by_its_real_name(fmt: str, tmp_path: Path) -> None:
    """``tar -S``: GNU's sparse header (gnu) or a hole map before the data under a
    made-up name (pax 1.0): never read as the file's bytes."""
    src = tmp_path / "b"
    src.mkdir()
    with (src / "ibdata1").open("wb") as f:
        f.truncate(1 << 20)
        f.seek(500_000)
        f.write(b"abc")
    data = gnu_tar(src, tmp_path / "s.tar", f"--format={fmt}", "-S")
    with pytest.raises(UnsafeMemberPath, match=r"'\./ibdata1'.*GNU sparse file"):
        read(data)
    assert container(data) == "tar"


def test_a_file_that_comes_twice_is_refused(tmp_path: Path) -> None:
    src = folder(tmp_path / "b", {"ibdata1": b"1"})
    out = tmp_path / "t.tar"
    gnu_tar(src, out, members=("ibdata1",))
    subprocess.run(["tar", "-rf", str(out), "-C", str(src), "ibdata1"], check=True)
    with pytest.raises(IntegrityError, match="'ibdata1' comes twice"):
        read(out.read_bytes())


def test_which_tar_is_a_physical_backup(tmp_path: Path) -> None:
    backup = gnu_tar(folder(tmp_path / "b"), tmp_path / "b.tar")
    assert container(backup[:1024]) == NEED_MORE or container(backup[:1024]) == "tar"
    assert container(backup) == "tar"
    pg = folder(tmp_path / "pg", {"toc.dat": b"PGDMP" + bytes(100), "3385.dat": b"\\.\n"})
    assert container(gnu_tar(pg, tmp_path / "pg.tar", members=("toc.dat", "3385.dat"))) is None
    docs = folder(tmp_path / "docs", {"README.txt": b"hello, world\n"})
    assert container(gnu_tar(docs, tmp_path / "d.tar")) is None
    # An unknown name, but xbcrypt content: only XtraBackup writes that.
    enc = folder(tmp_path / "enc", {"weird-name": b"XBCRYP03" + bytes(100)})
    assert container(gnu_tar(enc, tmp_path / "e.tar")) == "tar"
    assert container(b"XBSTCK01\0P") == "xbstream"
    # Folders first, the deciding file not yet there: more is needed.
    deep = folder(tmp_path / "deep", {f"d{i}/x": b"" for i in range(5)})
    deep_tar = gnu_tar(deep, tmp_path / "deep.tar")
    assert container(deep_tar[:2048]) == NEED_MORE
    assert container(deep_tar[:2048], ended=True) is None


def test_physical_check_of_a_tar_extracts_the_folder(tmp_path: Path) -> None:
    data = gnu_tar(folder(tmp_path / "b"), tmp_path / "b.tar", "--format=pax")
    out = tmp_path / "restored"
    writer = FolderWriter(out, obj="t")
    check = PhysicalCheck(key=None, obj="t", writer=writer, check_pages=False, container="tar")
    for i in range(0, len(data), 10_000):
        check.feed(data[i : i + 10_000])
    r = check.finish()
    writer.commit()
    assert r.files == len(FILES) and r.chunks >= len(FILES)
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == FILES
    assert (out / "empty_db").is_dir()


def _check(data: bytes, out: Path) -> tuple[PhysicalCheck, FolderWriter]:
    writer = FolderWriter(out, obj="t")
    check = PhysicalCheck(key=None, obj="t", writer=writer, check_pages=False, container="tar")
    for i in range(0, len(data), 10_000):
        check.feed(data[i : i + 10_000])
    check.finish()
    writer.commit()
    return check, writer


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "members", [("backupdir",), ("backupdir/",), ("./backupdir",), (".",)], ids=str
)
def test_one_top_folder_is_the_backups_root(members: tuple[str, ...], tmp_path: Path) -> None:
    """``tar cf b.tar backupdir/`` (and ``-C parent .`` of a parent holding only the
    backup's folder, ``./`` in front of every name): the names are below the folder,
    and the extracted folder is the backup's root."""
    folder(tmp_path / "parent" / "backupdir")
    data = gnu_tar(tmp_path / "parent", tmp_path / "b.tar", members=members)
    h, r = read(data)
    assert r.top == "backupdir"
    assert {k: bytes(v) for k, v in h.got.items()} == FILES
    assert sorted(h.folders) == ["empty_db", "sakila_dojo"]
    assert set(r.files) == set(FILES)
    check, writer = _check(data, tmp_path / "restored")
    assert writer.stripped == "backupdir" and "xtrabackup_checkpoints" in check.complete.names
    assert _tree(tmp_path / "restored") == FILES
    assert (tmp_path / "restored" / "empty_db").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "parent", "restored"]


def test_members_outside_the_first_folder_keep_their_names(tmp_path: Path) -> None:
    """The first member's folder is not the root once a member lies outside it: what
    was handed on and written so far gets the folder back, as a tar without one."""
    src = folder(tmp_path / "parent" / "backupdir")
    (tmp_path / "parent" / "notes.txt").write_bytes(b"n")
    data = gnu_tar(tmp_path / "parent", tmp_path / "b.tar", members=("backupdir", "notes.txt"))
    want = {f"backupdir/{k}": v for k, v in FILES.items()} | {"notes.txt": b"n"}
    h, r = read(data)
    assert r.top is None
    assert {k: bytes(v) for k, v in h.got.items()} == want
    assert sorted(h.ended) == sorted(want)
    assert sorted(h.folders) == ["backupdir", "backupdir/empty_db", "backupdir/sakila_dojo"]
    assert set(r.files) == set(want)
    # The backup at the root after a folder of it (tar cf b.tar sakila_dojo ibdata1 …).
    first = ("sakila_dojo", *sorted(k for k in FILES if "/" not in k), "empty_db")
    h, r = read(gnu_tar(src, tmp_path / "c.tar", members=first))
    assert r.top is None and {k: bytes(v) for k, v in h.got.items()} == FILES
    mixed = PhysicalCheck(key=None, obj="t", check_pages=False, container="tar")
    mixed.feed(data)
    with pytest.raises(IncompleteDump, match="no xtrabackup_checkpoints"):
        mixed.finish()
    _, writer = _check(gnu_tar(src, tmp_path / "c.tar", members=first), tmp_path / "flat")
    assert writer.stripped is None and _tree(tmp_path / "flat") == FILES
    assert (tmp_path / "flat" / "empty_db").is_dir()
