"""Restore destinations and disk faults, cases D1-D7 (reliability.md §2.1, §1.12).

The restore writes a private temp file beside the destination and renames it
over the destination only after the whole stream verified. Oracles: O2 the
destination is absent or byte-identical to before, O3 no temp file is left
(after a crash: after the next restore into that folder), O5 bounded memory.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.adversarial import (
    Seed,
    assert_failed,
    assert_nothing_written,
    cli_json,
    flip,
    partials,
    run_job,
)
from fixtures.dumps import mysql_like
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.plumbing import atomic
from sealcheck.core.plumbing.atomic import sweep_stale
from sealcheck.core.storage.source import LocalFile

OLD = b"the previous restore, which must survive any failure\n" * 100


def _seed(d: Path, rows: int, producer: str = "gzip -c") -> Seed:
    dump = mysql_like(d / "dump.sql", rows=rows)
    b = openssl_variant(dump, d / "s3", compress=producer)
    assert b.passphrase_file is not None
    return Seed(b.data, None, dump.read_bytes(), b.passphrase_file.read_bytes())


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return _seed(tmp_path_factory.mktemp("small"), rows=60)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """~3.3 MB of dump (several 1 MiB chunks), ~100 KB encrypted."""
    s = _seed(tmp_path_factory.mktemp("medium"), rows=50000)
    assert len(s.plaintext) > 3_000_000
    return s


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """D6: 200 MB of zeros, gzip'd (~200 KB) and validly encrypted."""
    d = tmp_path_factory.mktemp("bomb")
    (d / "empty").write_bytes(b"")
    b = openssl_variant(
        d / "empty",
        d / "s3",
        compress="{ head -c 200000000 /dev/zero | gzip -c; }",
        name="zeros.sql.gz.enc",
    )
    assert b.passphrase_file is not None
    assert b.data.stat().st_size < 1_000_000
    return Seed(b.data, None, b"", b.passphrase_file.read_bytes())


def restore(s: Seed, dest: Path, **kw):  # type: ignore[no-untyped-def]
    return run_job(s.data, passphrase=s.passphrase, dest=dest, **kw)


# --- D4: existing destination, symlink, directory, missing folder -------------------


