"""``gpg --symmetric`` backups (a passphrase, no key pair), made by the real gpg.

The passphrase reaches gpg through a pipe; a wrong one is named as the
problem (exit 1, the key layer), a missing one says which option to give
(exit 2), and a damaged or cut backup never verifies.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import GPG_HOMES, sh
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket

PASSPHRASE = "correct horse battery staple"


def producer_home(tmp_path: Path) -> Path:
    home = tmp_path / "producer-gnupg"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    return home


def gpg_symmetric(
    dump: Path, out: Path, home: Path, pw_file: Path, *, options: str = "", gzip: bool = True
) -> Path:
    """mysqldump | gzip | gpg --symmetric --cipher-algo AES256 --passphrase-file F."""
    feed = f"gzip -c {shlex.quote(str(dump))}" if gzip else f"cat {shlex.quote(str(dump))}"
    sh(
        f"{feed} | gpg --batch --homedir {shlex.quote(str(home))} --pinentry-mode loopback "
        f"--passphrase-file {shlex.quote(str(pw_file))} --symmetric --cipher-algo AES256 "
        f"{options} > {shlex.quote(str(out))}",
        out.parent,
    )
    return out


@pytest.fixture
def pw_file(tmp_path: Path) -> Path:
    p = tmp_path / "backup.pass"
    p.write_text(PASSPHRASE + "\n")
    return p


@pytest.fixture
def backup(tmp_path: Path, small_dump: Path, pw_file: Path) -> Path:
    return gpg_symmetric(small_dump, tmp_path / "db.sql.gz.gpg", producer_home(tmp_path), pw_file)


def verify(*args: str) -> tuple[int, dict, str]:
    r = run_cli("verify", *args, "--json")
    return r.returncode, json.loads(r.stdout), r.stderr


def layer(report: dict, name: str) -> dict:
    return next(x for x in report["layers"] if x["layer"] == name)


@pytest.mark.parametrize(
    ("options", "gzip"),
    [
        ("", True),
        ("--compress-algo none", True),  # gzip outside, nothing inside
        ("--compress-algo zlib", False),  # gpg's own compression only
        ("--compress-algo bzip2", False),
        ("--armor", True),
        ("--s2k-mode 0", True),  # simple S2K (no salt)
        ("--s2k-mode 1 --s2k-digest-algo SHA512", True),  # salted
        ("--s2k-mode 3 --s2k-digest-algo SHA256 --s2k-count 65011712", True),
        ("--s2k-cipher-algo AES128", True),
    ],
)
def test_gpg_symmetric_opens_with_the_passphrase_file(
    tmp_path: Path, small_dump: Path, pw_file: Path, options: str, gzip: bool
) -> None:
    data = gpg_symmetric(
        small_dump,
        tmp_path / "db.gpg",
        producer_home(tmp_path),
        pw_file,
        options=options,
        gzip=gzip,
    )
    rc, rep, _ = verify(str(data), "--passphrase-file", str(pw_file))
    assert rc == 0, rep
    key = layer(rep, "key")
    assert key["details"]["symmetric"] is True
    assert "passphrase" in key["proved"]
    assert "modification detection code verified" in layer(rep, "cipher")["proved"]
    assert layer(rep, "payload")["details"]["completeness"] == "complete"
    assert rep["formats"][0] == ("openpgp-armored" if "--armor" in options else "openpgp")
    assert rep["formats"][1:] == (["gzip", "mysql-sql"] if gzip else ["sql", "mysql-sql"])


def test_restore_is_the_producers_plaintext(
    tmp_path: Path, backup: Path, pw_file: Path, small_dump: Path
) -> None:
    out = tmp_path / "restored.sql"
    r = run_cli("restore", str(backup), "-o", str(out), "--passphrase-file", str(pw_file))
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes() == small_dump.read_bytes()  # decrypted and decompressed


def test_passphrase_without_newline_and_given_as_an_argument(
    tmp_path: Path, small_dump: Path
) -> None:
    """The producer gave --passphrase on its command line; the user's file has no newline."""
    data = tmp_path / "db.gpg"
    home = producer_home(tmp_path)
    sh(
        f"gzip -c {shlex.quote(str(small_dump))} | gpg --batch --homedir {shlex.quote(str(home))} "
        f"--pinentry-mode loopback --passphrase {shlex.quote(PASSPHRASE)} --symmetric "
        f"> {shlex.quote(str(data))}",
        tmp_path,
    )
    pw = tmp_path / "pw"
    pw.write_bytes(PASSPHRASE.encode())
    rc, rep, _ = verify(str(data), "--passphrase-file", str(pw))
    assert rc == 0, rep


