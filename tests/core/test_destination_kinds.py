"""Restore destinations that are not regular files (issue 10).

Renaming the restored file over a device node, a FIFO or a socket would replace
the node itself: ``restore --force -o /dev/null`` as root used to leave /dev/null
a regular file holding the plaintext. Only a regular file is ever replaced, with
or without --force; anything else is refused with exit 2 and left as it was.
(Symbolic links and directories: tests/core/test_destination.py.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.adversarial import Seed, assert_failed, cli_json, partials
from fixtures.dumps import mysql_like
from fixtures.pipelines import openssl_variant
from sealcheck.core.errors import DestinationError
from sealcheck.core.plumbing.atomic import AtomicWriter

DEV_NULL = Path("/dev/null")
is_root = os.geteuid() == 0


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    d = tmp_path_factory.mktemp("small")
    dump = mysql_like(d / "dump.sql", rows=60)
    b = openssl_variant(dump, d / "s3")
    assert b.passphrase_file is not None
    return Seed(b.data, None, dump.read_bytes(), b.passphrase_file.read_bytes())


def _restore_cli(s: Seed, dest: Path, folder: Path, force: bool) -> tuple[int, dict | None, str]:  # type: ignore[type-arg]
    pf = folder / "pass"
    pf.write_bytes(s.passphrase or b"")
    force_arg = ["--force"] if force else []
    return cli_json(
        "restore", str(s.data), "-o", str(dest), "--passphrase-file", str(pf), *force_arg
    )


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _socket(p: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(p))  # the node stays after the socket is closed


def _char_device(p: Path) -> None:
    if not is_root:
        pytest.skip("making a device node needs root")
    try:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a second /dev/null
    except PermissionError:
        pytest.skip("mknod is not permitted here (no CAP_MKNOD)")


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize(
    ("make", "is_kind", "words"),
    [
        (_fifo, stat.S_ISFIFO, "FIFO"),
        (_socket, stat.S_ISSOCK, "socket"),
        (_char_device, stat.S_ISCHR, "character device"),
    ],
    ids=["fifo", "socket", "char-device"],
)
def test_special_file_destination_refused(
    small: Seed,
    tmp_path: Path,
    make: Callable[[Path], None],
    is_kind: Callable[[int], bool],
    words: str,
    force: bool,
) -> None:
    dest = tmp_path / "restored.sql"
    make(dest)
    before = os.lstat(dest)
    rc, rep, err = _restore_cli(small, dest, tmp_path, force)
    assert rc == 2 and rep is not None, err
    e = assert_failed(rep, obj=dest, layer="destination", kind="DestinationError", exit_code=2)
    assert words in e["message"] and "regular file" in e["message"]
    after = os.lstat(dest)
    assert is_kind(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert partials(tmp_path) == []


@contextlib.contextmanager
def _dev_null_guard() -> Iterator[None]:
    """Should the refusal ever regress, put the machine's /dev/null back."""
    try:
        yield
    finally:
        if not stat.S_ISCHR(os.lstat(DEV_NULL).st_mode):
            DEV_NULL.unlink()
            os.mknod(DEV_NULL, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            DEV_NULL.chmod(0o666)
        for p in partials(DEV_NULL.parent):
            p.unlink()


@pytest.mark.skipif(not is_root, reason="only root can replace /dev/null")
@pytest.mark.parametrize("force", [False, True])
def test_dev_null_as_root_stays_the_device(small: Seed, tmp_path: Path, force: bool) -> None:
    before = os.lstat(DEV_NULL)
    with _dev_null_guard():
        rc, rep, err = _restore_cli(small, DEV_NULL, tmp_path, force)
        after = os.lstat(DEV_NULL)
    assert stat.S_ISCHR(after.st_mode), "/dev/null was replaced"
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert rc == 2 and rep is not None, err
    assert_failed(rep, obj=DEV_NULL, layer="destination", exit_code=2)
    assert partials(DEV_NULL.parent) == []


def test_node_put_there_during_the_restore_is_not_replaced(tmp_path: Path) -> None:
    """Checked again at the rename: a FIFO that appears while the plaintext is
    being written stays, and the temp file goes."""
    dest = tmp_path / "restored.sql"
    w = AtomicWriter(dest, overwrite=True)
    w.write(b"plaintext\n")
    os.mkfifo(dest)
    with pytest.raises(DestinationError, match="FIFO"):
        w.commit()
    assert stat.S_ISFIFO(os.lstat(dest).st_mode)
    assert partials(tmp_path) == []


def test_regular_file_is_still_replaced_with_force(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.write_bytes(b"old\n")
    rc, rep, err = _restore_cli(small, dest, tmp_path, force=True)
    assert rc == 0 and rep is not None and rep["ok"], err
    assert dest.read_bytes() == small.plaintext