def test_existing_destination_refused_without_force(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.write_bytes(OLD)
    rep = restore(small, dest)
    err = assert_failed(rep, obj=dest, layer="destination", kind="DestinationError", exit_code=2)
    assert "--force" in err["message"]
    assert_nothing_written(dest, before=OLD)


def test_existing_destination_refused_through_cli(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.write_bytes(OLD)
    pf = tmp_path / "pass"
    pf.write_bytes(small.passphrase or b"")
    rc, rep, err = cli_json(
        "restore", str(small.data), "-o", str(dest), "--passphrase-file", str(pf)
    )
    assert rc == 2 and rep is not None, err
    assert_failed(rep, obj=dest, layer="destination", exit_code=2)
    assert_nothing_written(dest, before=OLD)


def test_force_replaces_atomically(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.write_bytes(OLD)
    old_inode = dest.stat().st_ino
    rep = restore(small, dest, overwrite=True)
    assert rep.ok, rep.error
    assert dest.read_bytes() == small.plaintext
    # A new file renamed over the old one, not the old one rewritten in place.
    assert dest.stat().st_ino != old_inode
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert partials(tmp_path) == []


@pytest.mark.parametrize("force", [False, True])
def test_symlink_destination_refused(small: Seed, tmp_path: Path, force: bool) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_bytes(OLD)
    dest = tmp_path / "restored.sql"
    dest.symlink_to(victim)
    rep = restore(small, dest, overwrite=force)
    err = assert_failed(rep, obj=dest, layer="destination", exit_code=2)
    assert "symbolic link" in err["message"]
    assert victim.read_bytes() == OLD and dest.is_symlink()
    assert partials(tmp_path) == []


def test_dangling_symlink_destination_refused(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.symlink_to(tmp_path / "does-not-exist")
    rep = restore(small, dest, overwrite=True)
    assert_failed(rep, obj=dest, layer="destination", exit_code=2)
    assert not (tmp_path / "does-not-exist").exists()


def test_directory_destination_refused(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    dest.mkdir()
    rep = restore(small, dest, overwrite=True)
    err = assert_failed(rep, obj=dest, layer="destination", exit_code=2)
    assert "directory" in err["message"]
    assert dest.is_dir() and list(dest.iterdir()) == []


def test_missing_folder_refused(small: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "no" / "such" / "folder" / "restored.sql"
    rep = restore(small, dest)
    err = assert_failed(rep, obj=dest, layer="destination", exit_code=2)
    assert "folder does not exist" in err["message"]
    assert not (tmp_path / "no").exists()


def test_temp_and_output_are_private_under_umask_0(small: Seed, tmp_path: Path) -> None:
    """D4: the decrypted temp file is 0600 while it is being written, and so
    is the result, even when the user's umask would allow more."""
    dest = tmp_path / "restored.sql"
    modes: list[int] = []

    class Watch:
        def feed(self, data: bytes) -> None:
            modes.extend(stat.S_IMODE(p.stat().st_mode) for p in partials(tmp_path))

        def finish(self) -> None:
            pass

    old = os.umask(0)
    try:
        job = Job(
            data=LocalFile(small.data),
            secrets=Secrets(passphrase=bytearray(small.passphrase or b"")),
            operation="restore",
            destination=dest,
            extra_sink=Watch(),
        )
        rep = run(job)
    finally:
        os.umask(old)
    assert rep.ok, rep.error
    assert modes and set(modes) == {0o600}, modes
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_commit_syncs_file_then_folder(small: Seed, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """D3 (the part a test can see): fsync of the file, then of the folder,
    before success is reported."""
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    rep = restore(small, tmp_path / "restored.sql")
    assert rep.ok, rep.error
    assert synced == ["file", "dir"]


# --- D1/O2: failures after part of the plaintext was written -------------------------


def test_failure_mid_restore_keeps_old_file(medium: Seed, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "restored.sql"
    dest.write_bytes(OLD)
    written: list[int] = []
    real_write = atomic.AtomicWriter.write

    def counting(self: atomic.AtomicWriter, data: bytes) -> None:
        real_write(self, data)
        written.append(self.bytes)

    monkeypatch.setattr(atomic.AtomicWriter, "write", counting)
    data = medium.bytes
    bad = tmp_path / "damaged.sql.gz.enc"
    bad.write_bytes(flip(data, len(data) - 200, 3))  # near the end of the gzip stream
    rep = run_job(bad, passphrase=medium.passphrase, dest=dest, overwrite=True)
    assert_failed(rep, obj=bad, layer="decompress")
    assert written and written[-1] > 1_000_000  # it failed mid-restore, not up front
    assert_nothing_written(dest, before=OLD)


def _mount_tmpfs(d: Path, size: str) -> None:
    d.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test: {r.stderr.strip()}")


def test_disk_full(medium: Seed, tmp_path: Path) -> None:
    """D1: ENOSPC part-way through (a 2 MiB tmpfs, 3.3 MB of plaintext)."""
    mnt = tmp_path / "small-disk"
    _mount_tmpfs(mnt, "2m")
    try:
        dest = mnt / "restored.sql"
        dest.write_bytes(OLD)
        pf = tmp_path / "pass"
        pf.write_bytes(medium.passphrase or b"")
        rc, rep, err = cli_json(
            "restore", str(medium.data), "-o", str(dest), "--force", "--passphrase-file", str(pf)
        )
        assert rc == 2 and rep is not None, err
        e = assert_failed(rep, obj=dest, layer="destination", kind="DestinationError", exit_code=2)
        assert "disk is full" in e["message"], e
        assert_nothing_written(dest, before=OLD)
        # The space was given back: the temp file is gone, not just renamed.
        st = os.statvfs(mnt)
        assert st.f_bfree * st.f_frsize > 1_500_000
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# --- D6: decompression bomb ---------------------------------------------------------


# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a
# child of a big pytest process would report the parent's peak, not its own.
_RSS_PROBE = """
import re, sys
from sealcheck.core.cli.main import main
rc = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print("PEAK_RSS_KB", hwm, "RC", rc)
"""


def test_bomb_verifies_in_bounded_memory(bomb: Seed, tmp_path: Path) -> None:
    pf = tmp_path / "pass"
    pf.write_bytes(bomb.passphrase or b"")
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _RSS_PROBE,
            "verify",
            str(bomb.data),
            "--passphrase-file",
            str(pf),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stdout.strip().splitlines()[-1].split()
    peak_mb, rc = int(last[1]) / 1024, int(last[3])
    assert rc == 0, r.stdout
    assert "200000000 bytes" in r.stdout  # every byte went through
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB"
    print(f"D6: 200 MB of zeros verified with a peak RSS of {peak_mb:.0f} MB")


def test_bomb_stopped_by_max_output(bomb: Seed, tmp_path: Path) -> None:
    dest = tmp_path / "restored.sql"
    pf = tmp_path / "pass"
    pf.write_bytes(bomb.passphrase or b"")
    rc, rep, err = cli_json(
        "restore",
        str(bomb.data),
        "-o",
        str(dest),
        "--passphrase-file",
        str(pf),
        "--max-output",
        "10000000",
    )
    assert rc == 1 and rep is not None, err
    e = assert_failed(rep, obj=bomb.data, layer="decompress", kind="SizeLimitExceeded")
    assert "exceeds the limit of 10000000 bytes (--max-output)" in e["message"], e
    assert_nothing_written(dest)


# --- D2: temp files left by a killed process ----------------------------------------


def test_killed_restore_leaves_temp_that_next_restore_sweeps(
    bomb: Seed, small: Seed, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pf = tmp_path / "pass"
    pf.write_bytes(bomb.passphrase or b"")
    dest = out / "zeros.sql"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealcheck.core.cli",
            "restore",
            str(bomb.data),
            "-o",
            str(dest),
            "--passphrase-file",
            str(pf),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = partials(out)
            if found and found[0].stat().st_size > 0:
                break
            assert proc.poll() is None, "the restore ended before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("no temp file appeared")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    stale = partials(out)
    assert len(stale) == 1 and not dest.exists()
    assert str(proc.pid) in stale[0].name  # the writer's pid makes it sweepable
    # The next restore into that folder removes it.
    rep = restore(small, out / "other.sql")
    assert rep.ok, rep.error
    assert partials(out) == [] and not dest.exists()


def test_sweep_spares_live_writers_and_symlinks(tmp_path: Path) -> None:
    dead = tmp_path / ".a.sql.sealcheck-999999999-abcdefgh.partial"  # > pid_max: never alive
    live = tmp_path / f".b.sql.sealcheck-{os.getpid()}-abcdefgh.partial"
    victim = tmp_path / "victim"
    victim.write_bytes(OLD)
    planted = tmp_path / ".c.sql.sealcheck-999999998-abcdefgh.partial"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    planted.symlink_to(victim)
    other = tmp_path / "not-ours.partial"
    other.write_bytes(b"x")
    assert sweep_stale(tmp_path) == [dead]
    assert live.exists() and planted.is_symlink() and victim.read_bytes() == OLD
    assert other.exists()


# --- D7: verify writes nothing ------------------------------------------------------


def test_verify_writes_no_plaintext(medium: Seed, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    tmp = tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    pf = tmp_path / "pass"
    pf.write_bytes(medium.passphrase or b"")
    before = sorted(p.name for p in medium.data.parent.iterdir())
    env = dict(os.environ, TMPDIR=str(tmp), HOME=str(tmp_path / "home"))
    rc, rep, err = cli_json(
        "verify", str(medium.data), "--passphrase-file", str(pf), cwd=cwd, env=env
    )
    assert rc == 0 and rep is not None, err
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    assert sorted(p.name for p in medium.data.parent.iterdir()) == before
    assert rep["destination"] is None