def test_wrong_passphrase_names_the_passphrase(tmp_path: Path, backup: Path) -> None:
    bad = tmp_path / "bad.pass"
    bad.write_text("not the passphrase\n")
    rc, rep, _ = verify(str(backup), "--passphrase-file", str(bad))
    assert rc == 1, rep
    err = rep["error"]
    assert err["kind"] == "WrongKey" and err["layer"] == "key"
    assert "passphrase" in err["message"]
    for wrong_words in ("corrupt", "tampered", "wrapped key does not match"):
        assert wrong_words not in err["message"]
    assert "not the passphrase" not in json.dumps(rep)  # never the secret itself


def test_no_passphrase_says_which_option(backup: Path) -> None:
    rc, rep, _ = verify(str(backup))
    assert rc == 2, rep
    assert rep["error"]["kind"] == "KeyUnavailable"
    assert "--passphrase-file" in rep["error"]["message"]
    assert "gpg --symmetric" in rep["error"]["message"]


def test_empty_passphrase_file_is_a_usage_error(tmp_path: Path, backup: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    rc, rep, _ = verify(str(backup), "--passphrase-file", str(empty))
    assert rc == 2, rep
    assert "empty" in rep["error"]["message"]


def test_the_users_agent_cache_does_not_answer(
    tmp_path: Path, backup: Path, pw_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer's agent has the passphrase cached; a wrong file must still fail."""
    home = backup.parent / "producer-gnupg"
    sh(
        f"gpg --batch --homedir {shlex.quote(str(home))} --pinentry-mode loopback "
        f"--passphrase-file {shlex.quote(str(pw_file))} --decrypt {shlex.quote(str(backup))} "
        ">/dev/null 2>&1",
        tmp_path,
    )
    monkeypatch.setenv("GNUPGHOME", str(home))
    bad = tmp_path / "bad.pass"
    bad.write_text("wrong\n")
    rc, rep, _ = verify(str(backup), "--passphrase-file", str(bad))
    assert rc == 1, rep


def _damaged(backup: Path, tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("where", [2, 6, 12, 20, 40, 0.25, 0.5, 0.75, -30, -2, -1])
def test_flipped_byte_never_verifies(
    tmp_path: Path, backup: Path, pw_file: Path, where: float
) -> None:
    data = bytearray(backup.read_bytes())
    at = int(len(data) * where) if isinstance(where, float) else where % len(data)
    data[at] ^= 0x01
    bad = _damaged(backup, tmp_path, f"flip{at}.gpg", bytes(data))
    rc, rep, _ = verify(str(bad), "--passphrase-file", str(pw_file))
    assert rc == 1, (at, rep)
    assert rep["error"]["kind"] in (
        "IntegrityError",
        "TruncatedBackup",
        "WrongKey",
        "UnsupportedFormat",
    ), rep["error"]
    if rep["error"]["kind"] == "WrongKey":
        # The S2K salt or the quick-check bytes: a damaged start reads as a wrong
        # passphrase, and the message says it may be either.
        assert "damaged" in rep["error"]["message"]


@pytest.mark.parametrize("keep", [16, 100, 0.5, -1, -22])
def test_truncated_never_verifies(tmp_path: Path, backup: Path, pw_file: Path, keep: float) -> None:
    data = backup.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    cut = _damaged(backup, tmp_path, f"cut{n}.gpg", data[:n])
    rc, rep, _ = verify(str(cut), "--passphrase-file", str(pw_file))
    assert rc == 1, (n, rep)
    assert rep["error"]["kind"] in ("IntegrityError", "TruncatedBackup"), rep["error"]


def test_restore_of_a_damaged_backup_leaves_nothing(
    tmp_path: Path, backup: Path, pw_file: Path
) -> None:
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = _damaged(backup, tmp_path, "bad.gpg", bytes(data))
    out = tmp_path / "out" / "restored.sql.gz"
    out.parent.mkdir()
    r = run_cli("restore", str(bad), "-o", str(out), "--passphrase-file", str(pw_file))
    assert r.returncode == 1
    assert list(out.parent.iterdir()) == []


def test_from_a_versioned_bucket(
    moto_s3: Bucket, tmp_path: Path, backup: Path, pw_file: Path
) -> None:
    key = "pg/db.sql.gz.gpg"
    good = moto_s3.put(key, backup)
    data = bytearray(backup.read_bytes())
    data[-40] ^= 0x02
    bad = moto_s3.put(key, bytes(data))
    args = [moto_s3.uri(key), "--endpoint-url", moto_s3.endpoint, "--json"]
    args += ["--passphrase-file", str(pw_file)]
    r = sealcheck("verify", *args, "--version-id", good or "")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.json()["source"]["version_id"] == good
    r = sealcheck("verify", *args, "--version-id", bad or "")
    assert r.returncode == 1, r.stdout
    assert r.json()["error"]["kind"] == "IntegrityError"
