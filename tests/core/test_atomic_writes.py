"""One road for durable writes (issue 11): ``with AtomicWriter(...) as f`` and the
files that go through it (settings, restore-test records, the scratch ledger).

Oracles: the destination is either the old bytes or the new bytes, never a mix;
no temp file is left in the folder; two writers never share a temp name.
"""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from sealcheck.core.errors import DestinationError, SaveFailed
from sealcheck.core.plumbing.atomic import AtomicWriter
from sealcheck.core.restoretest.confine import Ledger
from sealcheck.core.restoretest.procs import StateDir

OLD = b"the old contents, which must survive\n" * 50


class Boom(Exception):
    pass


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_clean_block_replaces_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    dest.write_bytes(OLD)
    with AtomicWriter(dest, overwrite=True) as f:
        f.write(b"new ")
        f.write(b"bytes")
    assert dest.read_bytes() == b"new bytes"
    assert _only(tmp_path) == ["out.json"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_exception_in_block_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    dest.write_bytes(OLD)
    with pytest.raises(Boom), AtomicWriter(dest, overwrite=True) as f:
        f.write(b"half of the new")
        assert f.temp_path is not None and f.temp_path.exists()
        raise Boom
    assert dest.read_bytes() == OLD
    assert _only(tmp_path) == ["out.json"]


def test_exception_without_old_file_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt), AtomicWriter(dest) as f:
        f.write(b"x")
        raise KeyboardInterrupt
    assert _only(tmp_path) == []


def test_commit_inside_block_then_clean_exit(tmp_path: Path) -> None:
    """The pipeline's shape: commit when the pass verified, then go on."""
    dest = tmp_path / "out.sql"
    with AtomicWriter(dest) as f:
        f.write(b"data")
        f.commit()
        assert dest.read_bytes() == b"data"
    assert _only(tmp_path) == ["out.sql"]


def test_two_writers_in_one_folder_never_collide(tmp_path: Path) -> None:
    """Both open at once (same process, same destination): two temp files, and the
    destination ends as one writer's whole bytes."""
    dest = tmp_path / "sources.json"
    a = AtomicWriter(dest, overwrite=True)
    b = AtomicWriter(dest, overwrite=True)
    assert a.temp_path != b.temp_path
    with a, b:
        a.write(b"A" * 10_000)
        b.write(b"B" * 20_000)
    assert dest.read_bytes() == b"A" * 10_000  # ``with a, b`` commits b, then a
    assert _only(tmp_path) == ["sources.json"]


def test_many_threads_same_folder(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    names: set[str] = set()
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            for _ in range(20):
                with AtomicWriter(tmp_path / "shared.json", overwrite=True) as f:
                    assert f.temp_path is not None
                    with lock:
                        names.add(f.temp_path.name)
                    f.write(bytes([i]) * 4096)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(names) == 120  # every writer had a temp name of its own
    body = (tmp_path / "shared.json").read_bytes()
    assert len(body) == 4096 and len(set(body)) == 1  # one writer's bytes, whole
    assert _only(tmp_path) == ["shared.json"]


def test_mode_option(tmp_path: Path) -> None:
    dest = tmp_path / "report.html"
    with AtomicWriter(dest, mode=0o644) as f:
        f.write(b"<html>")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_refusals_raise_the_callers_error(tmp_path: Path) -> None:
    dest = tmp_path / "exists"
    dest.write_bytes(OLD)
    with pytest.raises(DestinationError, match="already exists"):
        AtomicWriter(dest)
    (tmp_path / "link").symlink_to(dest)
    with pytest.raises(SaveFailed, match="symbolic link"):
        AtomicWriter(tmp_path / "link", overwrite=True, error=SaveFailed)
    with pytest.raises(SaveFailed, match="folder does not exist"):
        AtomicWriter(tmp_path / "no" / "file", error=SaveFailed)
    assert dest.read_bytes() == OLD


# --- the files that go through it ---------------------------------------------------


def test_restore_test_records_are_atomic_and_leave_no_temp(tmp_path: Path) -> None:
    """StateDir once wrote through a fixed ``.tmp`` name without fsync: two writers of
    one record could tear it. Now every write has its own temp file."""
    state = StateDir(tmp_path / "state")
    rec = state.record("postgres", tmp_path / "root-1")
    state.set_pgid(rec, 4242)
    made = Ledger(state, "srv").add("sealcheck_rt_0123456789ab")
    assert made.record.exists()
    assert sorted(_only(state.path)) == sorted([rec.name, made.record.name])
    assert b'"pgid": 4242' in rec.read_bytes()


def test_interrupted_record_write_keeps_the_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = StateDir(tmp_path / "state")
    rec = state.record("mariadb", tmp_path / "root-2")
    before = rec.read_bytes()

    def fail(self: AtomicWriter, data: bytes) -> None:
        raise Boom

    monkeypatch.setattr(AtomicWriter, "write", fail)
    with pytest.raises(Boom):
        state.set_pgid(rec, 77)
    assert rec.read_bytes() == before
    assert _only(state.path) == [rec.name]
