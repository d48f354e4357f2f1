"""``openssl enc -K/-iv`` backups from the command line: the key comes from a file.

A key given as ``--raw-key HEX`` would be readable by every user of the machine
in /proc/PID/cmdline (and ``ps``) for the whole run, so that form is refused
(exit 2) and ``--raw-key-file FILE`` takes its place. The backups here are made
by ``gzip | openssl enc -K … -iv …`` itself.
"""

from __future__ import annotations

import errno
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.pipelines import sh
from sealcheck.core.formats import Fmt, sniff


@dataclass(frozen=True)
class RawBackup:
    data: Path
    key_hex: str
    iv_hex: str
    plaintext: bytes


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> RawBackup:
    d = tmp_path_factory.mktemp("raw")
    dump = mysql_like(d / "dump.sql", rows=3000)
    key, iv = secrets.token_hex(32), secrets.token_hex(16)
    data = d / "nosalt.sql.gz.enc"
    # The producer's own argv holds the key here; that is the producer's business.
    sh(f"gzip -c {dump} | openssl enc -aes-256-cbc -K {key} -iv {iv} > {data}", d)
    return RawBackup(data, key, iv, dump.read_bytes())


@pytest.fixture(scope="module")
def pgp_looking(tmp_path_factory: pytest.TempPathFactory) -> RawBackup:
    """A -K/-iv backup whose first ciphertext byte reads as a binary OpenPGP packet
    tag (about one key in three): the raw key, not the sniffer, must decide."""
    d = tmp_path_factory.mktemp("pgp-looking")
    dump = mysql_like(d / "dump.sql", rows=200)
    data = d / "nosalt.sql.gz.enc"
    for _ in range(200):
        key, iv = secrets.token_hex(32), secrets.token_hex(16)
        sh(f"gzip -c {dump} | openssl enc -aes-256-cbc -K {key} -iv {iv} > {data}", d)
        if sniff(data.read_bytes()[:4096]) is Fmt.PGP_BINARY:
            return RawBackup(data, key, iv, dump.read_bytes())
    raise AssertionError("no key gave an OpenPGP-looking first byte in 200 tries")


def _key_file(folder: Path, text: str) -> Path:
    f = folder / "data.key"
    f.write_text(text)
    f.chmod(0o600)
    return f


def test_raw_key_file_verifies_and_restores(raw: RawBackup, tmp_path: Path) -> None:
    kf = _key_file(tmp_path, raw.key_hex + "\n")  # as `openssl rand -hex 32 > F` leaves it
    r = run_cli("verify", str(raw.data), "--raw-key-file", str(kf), "--iv", raw.iv_hex)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERIFIED" in r.stdout
    dest = tmp_path / "restored.sql"
    r = run_cli(
        "restore", str(raw.data), "-o", str(dest), "--raw-key-file", str(kf), "--iv", raw.iv_hex
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert dest.read_bytes() == raw.plaintext
    for out in (r.stdout, r.stderr):
        assert raw.key_hex not in out


def test_headerless_ciphertext_that_looks_like_openpgp(
    pgp_looking: RawBackup, tmp_path: Path
) -> None:
    kf = _key_file(tmp_path, pgp_looking.key_hex)
    r = run_cli(
        "verify", str(pgp_looking.data), "--raw-key-file", str(kf), "--iv", pgp_looking.iv_hex
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "openssl-enc > gzip" in r.stdout


def _open_writer(fifo: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """Open the FIFO for writing once the CLI has opened it for reading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the CLI never opened the key file"
        time.sleep(0.02)


def test_key_is_not_in_the_process_cmdline_while_it_runs(raw: RawBackup, tmp_path: Path) -> None:
    """The key file is a FIFO: the CLI blocks reading it, mid-run, while its
    /proc entries are read; then the key is fed and the run completes."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "sealcheck.core.cli", "--debug", "verify", str(raw.data)),
            *("--raw-key-file", str(fifo), "--iv", raw.iv_hex, "--no-progress"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        fd = _open_writer(fifo, proc)
        proc_dir = Path(f"/proc/{proc.pid}")
        cmdline = (proc_dir / "cmdline").read_bytes()
        environ = (proc_dir / "environ").read_bytes()
        assert str(fifo).encode() in cmdline  # the right process, mid-run
        for seen in (cmdline, environ):
            assert raw.key_hex.encode() not in seen
            assert raw.key_hex.upper().encode() not in seen
        os.write(fd, raw.key_hex.encode() + b"\n")
        os.close(fd)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert raw.key_hex.encode() not in out + err  # --debug logging included


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_raw_key_in_argv_is_refused(raw: RawBackup, tmp_path: Path, form: str) -> None:
    argv = ["--raw-key", raw.key_hex] if form == "separate" else [f"--raw-key={raw.key_hex}"]
    dest = tmp_path / "restored.sql"
    r = run_cli("restore", str(raw.data), "-o", str(dest), *argv, "--iv", raw.iv_hex)
    assert r.returncode == 2
    assert "--raw-key-file" in r.stderr
    assert raw.key_hex not in r.stdout + r.stderr  # the refusal does not echo the key
    assert not dest.exists()


def test_help_explains_the_refusal() -> None:
    r = run_cli("verify", "--help")
    assert r.returncode == 0
    assert "--raw-key-file" in r.stdout
    assert "refused" in r.stdout


def test_key_file_that_is_not_hex_is_a_usage_error(raw: RawBackup, tmp_path: Path) -> None:
    content = "passphrase-not-a-hex-key-" + secrets.token_hex(4)
    kf = _key_file(tmp_path, content)
    r = run_cli("verify", str(raw.data), "--raw-key-file", str(kf), "--iv", raw.iv_hex)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(kf) in r.stderr
    assert content not in r.stdout + r.stderr  # named, never quoted


def test_unreadable_key_file_and_missing_iv(raw: RawBackup, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.key"
    r = run_cli("verify", str(raw.data), "--raw-key-file", str(missing), "--iv", raw.iv_hex)
    assert r.returncode == 2 and str(missing) in r.stderr, r.stderr
    kf = _key_file(tmp_path, raw.key_hex)
    r = run_cli("verify", str(raw.data), "--raw-key-file", str(kf))
    assert r.returncode == 2 and "--iv" in r.stderr, r.stderr


def test_wrong_key_in_the_file_fails_the_backup(raw: RawBackup, tmp_path: Path) -> None:
    kf = _key_file(tmp_path, secrets.token_hex(32))
    r = run_cli("verify", str(raw.data), "--raw-key-file", str(kf), "--iv", raw.iv_hex)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Wrong key" in r.stdout
